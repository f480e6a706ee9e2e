//! What a run changes, as SQL over `fresh_warnings` (this run) and
//! `stored_warnings` (the lake):
//!
//! - a new household × kind (or risk) × period is **raised**;
//! - an open or queued warning whose evidence changed is **updated**;
//! - a verified or closed warning stays as it is unless new evidence
//!   arrives — a record not seen before (in every-rule mode also a higher
//!   amount on a record) — and then it is **reopened**, listing what is new;
//! - otherwise nothing changes, so a re-run over unchanged data writes
//!   nothing.
//!
//! Then staff load (assessment mode): each village takes at most
//! `village_monthly_capacity` new tasks a month (thresholds table). Raised
//! and reopened warnings, and those already waiting, are ranked per
//! village; the first that fit become **open** (tasks), the rest are
//! **queued**: never dropped, they are **released** in rank order as the
//! months free capacity. A queued warning is not pushed to the monitoring
//! system until it is released.
//!
//! The result is two cached relations: `next_warnings` (every warning as
//! it stands after the run) and `next_events` (the changes, with payloads).

use anyhow::Result;
use chrono::{Datelike, NaiveDate};
use datafusion::prelude::SessionContext;

use super::status::Mode;
use super::store::payload_sql;
use crate::lake::tables::ROSTER_HOUSEHOLD;

/// The stage's run: its date, mode and who acts.
pub struct Step<'a> {
    /// The date the run looks from.
    pub as_of: NaiveDate,
    /// How warnings are decided.
    pub mode: Mode,
    /// Who the events name as actor.
    pub actor: &'a str,
}

fn text(v: &str) -> String {
    crate::lake::query::sql_text(v)
}

/// Register `next_warnings` and `next_events`.
pub async fn register_next(ctx: &SessionContext, step: &Step<'_>) -> Result<()> {
    let as_of = step.as_of;
    let month_start = as_of.with_day(1).unwrap_or(as_of);
    // A computed amount (wages lost so far) grows every month; in
    // assessment mode only a record not seen before is new evidence.
    let higher_amount_is_new = match step.mode {
        Mode::EveryRule => "OR coalesce(fi.amount, 0.0) > coalesce(si.amount, 0.0) + 1e-9",
        Mode::Assessment => "",
    };
    let capacity = match step.mode {
        Mode::Assessment => format!(
            "SELECT h.village_code, min(t.value) AS capacity FROM household_thresholds t
             JOIN {ROSTER_HOUSEHOLD} h ON h.household_id = t.household_id
             WHERE t.parameter = 'village_monthly_capacity' GROUP BY h.village_code"
        ),
        Mode::EveryRule => {
            "SELECT CAST(NULL AS VARCHAR) AS village_code, CAST(NULL AS DOUBLE) AS capacity WHERE false"
                .to_string()
        }
    };
    let merged = format!(
        "WITH
si AS (
  SELECT e.* FROM stored_evidence e JOIN stored_warnings s
    ON e.warning_id = s.warning_id AND e.evidence_hash = s.evidence_hash
),
added AS (
  SELECT fi.warning_id, fi.item_json, fi.event_date, fi.rule, fi.source, fi.record_key
  FROM fresh_items fi LEFT JOIN si
    ON si.warning_id = fi.warning_id AND si.rule = fi.rule AND si.source = fi.source AND si.record_key = fi.record_key
  WHERE si.warning_id IS NULL {higher_amount_is_new}
),
added_by AS (
  SELECT warning_id, count(*) AS n,
    '[' || string_agg(item_json, ',' ORDER BY event_date ASC NULLS FIRST, rule, source, record_key) || ']' AS json,
    string_agg(record_key, ', ' ORDER BY event_date ASC NULLS FIRST, rule, source, record_key) AS keys
  FROM added GROUP BY warning_id
),
joined AS (
  SELECT f.warning_id AS f_id, s.warning_id AS s_id, s.status AS s_status,
    a.n AS added_n, a.json AS added_json, a.keys AS added_keys,
    CASE
      WHEN s.warning_id IS NULL THEN 'raised'
      WHEN f.warning_id IS NULL OR f.evidence_hash = s.evidence_hash THEN NULL
      WHEN s.status IN ('verified', 'closed') AND coalesce(a.n, 0) = 0 THEN NULL
      WHEN s.status IN ('verified', 'closed') THEN 'reopened'
      ELSE 'updated'
    END AS change,
    f.household_id AS f_household_id, f.kind AS f_kind, f.risk_type AS f_risk_type, f.severity AS f_severity,
    f.score AS f_score, f.rank AS f_rank, f.period AS f_period, f.rules AS f_rules, f.records AS f_records,
    f.evidence AS f_evidence, f.evidence_hash AS f_evidence_hash, f.estimate_per_capita AS f_estimate,
    f.assessment AS f_assessment, f.last_seen AS f_last_seen,
    s.household_id AS s_household_id, s.kind AS s_kind, s.risk_type AS s_risk_type, s.severity AS s_severity,
    s.score AS s_score, s.rank AS s_rank, s.period AS s_period, s.rules AS s_rules, s.records AS s_records,
    s.evidence AS s_evidence, s.evidence_hash AS s_evidence_hash, s.new_evidence AS s_new_evidence,
    s.estimate_per_capita AS s_estimate, s.assessment AS s_assessment, s.outcome AS s_outcome,
    s.first_seen AS s_first_seen, s.last_seen AS s_last_seen, s.opened_on AS s_opened_on
  FROM fresh_warnings f FULL OUTER JOIN stored_warnings s ON f.warning_id = s.warning_id
  LEFT JOIN added_by a ON a.warning_id = f.warning_id
),
merged AS (
  SELECT coalesce(f_id, s_id) AS warning_id, change, s_status AS before,
    CASE WHEN change IS NULL THEN s_household_id ELSE f_household_id END AS household_id,
    CASE WHEN change IS NULL THEN s_kind ELSE f_kind END AS kind,
    CASE WHEN change IS NULL THEN s_risk_type ELSE f_risk_type END AS risk_type,
    CASE WHEN change IS NULL THEN s_severity ELSE f_severity END AS severity,
    CASE WHEN change IS NULL THEN s_score ELSE f_score END AS score,
    CASE WHEN change IS NULL THEN s_rank ELSE f_rank END AS rank,
    CASE WHEN change IS NULL THEN s_period ELSE f_period END AS period,
    CASE WHEN change IS NULL THEN s_rules ELSE f_rules END AS rules,
    CASE WHEN change IS NULL THEN s_records ELSE f_records END AS records,
    CASE WHEN change IS NULL THEN s_evidence ELSE f_evidence END AS evidence,
    CASE WHEN change IS NULL THEN s_evidence_hash ELSE f_evidence_hash END AS evidence_hash,
    CASE WHEN change IS NULL THEN s_new_evidence ELSE coalesce(added_json, '[]') END AS new_evidence,
    CASE WHEN change IS NULL THEN s_estimate ELSE f_estimate END AS estimate_per_capita,
    CASE WHEN change IS NULL THEN s_assessment ELSE f_assessment END AS assessment,
    CASE WHEN change IN ('raised', 'reopened') THEN 'open' ELSE s_status END AS status,
    CASE WHEN change IN ('raised', 'reopened') THEN CAST(NULL AS VARCHAR) ELSE s_outcome END AS outcome,
    coalesce(s_first_seen, DATE '{as_of}') AS first_seen,
    CASE WHEN change IS NULL THEN s_last_seen ELSE coalesce(f_last_seen, DATE '{as_of}') END AS last_seen,
    s_opened_on AS opened_on,
    -- New and reopened warnings ask for a task, and so do queued ones that
    -- this run still supports (one it no longer supports stays queued).
    (coalesce(change IN ('raised', 'reopened'), false)
      OR (f_id IS NOT NULL AND coalesce(change, 'same') IN ('same', 'updated') AND coalesce(s_status, '') = 'queued'))
      AS candidate,
    added_keys
  FROM joined
),
placed AS (
  SELECT m.*, h.village_code FROM merged m LEFT JOIN {ROSTER_HOUSEHOLD} h ON h.household_id = m.household_id
),
capacity AS ({capacity}),
used AS (
  SELECT village_code, count(*) AS used FROM placed
  WHERE NOT candidate AND status IN ('open', 'verified', 'closed') AND opened_on >= DATE '{month_start}'
  GROUP BY village_code
),
ranked AS (
  SELECT p.*, c.capacity, coalesce(u.used, 0) AS used,
    row_number() OVER (PARTITION BY p.village_code, p.candidate ORDER BY p.rank DESC, p.warning_id) AS place
  FROM placed p LEFT JOIN capacity c ON c.village_code = p.village_code
  LEFT JOIN used u ON u.village_code = p.village_code
)
SELECT warning_id, household_id, village_code, kind, risk_type, severity, score, rank, period, rules, records,
  evidence, evidence_hash, new_evidence, estimate_per_capita, assessment,
  CASE WHEN NOT candidate THEN status
       WHEN capacity IS NULL OR CAST(place AS DOUBLE) <= greatest(0.0, capacity - CAST(used AS DOUBLE)) THEN 'open'
       ELSE 'queued' END AS status,
  outcome, first_seen, last_seen,
  CASE WHEN candidate AND (capacity IS NULL OR CAST(place AS DOUBLE) <= greatest(0.0, capacity - CAST(used AS DOUBLE)))
       THEN DATE '{as_of}' ELSE opened_on END AS opened_on,
  change, before, added_keys
FROM ranked"
    );
    crate::lake::kept::keep(ctx, "next_all", ctx.sql(&merged).await?).await?;

    let next = ctx
        .sql(
            "SELECT warning_id, household_id, kind, risk_type, severity, score, rank, period, rules, records,
               evidence, evidence_hash, new_evidence, estimate_per_capita, assessment, status, outcome,
               first_seen, last_seen, opened_on
             FROM next_all",
        )
        .await?
        .into_view();
    let _ = ctx.deregister_table("next_warnings");
    ctx.register_table("next_warnings", next)?;

    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let events = format!(
        "WITH changed AS (
           SELECT n.*, h.county_code, h.township_code,
             CASE
               WHEN change = 'raised' AND status = 'queued' THEN 'queued'
               WHEN change IN ('raised', 'reopened') THEN change
               WHEN before = 'queued' AND status = 'open' THEN 'released'
               ELSE change
             END AS event
           FROM next_all n LEFT JOIN {ROSTER_HOUSEHOLD} h ON h.household_id = n.household_id
         ),
         events AS (
           SELECT *, 'E' || substr(encode(sha256(warning_id || '|' || event || '|' || evidence_hash), 'hex'), 1, 16) AS event_id
           FROM changed WHERE event IS NOT NULL
         )
         SELECT event_id, warning_id, event,
           arrow_cast({now}, 'Timestamp(Microsecond, Some(\"UTC\"))') AS at,
           {as_of_text} AS as_of, evidence_hash,
           CASE event
             WHEN 'raised' THEN CAST(records AS VARCHAR) || ' record(s): ' || rules
             WHEN 'queued' THEN CAST(records AS VARCHAR) || ' record(s): ' || rules || '; waiting for the village''s capacity'
             WHEN 'updated' THEN 'evidence now ' || CAST(records AS VARCHAR) || ' record(s); new: ' || coalesce(added_keys, '')
             WHEN 'reopened' THEN 'new evidence after ' || before || ': ' || coalesce(added_keys, '')
             WHEN 'released' THEN 'a task now: the village had capacity this month (rank ' || CAST(round(rank, 3) AS VARCHAR) || ')'
           END AS detail,
           {actor} AS actor,
           CASE WHEN status = 'queued' AND event IN ('queued', 'updated') THEN CAST(NULL AS VARCHAR)
                ELSE {payload} END AS payload
         FROM events",
        now = text(&now.to_string()),
        as_of_text = text(&as_of.to_string()),
        actor = text(step.actor),
        payload = payload_sql(),
    );
    crate::lake::kept::keep(ctx, "next_events", ctx.sql(&events).await?).await?;
    Ok(())
}
