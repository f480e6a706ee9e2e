//! This run's warnings, before they meet the stored ones, as two cached
//! relations: `fresh_items` (the evidence, one row per record and rule or
//! component) and `fresh_warnings` (one row per warning).
//!
//! - **Every-rule mode**: one warning per household × risk type × period,
//!   from the rules' clues alone; every clue makes a task.
//! - **Assessment mode**: one warning per household × kind × period, from
//!   the household's assessment (`assessment`); its evidence is the
//!   assessment's records and the rules' clues about the household.
//!
//! In both, a household already monitored for the risk type (the roster's
//! `risk_types`) is not warned again; such cases are counted.

use anyhow::Result;
use datafusion::prelude::SessionContext;

use super::cache;
use super::status::{Kind, Mode};
use crate::lake::query::{scalar_i64, sql_text};
use crate::lake::tables::ROSTER_HOUSEHOLD;

/// A piece of evidence as JSON, the fields `Evidence` reads.
const ITEM_JSON: &str = "'{\"rule\":' || sn_json(rule) || ',\"source\":' || sn_json(source) \
    || ',\"record_key\":' || sn_json(record_key) || ',\"person_id\":' || coalesce(sn_json(person_id), 'null') \
    || ',\"event_date\":' || coalesce(sn_json(CAST(event_date AS VARCHAR)), 'null') \
    || ',\"amount\":' || coalesce(CAST(amount AS VARCHAR), 'null') \
    || ',\"detail\":' || sn_json(detail) || ',\"severity\":' || sn_json(severity) || '}'";

/// The order evidence is listed in (and hashed in).
const ITEM_ORDER: &str = "event_date ASC NULLS FIRST, rule, source, record_key";

/// `W` and 16 hex digits of SHA-256 over the parts joined by `|`: stable
/// across runs, so one warning keeps one id.
pub fn warning_id_sql(parts: &[&str]) -> String {
    format!(
        "'W' || substr(encode(sha256({}), 'hex'), 1, 16)",
        parts.join(" || '|' || ")
    )
}

/// What combining counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Household × risk pairs not warned because already monitored for it.
    pub suppressed: usize,
}

/// Register `monitored_risks`: (household_id, risk_type) the roster
/// already monitors.
pub async fn register_monitored(ctx: &SessionContext) -> Result<()> {
    cache(
        ctx,
        "monitored_risks",
        &format!(
            "SELECT DISTINCT household_id, trim(risk) AS risk_type FROM (
               SELECT household_id,
                 unnest(string_to_array(regexp_replace(risk_types, '[、,，;； ]+', ',', 'g'), ',')) AS risk
               FROM {ROSTER_HOUSEHOLD} WHERE risk_types IS NOT NULL
             ) WHERE trim(risk) <> ''"
        ),
    )
    .await
}

/// Build `fresh_items` and `fresh_warnings` from `signals` (and, in
/// assessment mode, `assessment_items`).
pub async fn register_fresh(ctx: &SessionContext, mode: Mode, period: &str) -> Result<Counts> {
    let period_text = sql_text(period);
    let mut counts = Counts::default();
    match mode {
        Mode::EveryRule => {
            counts.suppressed = scalar_i64(
                ctx,
                "SELECT count(*) FROM (SELECT DISTINCT s.household_id, s.risk_type FROM signals s
                   JOIN monitored_risks m ON m.household_id = s.household_id AND m.risk_type = s.risk_type)",
            )
            .await? as usize;
            let id = warning_id_sql(&["household_id", "risk_type", &period_text]);
            cache(
                ctx,
                "items_unhashed",
                &format!(
                    "SELECT {id} AS warning_id, household_id, risk_type, rule, source, record_key, person_id,
                       event_date, amount, detail, severity, {ITEM_JSON} AS item_json
                     FROM (SELECT s.*, row_number() OVER (PARTITION BY s.household_id, s.risk_type, s.rule, s.source, s.record_key
                             ORDER BY s.event_date ASC NULLS FIRST, s.amount DESC NULLS LAST, s.detail, s.severity, s.person_id) AS n
                           FROM signals s
                           LEFT JOIN monitored_risks m ON m.household_id = s.household_id AND m.risk_type = s.risk_type
                           WHERE m.household_id IS NULL)
                     WHERE n = 1"
                ),
            )
            .await?;
            cache(
                ctx,
                "fresh_warnings",
                &format!(
                    "WITH by_rule AS (
                       SELECT warning_id, rule, max(CASE severity WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END) AS r
                       FROM items_unhashed GROUP BY warning_id, rule
                     ),
                     rules AS (
                       SELECT warning_id, string_agg(rule, ',' ORDER BY rule) AS rules,
                         CAST(sum(r) AS DOUBLE) AS rule_points, max(r) AS top
                       FROM by_rule GROUP BY warning_id
                     ),
                     items AS (
                       SELECT warning_id, min(household_id) AS household_id, min(risk_type) AS risk_type, count(*) AS records,
                         '[' || string_agg(item_json, ',' ORDER BY {ITEM_ORDER}) || ']' AS evidence,
                         max(event_date) AS last_seen
                       FROM items_unhashed GROUP BY warning_id
                     )
                     SELECT i.warning_id, i.household_id, {clue} AS kind, i.risk_type, {period_text} AS period,
                       CASE r.top WHEN 3 THEN 'high' WHEN 2 THEN 'medium' ELSE 'low' END AS severity,
                       round(r.rule_points + 0.1 * CAST(i.records AS DOUBLE), 1) AS score,
                       round(r.rule_points + 0.1 * CAST(i.records AS DOUBLE), 1) AS rank,
                       r.rules, i.records, i.evidence,
                       substr(encode(sha256(i.evidence), 'hex'), 1, 16) AS evidence_hash,
                       CAST(NULL AS DOUBLE) AS estimate_per_capita, CAST(NULL AS VARCHAR) AS assessment,
                       i.last_seen
                     FROM items i JOIN rules r ON r.warning_id = i.warning_id",
                    clue = Kind::Clue.sql(),
                ),
            )
            .await?;
        }
        Mode::Assessment => {
            cache(ctx, "decisions_all", &super::assessment::decisions_sql()).await?;
            counts.suppressed = scalar_i64(
                ctx,
                "SELECT count(*) FROM decisions_all d JOIN monitored_risks m
                   ON m.household_id = d.household_id AND m.risk_type = d.risk_type",
            )
            .await? as usize;
            let id = warning_id_sql(&["d.household_id", "d.kind", &period_text]);
            cache(
                ctx,
                "decisions",
                &format!(
                    "SELECT {id} AS warning_id, d.* FROM decisions_all d
                     LEFT JOIN monitored_risks m ON m.household_id = d.household_id AND m.risk_type = d.risk_type
                     WHERE m.household_id IS NULL"
                ),
            )
            .await?;
            // The evidence: what the assessment counted, and the rules'
            // clues about the same household. A component and a rule may
            // share a name (job_loss) and see the same record: the
            // assessment's row is kept, and every column breaks ties, so a
            // re-run picks the same row and the evidence hash stays put.
            cache(
                ctx,
                "items_unhashed",
                &format!(
                    "SELECT warning_id, household_id, risk_type, rule, source, record_key, person_id,
                       event_date, amount, detail, severity, {ITEM_JSON} AS item_json
                     FROM (
                       SELECT x.*, row_number() OVER (PARTITION BY x.warning_id, x.rule, x.source, x.record_key
                                ORDER BY x.event_date ASC NULLS FIRST, x.amount DESC NULLS LAST, x.from_rule, x.detail, x.severity, x.person_id) AS n
                       FROM (
                         SELECT d.warning_id, d.household_id, d.risk_type, a.component AS rule, a.source, a.record_key,
                           a.person_id, a.event_date, a.amount, a.title || '：' || a.detail AS detail,
                           CASE WHEN a.effect = 'failure' THEN 'high' ELSE 'medium' END AS severity, 0 AS from_rule
                         FROM decisions d JOIN assessment_items a ON a.household_id = d.household_id
                         UNION ALL
                         SELECT d.warning_id, d.household_id, d.risk_type, s.rule, s.source, s.record_key,
                           s.person_id, s.event_date, s.amount, s.detail, s.severity, 1 AS from_rule
                         FROM decisions d JOIN signals s ON s.household_id = d.household_id
                       ) x
                     ) WHERE n = 1"
                ),
            )
            .await?;
            cache(
                ctx,
                "fresh_warnings",
                &format!(
                    "WITH items AS (
                       SELECT warning_id, count(*) AS records,
                         '[' || string_agg(item_json, ',' ORDER BY {ITEM_ORDER}) || ']' AS evidence,
                         max(event_date) AS last_seen
                       FROM items_unhashed GROUP BY warning_id
                     ),
                     rules AS (
                       SELECT warning_id, string_agg(rule, ',' ORDER BY rule) AS rules
                       FROM (SELECT DISTINCT warning_id, rule FROM items_unhashed) GROUP BY warning_id
                     )
                     SELECT d.warning_id, d.household_id, d.kind, d.risk_type, {period_text} AS period,
                       d.severity, round(d.rank, 3) AS score, d.rank,
                       coalesce(r.rules, '') AS rules, coalesce(i.records, 0) AS records,
                       coalesce(i.evidence, '[]') AS evidence,
                       substr(encode(sha256(coalesce(i.evidence, '[]') || coalesce(d.assessment, '')), 'hex'), 1, 16) AS evidence_hash,
                       d.estimate_per_capita, d.assessment, i.last_seen
                     FROM decisions d
                     LEFT JOIN items i ON i.warning_id = d.warning_id
                     LEFT JOIN rules r ON r.warning_id = d.warning_id"
                ),
            )
            .await?;
        }
    }
    cache(
        ctx,
        "fresh_items",
        "SELECT i.warning_id, f.evidence_hash, i.rule, i.source, i.record_key, i.person_id,
           i.event_date, i.amount, i.detail, i.severity, i.item_json
         FROM items_unhashed i JOIN fresh_warnings f ON f.warning_id = i.warning_id",
    )
    .await?;
    Ok(counts)
}
