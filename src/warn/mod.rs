//! Early warnings: SQL rules over linked records, combined into one warning
//! per household × risk type × period, with state that remembers what staff
//! verified so the same warning is not raised twice.
//!
//! `rules` loads the rule files, `thresholds` the parameters they join to,
//! `state` decides what changes, `store` reads and writes the tables.

pub mod rules;
pub mod state;
pub mod store;
pub mod thresholds;

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use crate::config::SourceSchema;
use crate::lake::Lake;
use crate::lake::query::strings_of;
use crate::lake::tables::{ROSTER_HOUSEHOLD, ROSTER_PERSON};
use rules::Rule;
use state::{Event, Evidence};
use store::WARNINGS;

pub use crate::config::WarnConfig;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleSummary {
    pub rule: String,
    pub title: String,
    pub risk_type: String,
    /// Triggering linked records.
    pub records: usize,
    pub households: usize,
    /// Records that would trigger the rule but are still in link review.
    pub pending_review: usize,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WarnReport {
    pub as_of: String,
    pub rules: Vec<RuleSummary>,
    pub raised: usize,
    pub updated: usize,
    pub reopened: usize,
    pub unchanged: usize,
    pub suppressed: usize,
    /// (county code, risk type, open warnings)
    pub open_by_county: Vec<(String, String, i64)>,
}

/// `linked_<source>` as the staged rows whose link has `status`.
async fn register_linked_views(
    ctx: &SessionContext,
    config: &WarnConfig,
    sources: &HashSet<String>,
    status: &str,
) -> Result<HashSet<String>> {
    let mut ready = HashSet::new();
    for source in sources {
        let view = format!("linked_{source}");
        let _ = ctx.deregister_table(view.as_str());
        let staged = format!("staged_{source}");
        let link = crate::link::link_table(source);
        if !ctx.table_exist(staged.as_str())? || !ctx.table_exist(link.as_str())? {
            continue;
        }
        let schema = SourceSchema::load(&config.schemas_dir.join(format!("{source}.toml")))?;
        let key = schema.key.replace('"', "\"\"");
        ctx.sql(&format!(
            "CREATE VIEW {view} AS SELECT s.*, k.person_id, k.household_id, k.match_probability
             FROM {staged} s JOIN {link} k ON CAST(s.\"{key}\" AS VARCHAR) = CAST(k.\"{key}\" AS VARCHAR)
             WHERE k.status = '{status}'"
        ))
        .await?;
        ready.insert(source.clone());
    }
    Ok(ready)
}

struct Signal {
    household_id: String,
    risk_type: String,
    evidence: Evidence,
}

async fn run_rule(ctx: &SessionContext, rule: &Rule, as_of: NaiveDate) -> Result<Vec<Signal>> {
    let batches = ctx
        .sql(&rule.query(as_of))
        .await
        .with_context(|| format!("rule {} ({})", rule.id, rule.file))?
        .collect()
        .await
        .with_context(|| format!("rule {} ({})", rule.id, rule.file))?;
    let mut out = Vec::new();
    for batch in batches {
        let column = |name: &str| -> Result<Option<Vec<Option<String>>>> {
            batch.column_by_name(name).map(strings_of).transpose()
        };
        let need = |name: &str| -> Result<Vec<Option<String>>> {
            column(name)?.with_context(|| format!("rule {} returns no '{name}' column", rule.id))
        };
        let (household, person, key, date, amount, detail) = (
            need("household_id")?,
            need("person_id")?,
            need("record_key")?,
            need("event_date")?,
            need("amount")?,
            need("detail")?,
        );
        let severity = column("severity")?;
        let risk = column("risk_type")?;
        for i in 0..batch.num_rows() {
            let Some(household_id) = household[i].clone() else {
                continue;
            };
            out.push(Signal {
                household_id,
                risk_type: risk
                    .as_ref()
                    .and_then(|r| r[i].clone())
                    .unwrap_or_else(|| rule.risk_type.clone()),
                evidence: Evidence {
                    rule: rule.id.clone(),
                    source: rule.source.clone(),
                    record_key: key[i].clone().unwrap_or_default(),
                    person_id: person[i].clone(),
                    event_date: date[i].clone(),
                    amount: amount[i].as_deref().and_then(|a| a.parse().ok()),
                    detail: detail[i].clone().unwrap_or_default(),
                    severity: severity
                        .as_ref()
                        .and_then(|s| s[i].clone())
                        .unwrap_or_else(|| rule.severity.clone()),
                },
            });
        }
    }
    Ok(out)
}

/// Risk types each household is already monitored for (roster risk_types).
async fn monitored_risks(ctx: &SessionContext) -> Result<BTreeMap<String, HashSet<String>>> {
    let batches = ctx
        .sql(&format!(
            "SELECT household_id, risk_types FROM {ROSTER_HOUSEHOLD} WHERE risk_types IS NOT NULL"
        ))
        .await?
        .collect()
        .await?;
    let mut out = BTreeMap::new();
    for batch in batches {
        let ids = strings_of(batch.column(0))?;
        let risks = strings_of(batch.column(1))?;
        for (id, risk) in ids.into_iter().zip(risks) {
            if let (Some(id), Some(risk)) = (id, risk) {
                let set: HashSet<String> = risk
                    .split(['、', ',', '，', ';', '；', ' '])
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect();
                out.insert(id, set);
            }
        }
    }
    Ok(out)
}

/// Run every rule as of a date and bring `warnings` up to date.
pub async fn run(lake: &Lake, config: &WarnConfig, as_of: NaiveDate) -> Result<WarnReport> {
    let started = std::time::Instant::now();
    let rules = rules::load_dir(&config.rules_dir)?;
    let ctx = lake.session().await?;
    for t in [ROSTER_PERSON, ROSTER_HOUSEHOLD] {
        if !ctx.table_exist(t)? {
            bail!("no roster in the lake (table {t} is missing): ingest the roster first");
        }
    }
    thresholds::register(&ctx, &config.thresholds, &config.population_groups)?;
    // Every rule joins to it, in both passes: resolve the thresholds per
    // place once; each household takes its place's.
    let resolved = ctx
        .sql(&thresholds::place_thresholds_query(as_of))
        .await?
        .cache()
        .await?;
    ctx.register_table(thresholds::PLACE_THRESHOLDS, resolved.into_view())?;
    let per_household = ctx
        .sql(&thresholds::household_thresholds_query())
        .await?
        .into_view();
    ctx.register_table("household_thresholds", per_household)?;
    let sources: HashSet<String> = rules.iter().map(|r| r.source.clone()).collect();

    // Records still in link review: counted per rule, never warned on.
    let mut pending: BTreeMap<String, usize> = BTreeMap::new();
    let ready = register_linked_views(&ctx, config, &sources, "review").await?;
    for rule in rules.iter().filter(|r| ready.contains(&r.source)) {
        let keys: HashSet<String> = run_rule(&ctx, rule, as_of)
            .await?
            .into_iter()
            .map(|s| s.evidence.record_key)
            .collect();
        pending.insert(rule.id.clone(), keys.len());
    }

    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "pending-review pass done"
    );
    let ready = register_linked_views(&ctx, config, &sources, "linked").await?;
    let monitored = monitored_risks(&ctx).await?;
    let mut report = WarnReport {
        as_of: as_of.to_string(),
        ..Default::default()
    };
    let mut signals = Vec::new();
    for rule in &rules {
        let mut summary = RuleSummary {
            rule: rule.id.clone(),
            title: rule.title.clone(),
            risk_type: rule.risk_type.clone(),
            pending_review: pending.get(&rule.id).copied().unwrap_or(0),
            ..Default::default()
        };
        if !ready.contains(&rule.source) {
            summary.note = Some(format!("no linked {} data yet", rule.source));
            report.rules.push(summary);
            continue;
        }
        let found = run_rule(&ctx, rule, as_of).await?;
        summary.records = found
            .iter()
            .map(|s| &s.evidence.record_key)
            .collect::<HashSet<_>>()
            .len();
        summary.households = found
            .iter()
            .map(|s| &s.household_id)
            .collect::<HashSet<_>>()
            .len();
        report.rules.push(summary);
        signals.extend(found);
    }

    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        signals = signals.len(),
        "rules done"
    );
    // One warning per household × risk × period; the period is the year.
    let period = chrono::Datelike::year(&as_of).to_string();
    let mut kept = Vec::new();
    let mut suppressed = HashSet::new();
    for s in signals {
        if monitored
            .get(&s.household_id)
            .is_some_and(|r| r.contains(&s.risk_type))
        {
            suppressed.insert((s.household_id, s.risk_type));
            continue;
        }
        kept.push((s.household_id, s.risk_type, period.clone(), s.evidence));
    }
    report.suppressed = suppressed.len();
    let fresh = state::combine(kept, &as_of.to_string());

    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "signals combined"
    );
    let mut stored = store::read_warnings(&ctx).await?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        stored = stored.len(),
        "stored warnings read"
    );
    let mut events: Vec<Event> = Vec::new();
    for warning in fresh {
        match state::merge(stored.get(&warning.warning_id), warning) {
            Some((w, e)) => {
                match e.event.as_str() {
                    "raised" => report.raised += 1,
                    "reopened" => report.reopened += 1,
                    _ => report.updated += 1,
                }
                events.push(e);
                stored.insert(w.warning_id.clone(), w);
            }
            None => report.unchanged += 1,
        }
    }
    if !events.is_empty() {
        // Events first, idempotently; then the table. A crash in between is
        // repaired by the next run, which makes the same decisions.
        store::append_events(
            lake,
            &ctx,
            &events,
            &stored,
            &as_of.to_string(),
            "safetynet warn",
        )
        .await?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            events = events.len(),
            "events appended"
        );
        crate::failpoint::hit("warn:after-events");
        let all: Vec<&state::Warning> = stored.values().collect();
        store::write_warnings(lake, &ctx, &all).await?;
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
        for batch in batches {
            let c = strings_of(batch.column(0))?;
            let r = strings_of(batch.column(1))?;
            let n = strings_of(batch.column(2))?;
            for i in 0..batch.num_rows() {
                report.open_by_county.push((
                    c[i].clone().unwrap_or_default(),
                    r[i].clone().unwrap_or_default(),
                    n[i].as_deref().unwrap_or("0").parse().unwrap_or(0),
                ));
            }
        }
    }
    Ok(report)
}

/// What staff found on a household visit (or a decision to close).
#[derive(Debug, Clone)]
pub struct Verification {
    pub warning_id: String,
    /// included / not_included / risk_eliminated, or closed.
    pub outcome: String,
    pub reason: String,
    pub by: String,
    pub visited: Option<NaiveDate>,
}

pub const OUTCOMES: &[&str] = &["included", "not_included", "risk_eliminated", "closed"];

/// Record a verification: the warning's status becomes `verified` (or
/// `closed`) and an event keeps who, when and why.
pub async fn verify(lake: &Lake, v: &Verification) -> Result<state::Warning> {
    if !OUTCOMES.contains(&v.outcome.as_str()) {
        return Err(crate::error::Error::BadOutcome {
            given: v.outcome.clone(),
            allowed: OUTCOMES.join(", "),
        }
        .into());
    }
    let ctx = lake.session().await?;
    let mut stored = store::read_warnings(&ctx).await?;
    let Some(w) = stored.get_mut(&v.warning_id) else {
        return Err(crate::error::Error::UnknownWarning(v.warning_id.clone()).into());
    };
    w.status = if v.outcome == "closed" {
        "closed".into()
    } else {
        "verified".into()
    };
    w.outcome = Some(v.outcome.clone());
    let updated = w.clone();
    let visited = v
        .visited
        .map(|d| format!(" visited {d};"))
        .unwrap_or_default();
    let event = Event {
        event_id: state::event_id(
            &updated.warning_id,
            &format!("{}:{}", updated.status, v.outcome),
            &updated.evidence_hash,
        ),
        warning_id: updated.warning_id.clone(),
        event: updated.status.clone(),
        evidence_hash: updated.evidence_hash.clone(),
        detail: format!("outcome {};{visited} {}", v.outcome, v.reason),
    };
    let today = crate::identity::china_today().to_string();
    store::append_events(lake, &ctx, &[event], &stored, &today, &v.by).await?;
    let all: Vec<&state::Warning> = stored.values().collect();
    store::write_warnings(lake, &ctx, &all).await?;
    Ok(updated)
}
