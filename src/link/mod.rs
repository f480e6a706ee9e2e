//! Linking department records to roster people, Fellegi–Sunter style, as
//! DataFusion plans: blocking rules are joins, comparisons are vectorised
//! UDFs, scoring is an expression and the best candidate is a window
//! aggregate.
//!
//! `chinese` and `compare` are pure functions; `udf` exposes them to SQL;
//! `prepare` builds the two sides; `model` trains and stores parameters;
//! this module runs the stages and writes `link_<source>`; `eval` measures
//! the result against ground truth.

pub mod chinese;
pub mod compare;
pub mod eval;
pub mod model;
pub mod prepare;
pub mod settings;
pub mod udf;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use datafusion::prelude::SessionContext;

use crate::config::SourceSchema;
use crate::lake::Lake;
use crate::lake::query::{first_column, scalar_i64, strings_of};
use model::{ComparisonParams, Model, Pattern};
use settings::{Settings, SettingsFile};

pub fn link_table(source: &str) -> String {
    format!("link_{source}")
}

/// What one link run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkReport {
    pub source: String,
    pub records: i64,
    pub candidate_pairs: i64,
    pub linked: i64,
    pub review: i64,
    pub unlinked: i64,
    pub model_version: i64,
    pub trained: bool,
    pub seconds: f64,
}

/// Department sources in the lake that can be linked: every staged table
/// but the roster's, with a schema file.
pub async fn linkable_sources(lake: &Lake, schemas_dir: &Path) -> Result<Vec<String>> {
    Ok(lake
        .table_names()
        .await?
        .into_iter()
        .filter_map(|t| t.strip_prefix("staged_").map(str::to_string))
        .filter(|s| {
            s != crate::lake::tables::ROSTER_SOURCE
                && schemas_dir.join(format!("{s}.toml")).exists()
        })
        .collect())
}

/// Link one source, training the model when asked or when none is stored.
pub async fn link_source(
    lake: &Lake,
    schemas_dir: &Path,
    settings_file: &SettingsFile,
    source: &str,
    train: bool,
) -> Result<LinkReport> {
    let started = Instant::now();
    let settings = settings_file.for_source(source)?;
    let schema = SourceSchema::load(&schemas_dir.join(format!("{source}.toml")))?;
    let ctx = lake.session().await?;

    let left = prepare::source_view_sql(&ctx, &schema, false).await?;
    let right = if settings.registry == "roster" {
        for t in [
            crate::lake::tables::ROSTER_PERSON,
            crate::lake::tables::ROSTER_HOUSEHOLD,
        ] {
            if !ctx.table_exist(t)? {
                bail!("no roster in the lake (table {t} is missing): ingest the roster first");
            }
        }
        prepare::roster_view_sql()
    } else {
        let registry =
            SourceSchema::load(&schemas_dir.join(format!("{}.toml", settings.registry)))?;
        prepare::source_view_sql(&ctx, &registry, true).await?
    };
    // Both sides are used by every blocking rule: compute them once.
    for (name, sql) in [("l", left), ("r", right)] {
        let frame = ctx
            .sql(&sql)
            .await
            .with_context(|| format!("preparing side {name}"))?
            .cache()
            .await?;
        ctx.register_table(name, frame.into_view())?;
    }
    let records = scalar_i64(&ctx, "SELECT count(*) FROM l").await?;
    let registry_size = scalar_i64(&ctx, "SELECT count(*) FROM r").await?;

    let pairs = ctx
        .sql(&pairs_sql(&settings))
        .await
        .context("building candidate pairs")?
        .cache()
        .await?;
    ctx.register_table("pairs", pairs.into_view())?;
    let candidate_pairs = scalar_i64(&ctx, "SELECT count(*) FROM pairs").await?;

    let stored = if train {
        None
    } else {
        model::load_latest(&ctx, source, &settings).await?
    };
    let trained = stored.is_none();
    let model = match stored {
        Some(m) => m,
        None => {
            let m = train_model(&ctx, source, &settings, records, registry_size).await?;
            model::store(lake, &m).await?;
            m
        }
    };

    let plan = ctx
        .sql(&decision_sql(&settings, &model, &schema.key, registry_size))
        .await
        .context("scoring candidate pairs")?
        .into_optimized_plan()?;
    let table = link_table(source);
    lake.overwrite_with_plan(&ctx, &table, plan).await?;

    let ctx = lake.session().await?;
    let status = |s: &'static str| format!("SELECT count(*) FROM {table} WHERE status = '{s}'");
    Ok(LinkReport {
        source: source.to_string(),
        records,
        candidate_pairs,
        linked: scalar_i64(&ctx, &status("linked")).await?,
        review: scalar_i64(&ctx, &status("review")).await?,
        unlinked: scalar_i64(&ctx, &status("unlinked")).await?,
        model_version: model.version,
        trained,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn level_columns(settings: &Settings) -> String {
    settings
        .comparisons
        .iter()
        .map(|c| format!("{} AS {}_level", c.level_sql(), c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Candidate pairs: the union of the blocking joins, each rule leaving out
/// pairs an earlier rule already produced, so no pair appears twice.
fn pairs_sql(settings: &Settings) -> String {
    let levels = level_columns(settings);
    let tf: String = settings
        .comparisons
        .iter()
        .filter(|c| c.term_frequency)
        .map(|c| format!(", r.{} AS tf_{}", tf_source_column(c), c.name))
        .collect();
    settings
        .blocking
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let earlier: String = settings.blocking[..i]
                .iter()
                .map(|p| format!(" AND NOT coalesce(({p}), false)"))
                .collect();
            format!(
                "SELECT l.record_key, r.record_key AS person_key{tf}, {levels} FROM l JOIN r ON ({rule}){earlier}"
            )
        })
        .collect::<Vec<_>>()
        .join("\nUNION ALL\n")
}

/// The registry column whose value frequency adjusts a comparison.
fn tf_source_column(c: &settings::Comparison) -> String {
    match (&c.column, c.kind) {
        (None, compare::Kind::ChineseName) => "name_key".into(),
        _ => c.tf_column(),
    }
}

async fn level_counts(
    ctx: &SessionContext,
    table: &str,
    settings: &Settings,
) -> Result<Vec<Vec<f64>>> {
    let mut counts = Vec::new();
    for c in &settings.comparisons {
        let levels = c.labels().len();
        let mut row = vec![0.0; levels + 1];
        let sql = format!(
            "SELECT CAST({n}_level AS VARCHAR), CAST(count(*) AS VARCHAR) FROM {table} GROUP BY {n}_level",
            n = c.name
        );
        for batch in ctx.sql(&sql).await?.collect().await? {
            let level = strings_of(batch.column(0))?;
            let count = strings_of(batch.column(1))?;
            for (l, n) in level.into_iter().zip(count) {
                let l: usize = l.unwrap_or_default().parse().unwrap_or(0);
                if l <= levels {
                    row[l] = n.unwrap_or_default().parse().unwrap_or(0.0);
                }
            }
        }
        counts.push(row);
    }
    Ok(counts)
}

async fn train_model(
    ctx: &SessionContext,
    source: &str,
    settings: &Settings,
    records: i64,
    registry_size: i64,
) -> Result<Model> {
    // u: level frequencies among random pairs (a deterministic sample).
    let n = settings.u_sample;
    let sample = format!(
        "SELECT {levels} FROM (SELECT * FROM l ORDER BY md5(record_key) LIMIT {n}) l
         CROSS JOIN (SELECT * FROM r ORDER BY md5(record_key) LIMIT {n}) r",
        levels = level_columns(settings)
    );
    let random = ctx.sql(&sample).await?.cache().await?;
    ctx.register_table("random_pairs", random.into_view())?;
    let u = model::u_from_counts(
        settings,
        &level_counts(ctx, "random_pairs", settings).await?,
    );
    ctx.deregister_table("random_pairs")?;

    // m: EM over the candidate pairs' level patterns.
    let names: Vec<String> = settings
        .comparisons
        .iter()
        .map(|c| format!("{}_level", c.name))
        .collect();
    let sql = format!(
        "SELECT {cols}, CAST(count(*) AS VARCHAR) FROM pairs GROUP BY {cols}",
        cols = names.join(", ")
    );
    let mut patterns = Vec::new();
    for batch in ctx.sql(&sql).await?.collect().await? {
        let columns: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .map(strings_of)
            .collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            let levels = columns[..names.len()]
                .iter()
                .map(|column| column[i].as_deref().unwrap_or("0").parse().unwrap_or(0))
                .collect();
            let count = columns[names.len()][i]
                .as_deref()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0.0);
            patterns.push(Pattern { levels, count });
        }
    }
    let (m, iterations) = model::estimate_m(settings, &u, &patterns);

    // Prior: deterministic matches over all record × person pairs.
    let deterministic = if settings.deterministic_rules.is_empty() {
        0
    } else {
        let rules = settings
            .deterministic_rules
            .iter()
            .map(|r| format!("({r})"))
            .collect::<Vec<_>>()
            .join(" OR ");
        scalar_i64(ctx, &format!("SELECT count(*) FROM pairs p JOIN l ON p.record_key = l.record_key JOIN r ON p.person_key = r.record_key WHERE {rules}")).await?
    };
    let all_pairs = (records.max(1) as f64) * (registry_size.max(1) as f64);
    let expected = (deterministic as f64 / settings.deterministic_recall).max(1.0);
    let prior = (expected / all_pairs).clamp(1e-12, 0.5);

    let version = if ctx.table_exist(model::LINK_MODEL)? {
        first_column(ctx, &format!("SELECT CAST(coalesce(max(version), 0) AS VARCHAR) FROM {} WHERE source = '{source}'", model::LINK_MODEL))
            .await?
            .into_iter()
            .flatten()
            .next()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
            + 1
    } else {
        1
    };
    Ok(Model {
        version,
        source: source.to_string(),
        prior,
        comparisons: settings
            .comparisons
            .iter()
            .zip(m.into_iter().zip(u))
            .map(|(c, (m, u))| ComparisonParams {
                name: c.name.clone(),
                labels: c.labels(),
                m,
                u,
            })
            .collect(),
        em_iterations: iterations,
    })
}

/// A CASE over a level column, giving each level's value.
fn case_of(column: &str, values: impl Iterator<Item = String>, otherwise: &str) -> String {
    let arms: String = values
        .enumerate()
        .map(|(i, v)| format!(" WHEN {} THEN {v}", i + 1))
        .collect();
    format!("CASE {column}{arms} ELSE {otherwise} END")
}

/// Score every candidate pair, keep the best per record, decide.
fn decision_sql(settings: &Settings, model: &Model, key: &str, registry_size: i64) -> String {
    let mut weight_columns = Vec::new();
    let mut tf_joins = String::new();
    let mut tf_ctes = Vec::new();
    for (c, params) in settings.comparisons.iter().zip(&model.comparisons) {
        let base = case_of(
            &format!("p.{}_level", c.name),
            (1..=params.m.len()).map(|l| format!("{:.6}", params.weight(l))),
            "0.0",
        );
        let adjusted = if c.term_frequency {
            // Agreeing on a common value is worth less: replace u of the
            // agreeing levels by the value's share of the registry.
            let tf_levels = if c.kind == compare::Kind::ChineseName {
                "(1, 2)"
            } else {
                "(1)"
            };
            tf_ctes.push(format!(
                "tf_{n} AS (SELECT {col} AS value, CAST(count(*) AS DOUBLE) / {registry_size} AS share FROM r GROUP BY {col})",
                n = c.name,
                col = tf_source_column(c)
            ));
            tf_joins.push_str(&format!(
                " LEFT JOIN tf_{n} ON p.tf_{n} = tf_{n}.value",
                n = c.name
            ));
            format!(
                "{base} + CASE WHEN p.{n}_level IN {tf_levels} AND tf_{n}.share IS NOT NULL THEN log2({u1:.12} / greatest(tf_{n}.share, 1e-9)) ELSE 0.0 END",
                n = c.name,
                u1 = params.u[0].max(1e-9)
            )
        } else {
            base
        };
        weight_columns.push(format!("{adjusted} AS {}_weight", c.name));
    }
    let total: String = settings
        .comparisons
        .iter()
        .map(|c| format!(" + {}_weight", c.name))
        .collect();
    let labels: String = settings
        .comparisons
        .iter()
        .zip(&model.comparisons)
        .map(|(c, params)| {
            let label = case_of(
                &format!("b.{}_level", c.name),
                params.labels.iter().map(|l| format!("'{l}'")),
                "'missing'",
            );
            format!(", {label} AS {n}_level, b.{n}_weight", n = c.name)
        })
        .collect();
    let levels: String = settings
        .comparisons
        .iter()
        .map(|c| format!(", p.{}_level", c.name))
        .collect();
    let with_tf = if tf_ctes.is_empty() {
        String::new()
    } else {
        format!("{},\n", tf_ctes.join(",\n"))
    };
    let requires = settings.link_requires.clone();
    let key_column = quote_ident(key);
    format!(
        "WITH {with_tf}
scored AS (
  SELECT p.record_key, p.person_key{levels}, {weights}
  FROM pairs p{tf_joins}
),
ranked AS (
  SELECT s.*, {prior:.6}{total} AS match_weight FROM scored s
),
ordered AS (
  SELECT x.*,
    row_number() OVER (PARTITION BY record_key ORDER BY match_weight DESC, person_key) AS rank,
    lead(match_weight) OVER (PARTITION BY record_key ORDER BY match_weight DESC, person_key) AS runner_up_weight,
    count(*) OVER (PARTITION BY record_key) AS candidates
  FROM ranked x
),
best AS (SELECT * FROM ordered WHERE rank = 1),
decided AS (
  SELECT b.*, 1.0 / (1.0 + power(2.0, -b.match_weight)) AS match_probability FROM best b
)
SELECT l.record_key AS {key_column},
  r.person_id, r.household_id,
  b.match_weight, b.match_probability,
  CASE
    WHEN b.record_key IS NULL THEN 'unlinked'
    WHEN b.match_probability >= {link} AND (b.runner_up_weight IS NULL OR b.match_weight - b.runner_up_weight >= {margin})
         AND ({requires}) THEN 'linked'
    WHEN b.match_probability >= {review} THEN 'review'
    ELSE 'unlinked'
  END AS status,
  b.runner_up_weight, coalesce(b.candidates, 0) AS candidates{labels},
  CAST({version} AS BIGINT) AS model_version
FROM l LEFT JOIN decided b ON l.record_key = b.record_key
LEFT JOIN r ON b.person_key = r.record_key",
        weights = weight_columns.join(",\n    "),
        prior = model.prior_weight(),
        link = settings.link_threshold,
        review = settings.review_threshold,
        margin = settings.margin_bits,
        version = model.version,
    )
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
