//! Early warnings (预警): rules find clues in linked records (`rules`); the
//! household assessment estimates each household's year from every
//! department's records together (`assessment`); warnings are decided
//! from the assessment, or in every-rule mode from each clue (`combine`);
//! state remembers what staff verified so the same warning is not raised
//! twice, and villages get no more new tasks a month than staff can visit
//! (`state`); `store` writes the tables; `thresholds` holds every number.
//!
//! The whole stage runs as DataFusion plans: nothing is assembled row by
//! row in Rust.

pub mod assessment;
pub mod combine;
pub mod eval;
pub mod rules;
pub mod state;
pub mod status;
pub mod store;
pub mod thresholds;

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use datafusion::prelude::{SessionContext, col, lit};

use crate::error::Error;
use crate::lake::Lake;
use crate::lake::query::{bound, rows_of, scalar_i64, scalar_i64_of, sql_ident, sql_text};
use crate::lake::tables::{
    ROSTER_HOUSEHOLD, ROSTER_PERSON, SourceName, link_table, linked_view, staged,
};
use status::{Mode, Outcome, Status};
use store::{WARNING_EVENTS, WARNINGS};

pub use crate::config::WarnConfig;

/// What one rule found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleSummary {
    /// The rule's id.
    pub rule: String,
    /// Its title.
    pub title: String,
    /// Its risk type.
    pub risk_type: String,
    /// Triggering linked records.
    pub records: usize,
    /// Households they belong to.
    pub households: usize,
    /// Records that would trigger the rule but are still in link review.
    pub pending_review: usize,
    /// Why the rule did not run, when it did not.
    pub note: Option<String>,
}

/// What one warning run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WarnReport {
    /// The date it looked from.
    pub as_of: String,
    /// How warnings were decided.
    pub mode: String,
    /// One summary per rule.
    pub rules: Vec<RuleSummary>,
    /// Households the assessment looked at with at least one record.
    pub assessed: usize,
    /// New warnings that became tasks.
    pub raised: usize,
    /// New warnings waiting for their village's capacity.
    pub queued: usize,
    /// Waiting warnings that became tasks.
    pub released: usize,
    /// Warnings whose evidence changed.
    pub updated: usize,
    /// Verified or closed warnings with new evidence.
    pub reopened: usize,
    /// Warnings of this run that were already stored as they are.
    pub unchanged: usize,
    /// Households not warned because already monitored for the risk.
    pub suppressed: usize,
    /// (county code, risk type, open warnings).
    pub open_by_county: Vec<(String, String, i64)>,
    /// (county code, warnings waiting for capacity).
    pub queued_by_county: Vec<(String, i64)>,
    /// (kind, open warnings).
    pub open_by_kind: Vec<(String, i64)>,
}

/// `linked_<source>` as the staged rows whose link has `status`.
async fn register_linked_views(
    ctx: &SessionContext,
    config: &WarnConfig,
    sources: &HashSet<SourceName>,
    status: &str,
) -> Result<HashSet<SourceName>> {
    let mut ready = HashSet::new();
    let recorded = crate::lake::schemas::recorded_in(ctx).await?;
    for source in sources {
        let view = linked_view(source);
        let _ = ctx.deregister_table(view.as_str());
        let staged = staged(source);
        let link = link_table(source);
        if !ctx.table_exist(staged.as_str())? || !ctx.table_exist(link.as_str())? {
            continue;
        }
        let schema = crate::lake::schemas::pick(&recorded, &config.schemas_dir, source)?;
        let key = sql_ident(&schema.key);
        let df = bound(
            ctx,
            &format!(
                "SELECT s.*, k.person_id, k.household_id, k.match_probability
                 FROM {staged} s JOIN {link} k ON CAST(s.{key} AS VARCHAR) = CAST(k.{key} AS VARCHAR)
                 WHERE k.status = $1"
            ),
            &[status],
        )
        .await?;
        ctx.register_table(view.as_str(), df.into_view())?;
        ready.insert(source.clone());
    }
    Ok(ready)
}

/// An empty `signals` relation, when no rule's source is linked.
const NO_SIGNALS: &str = "SELECT CAST(NULL AS VARCHAR) AS rule, CAST(NULL AS VARCHAR) AS source, \
    CAST(NULL AS VARCHAR) AS household_id, CAST(NULL AS VARCHAR) AS person_id, \
    CAST(NULL AS VARCHAR) AS record_key, CAST(NULL AS DATE) AS event_date, CAST(NULL AS DOUBLE) AS amount, \
    CAST(NULL AS VARCHAR) AS detail, CAST(NULL AS VARCHAR) AS severity, CAST(NULL AS VARCHAR) AS risk_type WHERE false";

/// Cache `name` as the result of `sql`.
async fn cache(ctx: &SessionContext, name: &str, sql: &str) -> Result<()> {
    cache_bound(ctx, name, sql, &[]).await
}

/// Cache `name` as the result of `sql` with its `$1`, … bound to `values`.
async fn cache_bound(ctx: &SessionContext, name: &str, sql: &str, values: &[&str]) -> Result<()> {
    let _ = ctx.deregister_table(name);
    let frame = bound(ctx, sql, values).await?;
    crate::lake::kept::keep(ctx, name, frame).await
}

/// (text, count) rows of a two-column query, in its order.
async fn pairs(ctx: &SessionContext, sql: &str) -> Result<Vec<(String, i64)>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut out = Vec::new();
    for batch in &batches {
        let keys = crate::lake::query::strings_of(batch.column(0))?;
        let counts = crate::lake::query::strings_of(batch.column(1))?;
        for (k, n) in keys.into_iter().zip(counts) {
            out.push((
                k.unwrap_or_default(),
                n.and_then(|n| n.parse().ok()).unwrap_or(0),
            ));
        }
    }
    Ok(out)
}

/// Run the rules and the assessment as of a date and bring `warnings` up
/// to date.
pub async fn run(lake: &Lake, config: &WarnConfig, as_of: NaiveDate) -> Result<WarnReport> {
    let (ctx, mut report) = decide(lake, config, as_of).await?;
    apply(lake, &ctx, config, as_of, &mut report).await?;
    Ok(report)
}

/// Everything up to this run's warnings, in a session holding the
/// relations `signals`, `assessment_items` and `fresh_warnings`, without
/// writing anything (what `eval-warnings` compares between modes).
pub async fn decide(
    lake: &Lake,
    config: &WarnConfig,
    as_of: NaiveDate,
) -> Result<(SessionContext, WarnReport)> {
    let started = std::time::Instant::now();
    let rules = rules::load_dir(&config.rules_dir)?;
    let components = match config.mode {
        Mode::Assessment => assessment::load_dir(&config.assessment_dir)?,
        Mode::EveryRule => Vec::new(),
    };
    let ctx = lake.session().await?;
    for t in [ROSTER_PERSON, ROSTER_HOUSEHOLD] {
        if !ctx.table_exist(t)? {
            bail!("no roster in the lake (table {t} is missing): ingest the roster first");
        }
    }
    thresholds::register(&ctx, &config.thresholds, &config.population_groups)?;
    // Every rule joins to it: resolve the thresholds per place once; each
    // household takes its place's.
    cache(
        &ctx,
        thresholds::PLACE_THRESHOLDS,
        &thresholds::place_thresholds_query(as_of),
    )
    .await?;
    let per_household = ctx
        .sql(&thresholds::household_thresholds_query())
        .await?
        .into_view();
    let _ = ctx.deregister_table("household_thresholds");
    ctx.register_table("household_thresholds", per_household)?;
    // A query reading a parameter that has no row would find nothing
    // without a word: refuse it, naming the file that reads it.
    let mut needed: Vec<(String, &str)> = Vec::new();
    if config.mode == Mode::Assessment {
        needed.push(("monitoring_income_line".into(), "the household assessment"));
    }
    let queries = rules.iter().map(|r| (&r.file, &r.sql));
    for (file, sql) in queries.chain(components.iter().map(|c| (&c.file, &c.sql))) {
        needed.extend(
            thresholds::parameters_named(sql)
                .into_iter()
                .map(|p| (p, file.as_str())),
        );
    }
    let needed: Vec<(&str, &str)> = needed.iter().map(|(p, f)| (p.as_str(), *f)).collect();
    thresholds::require(&ctx, &config.thresholds, &needed).await?;
    let sources: HashSet<SourceName> = rules
        .iter()
        .map(|r| r.source.clone())
        .chain(components.iter().map(|c| c.source.clone()))
        .collect();

    // Records still in link review: counted per rule, never warned on.
    let ready = register_linked_views(&ctx, config, &sources, "review").await?;
    let pending_rules: Vec<&rules::Rule> =
        rules.iter().filter(|r| ready.contains(&r.source)).collect();
    let mut pending: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(sql) = rules::signals_sql(&ctx, &pending_rules, as_of).await? {
        for (rule, n) in pairs(
            &ctx,
            &format!("SELECT rule, count(DISTINCT record_key) FROM ({sql}) GROUP BY rule"),
        )
        .await?
        {
            pending.insert(rule, n as usize);
        }
    }
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "pending-review pass done"
    );

    let ready = register_linked_views(&ctx, config, &sources, "linked").await?;
    let ready_rules: Vec<&rules::Rule> =
        rules.iter().filter(|r| ready.contains(&r.source)).collect();
    let signals = rules::signals_sql(&ctx, &ready_rules, as_of)
        .await?
        .unwrap_or_else(|| NO_SIGNALS.to_string());
    cache(&ctx, "signals", &signals).await?;
    let ready_components: Vec<&assessment::Component> = components
        .iter()
        .filter(|c| ready.contains(&c.source))
        .collect();
    cache(
        &ctx,
        "assessment_items",
        &assessment::items_sql(&ctx, &ready_components, as_of).await?,
    )
    .await?;

    let mut report = WarnReport {
        as_of: as_of.to_string(),
        mode: config.mode.to_string(),
        ..Default::default()
    };
    let found: BTreeMap<String, (usize, usize)> = rows_of(
        &ctx.sql("SELECT rule, count(DISTINCT record_key) AS records, count(DISTINCT household_id) AS households FROM signals GROUP BY rule")
            .await?
            .collect()
            .await?,
    )?
    .into_iter()
    .map(|r| {
        let n = |k: &str| r.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        (r.get("rule").cloned().unwrap_or_default(), (n("records"), n("households")))
    })
    .collect();
    for rule in &rules {
        let (records, households) = found.get(&rule.id).copied().unwrap_or_default();
        report.rules.push(RuleSummary {
            rule: rule.id.clone(),
            title: rule.title.clone(),
            risk_type: rule.risk_type.clone(),
            records,
            households,
            pending_review: pending.get(&rule.id).copied().unwrap_or(0),
            note: (!ready.contains(&rule.source))
                .then(|| format!("no linked {} data yet", rule.source)),
        });
    }
    report.assessed = scalar_i64(
        &ctx,
        "SELECT count(DISTINCT household_id) FROM assessment_items",
    )
    .await? as usize;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "rules and assessment items done"
    );

    // One warning per household × (kind or risk type) × period; the period is the year.
    let period = chrono::Datelike::year(&as_of).to_string();
    combine::register_monitored(&ctx).await?;
    report.suppressed = combine::register_fresh(&ctx, config.mode, &period)
        .await?
        .suppressed;
    Ok((ctx, report))
}

/// Meet this run's warnings with the stored ones, and write what changed.
async fn apply(
    lake: &Lake,
    ctx: &SessionContext,
    config: &WarnConfig,
    as_of: NaiveDate,
    report: &mut WarnReport,
) -> Result<()> {
    let started = std::time::Instant::now();
    let ctx = ctx.clone();
    store::register_stored(&ctx).await?;
    state::register_next(
        &ctx,
        &state::Step {
            as_of,
            mode: config.mode,
            actor: "safetynet warn",
        },
    )
    .await?;
    for (event, n) in pairs(
        &ctx,
        "SELECT event, count(*) FROM next_events GROUP BY event",
    )
    .await?
    {
        let n = n as usize;
        match status::EventKind::parse(&event) {
            Some(status::EventKind::Raised) => report.raised = n,
            Some(status::EventKind::Queued) => report.queued = n,
            Some(status::EventKind::Released) => report.released = n,
            Some(status::EventKind::Updated) => report.updated = n,
            Some(status::EventKind::Reopened) => report.reopened = n,
            _ => {}
        }
    }
    report.unchanged = scalar_i64(
        &ctx,
        "SELECT count(*) FROM fresh_warnings f WHERE f.warning_id NOT IN (SELECT warning_id FROM next_events)",
    )
    .await? as usize;
    if tracing::enabled!(tracing::Level::DEBUG) {
        for relation in [
            "signals",
            "assessment_items",
            "fresh_items",
            "fresh_warnings",
            "next_warnings",
            "next_events",
        ] {
            let n = scalar_i64(&ctx, &format!("SELECT count(*) FROM {relation}"))
                .await
                .unwrap_or(-1);
            tracing::debug!(relation, rows = n, "warning stage relation");
        }
    }
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "changes decided");

    let changes =
        report.raised + report.queued + report.released + report.updated + report.reopened;
    if changes > 0 {
        // Events first, idempotently; then the evidence and the table. A
        // crash in between is repaired by the next run, which makes the
        // same decisions.
        store::append_events(lake, &ctx).await?;
        crate::failpoint::hit("warn:after-events");
        store::append_evidence(lake, &ctx).await?;
        store::write_warnings(lake, &ctx).await?;
    }
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "warnings written"
    );

    let ctx = lake.session_with(&[WARNINGS]).await?;
    if ctx.table_exist(WARNINGS)? {
        let batches = ctx
            .sql(&format!(
                "SELECT county_code, risk_type, count(*) FROM {WARNINGS} WHERE status = 'open' GROUP BY county_code, risk_type ORDER BY county_code, risk_type"
            ))
            .await?
            .collect()
            .await?;
        for batch in &batches {
            let c = crate::lake::query::strings_of(batch.column(0))?;
            let r = crate::lake::query::strings_of(batch.column(1))?;
            let n = crate::lake::query::strings_of(batch.column(2))?;
            for i in 0..batch.num_rows() {
                report.open_by_county.push((
                    c[i].clone().unwrap_or_default(),
                    r[i].clone().unwrap_or_default(),
                    n[i].as_deref().and_then(|n| n.parse().ok()).unwrap_or(0),
                ));
            }
        }
        let has_kind = ctx
            .table(WARNINGS)
            .await?
            .schema()
            .field_with_unqualified_name("kind")
            .is_ok();
        if has_kind {
            report.queued_by_county = pairs(&ctx, &format!(
                "SELECT county_code, count(*) FROM {WARNINGS} WHERE status = 'queued' GROUP BY county_code ORDER BY county_code"
            )).await?;
            report.open_by_kind = pairs(&ctx, &format!(
                "SELECT kind, count(*) FROM {WARNINGS} WHERE status = 'open' GROUP BY kind ORDER BY kind"
            )).await?;
        }
    }
    Ok(())
}

/// What staff found on a household visit (or a decision to close).
#[derive(Debug, Clone)]
pub struct Verification {
    /// The warning.
    pub warning_id: String,
    /// included / not_included / risk_eliminated, or closed.
    pub outcome: String,
    /// Why, in the staff's words.
    pub reason: String,
    /// Who visited or decided.
    pub by: String,
    /// The day of the visit.
    pub visited: Option<NaiveDate>,
}

/// A warning after a verification.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// The warning.
    pub warning_id: String,
    /// verified, or closed.
    pub status: Status,
    /// What was recorded.
    pub outcome: Outcome,
}

/// Record a verification: the warning's status becomes `verified` (or
/// `closed`) and an event keeps who, when and why. Holding the run lock is
/// the caller's part (`pipeline::verify`).
pub async fn verify(lake: &Lake, v: &Verification) -> Result<Verified> {
    let Some(outcome) = Outcome::parse(&v.outcome) else {
        return Err(Error::BadOutcome {
            given: v.outcome.clone(),
            allowed: Outcome::names().join(", "),
        }
        .into());
    };
    let status = if outcome == Outcome::Closed {
        Status::Closed
    } else {
        Status::Verified
    };
    let ctx = lake
        .session_with(&[WARNINGS, WARNING_EVENTS, ROSTER_HOUSEHOLD])
        .await?;
    store::register_stored(&ctx).await?;
    let id: &[&str] = &[&v.warning_id];
    if scalar_i64_of(
        bound(
            &ctx,
            "SELECT count(*) FROM stored_warnings WHERE warning_id = $1",
            id,
        )
        .await?,
    )
    .await?
        == 0
    {
        return Err(Error::UnknownWarning(v.warning_id.clone()).into());
    }
    let visited = v
        .visited
        .map(|d| format!(" visited {d};"))
        .unwrap_or_default();
    let detail = format!("outcome {outcome};{visited} {}", v.reason);
    let event_key = format!("{status}:{outcome}");
    cache_bound(
        &ctx,
        "next_events",
        &format!(
            "WITH w AS (
               SELECT s.warning_id, s.household_id, s.kind, s.risk_type, s.severity, s.score, s.period, s.rules,
                 s.records, s.evidence, s.evidence_hash, s.new_evidence, s.estimate_per_capita, s.assessment,
                 {status} AS status, {outcome} AS outcome, s.first_seen, s.last_seen,
                 h.county_code, h.township_code, h.village_code,
                 {status} AS event,
                 'E' || substr(encode(sha256(s.warning_id || '|' || {event_key} || '|' || s.evidence_hash), 'hex'), 1, 16) AS event_id
               FROM stored_warnings s LEFT JOIN {ROSTER_HOUSEHOLD} h ON h.household_id = s.household_id
               WHERE s.warning_id = $1
             )
             SELECT event_id, warning_id, event,
               arrow_cast({now}, 'Timestamp(Microsecond, Some(\"UTC\"))') AS at,
               {today} AS as_of, evidence_hash, {detail} AS detail, {by} AS actor, {payload} AS payload
             FROM w",
            status = status.sql(),
            outcome = outcome.sql(),
            event_key = sql_text(&event_key),
            now = sql_text(&chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
            today = sql_text(&crate::identity::china_today().to_string()),
            detail = sql_text(&detail),
            by = sql_text(&v.by),
            payload = store::payload_sql(),
        ),
        id,
    )
    .await?;
    store::append_events(lake, &ctx).await?;
    let table = lake
        .table(WARNINGS)
        .await?
        .context("the warnings table vanished")?;
    table
        .update()
        .with_predicate(col("warning_id").eq(lit(v.warning_id.clone())))
        .with_update("status", lit(status.as_str()))
        .with_update("outcome", lit(outcome.as_str()))
        .with_writer_properties(crate::lake::writer_properties())
        .await
        .with_context(|| format!("cannot record the verification of {}", v.warning_id))?;
    Ok(Verified {
        warning_id: v.warning_id.clone(),
        status,
        outcome,
    })
}
