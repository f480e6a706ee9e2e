//! Linking department records to roster people, Fellegi–Sunter style, as
//! DataFusion plans: blocking rules are joins, comparisons are vectorised
//! UDFs, scoring is an expression and the best candidate is an aggregate
//! (`best`).
//!
//! `settings` parses the settings file and `check` checks its SQL before any
//! work; `comparisons` holds one type per comparison kind (its functions are in
//! `crate::functions`); `prepare` builds the two sides; `plan` writes the SQL; `train` and
//! `model` estimate and store parameters; `history` keeps each run's counts
//! and the model's own estimate of its quality; `explain`, `review` and
//! `eval` serve the people who check the result.

pub mod budget;
pub mod calibrate;
pub mod check;
pub mod comparisons;
pub mod eval;
pub mod explain;
pub mod history;
pub mod model;
pub mod plan;
pub mod prepare;
pub mod review;
pub mod scratch;
pub mod settings;
pub mod train;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datafusion::prelude::SessionContext;

use crate::config::{SourceName, SourceSchema};
use crate::lake::Lake;
use crate::lake::query::{bound, scalar_i64, scalar_i64_of};
use crate::lake::tables::{self, BATCHES, ROSTER_HOUSEHOLD, ROSTER_PERSON, ROSTER_SOURCE};
use settings::{Settings, SettingsFile};

pub use crate::lake::tables::link_table;

/// What one link run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkReport {
    /// The source linked.
    pub source: SourceName,
    /// Its records.
    pub records: i64,
    /// Candidate pairs the blocking rules made.
    pub candidate_pairs: i64,
    /// Linked, review and unlinked, and the model's own estimates.
    pub quality: history::Quality,
    /// The model version used.
    pub model_version: i64,
    /// Whether this run trained that model (false: an earlier one was reused).
    pub trained: bool,
    /// What records with their ID number hidden say about links made
    /// without one (None when the source has no valid ID numbers).
    pub calibration: Option<calibrate::Calibration>,
    /// Records the decisions would have sent to review past the review
    /// budget, left unlinked instead (see [`budget`]).
    pub over_budget: i64,
    /// Wall time.
    pub seconds: f64,
}

/// Department sources in the lake that can be linked: every staged table
/// with a schema (recorded in the lake, or a file) but the roster's and any
/// other registry's (a source the settings link others against).
pub async fn linkable_sources(
    lake: &Lake,
    schemas_dir: &Path,
    settings: &SettingsFile,
) -> Result<Vec<SourceName>> {
    let recorded = crate::lake::schemas::recorded(lake).await?;
    let registries = settings.registries();
    Ok(lake
        .table_names()
        .await?
        .into_iter()
        .filter_map(|t| tables::source_of_staged(&t))
        .filter(|s| {
            s != ROSTER_SOURCE
                && !registries.contains(s.as_str())
                && (recorded.contains_key(s.as_str())
                    || crate::lake::schemas::file_in(schemas_dir, s).exists())
        })
        .collect())
}

/// A session with the two sides registered as `l` and `r`, and `pairs`.
pub(crate) struct Sides {
    pub ctx: SessionContext,
    pub schema: SourceSchema,
    pub settings: Settings,
    pub records: i64,
    pub registry_size: i64,
    /// Parts the records are decided in (see `Scratch::parts`).
    pub parts: i64,
    /// Holds the files behind `l`, `r` and `pairs`; dropped with the run.
    pub scratch: scratch::Scratch,
}

/// Register `l` (the source, or one record of it), `r` (the registry) and
/// the candidate `pairs` in a fresh session.
pub(crate) async fn prepare_sides(
    lake: &Lake,
    schemas_dir: &Path,
    settings_file: &SettingsFile,
    source: &SourceName,
    only_record: Option<&str>,
) -> Result<Sides> {
    let settings = settings_file.for_source(source)?;
    if settings.registry == *source {
        Err(settings.origin.error(
            "registry",
            format!("source '{source}' is its own registry: name another source to link it against, or link a source that is not the registry"),
        ))?;
    }
    let ctx = lake.session().await?;
    let recorded = crate::lake::schemas::recorded_in(&ctx).await?;
    let schema = crate::lake::schemas::pick(&recorded, schemas_dir, source)?;
    let mut left = prepare::source_view_sql(&ctx, &schema, false).await?;
    if let Some(key) = only_record {
        // The key is a value: it joins from a table, not from SQL text.
        crate::lake::query::register_keys(&ctx, "only_record", "record_key", [key])?;
        left = format!(
            "SELECT * FROM ({left}) WHERE record_key IN (SELECT record_key FROM only_record)"
        );
    }
    let registry_table = if settings.registry == ROSTER_SOURCE {
        ROSTER_PERSON.to_string()
    } else {
        tables::staged(&settings.registry).to_string()
    };
    let right = if settings.registry == ROSTER_SOURCE {
        for t in [ROSTER_PERSON, ROSTER_HOUSEHOLD] {
            if !ctx.table_exist(t)? {
                bail!("no roster in the lake (table {t} is missing): ingest the roster first");
            }
        }
        prepare::roster_view_sql()
    } else {
        let registry = crate::lake::schemas::pick(&recorded, schemas_dir, &settings.registry)?;
        prepare::source_view_sql(&ctx, &registry, true).await?
    };
    // A typo in the settings stops here, naming the file and the key,
    // before any pair is built.
    check::against_sides(&ctx, &settings, source, &left, &right).await?;
    // Every blocking rule reads both sides: compute them once, to files
    // (see `scratch`), and the pairs one blocking rule at a time.
    // Counted on the tables (their metadata answers) before the sides
    // exist, to choose memory or files. `r` has one row per registry
    // person; `l` one per record unless restricted to one.
    let source_rows = scalar_i64(
        &ctx,
        &format!("SELECT count(*) FROM {}", tables::staged(source)),
    )
    .await?;
    let registry_size = scalar_i64(&ctx, &format!("SELECT count(*) FROM {registry_table}")).await?;
    let rows = source_rows + registry_size;
    let scratch = scratch::Scratch::new(rows)?;
    for (name, sql) in [("l", left), ("r", right)] {
        scratch
            .materialise(&ctx, name, &[sql], None)
            .await
            .with_context(|| format!("preparing side {name}"))?;
    }
    let records = if only_record.is_some() {
        scalar_i64(&ctx, "SELECT count(*) FROM l").await?
    } else {
        source_rows
    };
    let parts = if only_record.is_some() {
        1
    } else {
        scratch.parts(records)?
    };
    scratch
        .materialise(
            &ctx,
            "pairs",
            &plan::pairs_sql(&settings, parts),
            (parts > 1).then_some("part"),
        )
        .await
        .context("building candidate pairs")?;
    // Who the whole source knows by each name, for the evidence patterns
    // (of the labelled records in `calibrate`, and of the records without
    // an ID number in the decision); an explanation uses none.
    if settings.patterns_by_name_frequency && only_record.is_none() {
        scratch
            .materialise(&ctx, plan::NAME_IDS, &[plan::name_ids_sql()], None)
            .await
            .context("counting the people the records show under each name")?;
    }
    Ok(Sides {
        ctx,
        schema,
        settings,
        records,
        registry_size,
        parts,
        scratch,
    })
}

/// Link one source, training the model when asked or when none is stored.
pub async fn link_source(
    lake: &Lake,
    schemas_dir: &Path,
    settings_file: &SettingsFile,
    source: &SourceName,
    train: bool,
) -> Result<LinkReport> {
    let started = Instant::now();
    let sides = prepare_sides(lake, schemas_dir, settings_file, source, None).await?;
    let Sides {
        ctx,
        schema,
        settings,
        records,
        registry_size,
        parts,
        ..
    } = &sides;
    let candidate_pairs = scalar_i64(ctx, "SELECT count(*) FROM pairs").await?;
    tracing::info!(
        source = source.as_str(),
        records,
        candidate_pairs,
        seconds = started.elapsed().as_secs_f64(),
        "candidate pairs built"
    );

    let stored = if train {
        None
    } else {
        model::load_latest(ctx, source, settings).await?
    };
    let trained = stored.is_none();
    let model = match stored {
        Some(m) => m,
        None => {
            // Stored once calibrated, with the calibration's estimates.
            let m = train::train_model(ctx, source, settings, *records, *registry_size).await?;
            tracing::info!(
                source = source.as_str(),
                seconds = started.elapsed().as_secs_f64(),
                "model trained"
            );
            m
        }
    };

    // What records with an ID number, their ID hidden, say about records
    // without one; with a target precision it decides them.
    let calibrated = Instant::now();
    let mut calibration = calibrate::calibrate(lake, &sides, &model)
        .await
        .context("calibrating from the records with ID numbers")?;
    // With a target: the target and the expected ID links, to decide again
    // once the reviews of records whose ID number is in doubt are counted.
    let mut deciding = None;
    if let (Some(target), Some(c)) = (settings.target_precision, calibration.as_mut()) {
        let valid = scalar_i64(ctx, "SELECT count(*) FROM l WHERE id_number_valid").await?;
        // Records with a valid ID on the registry link on it.
        let id_links = valid as f64 * c.on_registry as f64 / c.labelled.max(1) as f64;
        // Records whose ID number is in doubt go to review by the
        // thresholds; how many is known only from the decision itself, so
        // they are charged to the budget below, once counted.
        let decided = c.decide(
            target,
            settings.review_budget(),
            *records as f64,
            id_links,
            0.0,
        );
        plan::register_pattern_decisions(ctx, decided.clone())?;
        deciding = Some((target, id_links, decided));
    }
    let by_pattern = deciding.is_some();
    tracing::info!(
        source = source.as_str(),
        labelled = calibration.as_ref().map_or(0, |c| c.labelled),
        deciding = by_pattern,
        seconds = calibrated.elapsed().as_secs_f64(),
        "calibrated"
    );
    let decisions = plan::register_source_decisions(ctx, source).await?;
    let decide = |inputs: &plan::Inputs| {
        plan::decision_sql(
            settings,
            &model,
            &schema.key,
            *registry_size,
            decisions,
            by_pattern,
            inputs,
        )
    };
    let table = link_table(source);
    // The reviews of records whose ID number is in doubt share the review
    // budget with the patterns': count them, and when the patterns'
    // decisions then change, decide them again (the doubtful records'
    // statuses do not depend on the patterns).
    let mut charge_doubt = |doubt: i64| -> Result<bool> {
        let (Some((target, id_links, decided)), Some(c)) = (&deciding, calibration.as_mut()) else {
            return Ok(false);
        };
        if doubt == 0 {
            return Ok(false);
        }
        let again = c.decide(
            *target,
            settings.review_budget(),
            *records as f64,
            *id_links,
            doubt as f64,
        );
        if again == *decided {
            return Ok(false);
        }
        tracing::info!(
            source = source.as_str(),
            in_doubt = doubt,
            "records whose ID number is in doubt go to review: the patterns are decided again \
             within the review budget"
        );
        plan::register_pattern_decisions(ctx, again)?;
        Ok(true)
    };
    let in_doubt = |decided: &str| {
        format!(
            "SELECT count(*) FROM ({decided}) d WHERE d.status = 'review' AND {}",
            plan::has_id_number_sql(settings, "d")
        )
    };
    // Only patterns sent to review can change: links do not depend on it.
    let may_change = deciding
        .as_ref()
        .is_some_and(|(_, _, decided)| decided.iter().any(|(_, d)| d == "review"));
    let queries = if *parts == 1 {
        vec![decide(&plan::ALL)]
    } else {
        // A large run decides in parts, each written to a scratch file;
        // the link table is then written from those files in one commit.
        let mut queries = Vec::new();
        for b in 0..*parts {
            let (records, pairs) = (format!("l_part{b}"), format!("pairs_part{b}"));
            let part_of_l = format!(
                "SELECT * FROM l WHERE {} = {b}",
                plan::part_of("record_key", *parts)
            );
            let part_of_pairs = format!("SELECT * FROM pairs WHERE part = {b}");
            ctx.register_table(&records, ctx.sql(&part_of_l).await?.into_view())?;
            ctx.register_table(&pairs, ctx.sql(&part_of_pairs).await?.into_view())?;
            queries.push(decide(&plan::Inputs {
                records: &records,
                pairs: &pairs,
            }));
        }
        queries
    };
    let mut over_budget = 0;
    let plan = if *parts == 1 && !by_pattern {
        ctx.sql(&queries[0]).await
    } else {
        // Written once to a scratch file, the decisions are counted (the
        // review budget) and then read into the link table.
        sides
            .scratch
            .materialise(ctx, "decided", &queries, None)
            .await
            .context("scoring candidate pairs")?;
        if may_change {
            let doubt = scalar_i64(ctx, &in_doubt("SELECT * FROM decided")).await?;
            if charge_doubt(doubt)? {
                sides
                    .scratch
                    .materialise(ctx, "decided", &queries, None)
                    .await
                    .context("scoring candidate pairs")?;
            }
        }
        let mut decided = "SELECT * FROM decided".to_string();
        if by_pattern {
            let budget = (settings.review_budget() * *records as f64).floor() as i64;
            if let Some(capped) = budget::cap_reviews(ctx, "decided", &schema.key, budget).await? {
                over_budget = capped.left_unlinked;
                tracing::warn!(
                    source = source.as_str(),
                    budget,
                    left_unlinked = over_budget,
                    "more records went to review than the review budget allows: the least probable stay unlinked"
                );
                decided = capped.sql;
            }
        }
        ctx.sql(&decided).await
    }
    .context("scoring candidate pairs")?
    .into_optimized_plan()?;
    // Stored once the patterns are decided, before the links that name
    // the model's version.
    if trained {
        model::store(lake, &model, calibration.as_ref()).await?;
    }
    lake.overwrite_with_plan(ctx, &table, plan).await?;

    let ctx = lake.session().await?;
    let report = LinkReport {
        source: source.clone(),
        records: *records,
        candidate_pairs,
        quality: history::measure(&ctx, source).await?,
        model_version: model.version,
        trained,
        calibration,
        over_budget,
        seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(c) = &report.calibration {
        calibrate::record(lake, source, model.version, c).await?;
    }
    history::record(lake, &report).await?;
    Ok(report)
}

/// True when `link_<source>` is missing or older than the newest committed
/// batch of the source or the roster, or the newest clerical decision — so a
/// run that failed after ingest links on the next try.
pub async fn needs_linking(lake: &Lake, source: &SourceName) -> Result<bool> {
    use futures::StreamExt;
    let Some(table) = lake.table(&link_table(source)).await? else {
        return Ok(true);
    };
    let linked_ms = match table.history(Some(1)).next().await {
        Some(Ok(commit)) => commit.timestamp.unwrap_or(0),
        _ => return Ok(true),
    };
    let ctx = lake.session().await?;
    let mut newest_us = scalar_i64_of(
        bound(
            &ctx,
            &format!(
                "SELECT CAST(max(finished_at) AS BIGINT) FROM {BATCHES} WHERE source IN ($1, $2)"
            ),
            &[source, ROSTER_SOURCE],
        )
        .await?,
    )
    .await?;
    if ctx.table_exist(plan::REVIEW_DECISIONS)? {
        let decided = scalar_i64_of(
            bound(
                &ctx,
                &format!(
                    "SELECT CAST(max(decided_at) AS BIGINT) FROM {} WHERE source = $1",
                    plan::REVIEW_DECISIONS
                ),
                &[source],
            )
            .await?,
        )
        .await?;
        newest_us = newest_us.max(decided);
    }
    Ok(newest_us / 1000 > linked_ms)
}
