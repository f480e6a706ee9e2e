//! The warning tables and how they are written, as plans:
//!
//! - `warnings`: one row per warning, its current state;
//! - `warning_evidence`: the evidence of every version of every warning
//!   (append-only, keyed by warning and evidence hash): what "new
//!   evidence" is judged against;
//! - `warning_events`: every change, with the payload pushed to the
//!   monitoring system (the delivery outbox).
//!
//! A run appends events first, then evidence, then rewrites `warnings`: a
//! crash in between is repaired by the next run, which makes the same
//! decisions and skips events and evidence already written.

use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use crate::lake::Lake;
use crate::lake::tables::{ROSTER_HOUSEHOLD, timestamp_type};
pub use crate::lake::tables::{WARNING_EVENTS, WARNING_EVIDENCE, WARNINGS};

/// The columns of `warnings`, and what a lake written before a column
/// existed reads in its place.
const WARNING_COLUMNS: &[(&str, &str)] = &[
    ("warning_id", "warning_id"),
    ("household_id", "household_id"),
    ("kind", "'clue'"),
    ("risk_type", "risk_type"),
    ("severity", "severity"),
    ("score", "score"),
    ("rank", "score"),
    ("period", "period"),
    ("rules", "rules"),
    ("records", "records"),
    ("evidence", "evidence"),
    ("evidence_hash", "evidence_hash"),
    ("new_evidence", "new_evidence"),
    ("estimate_per_capita", "CAST(NULL AS DOUBLE)"),
    ("assessment", "CAST(NULL AS VARCHAR)"),
    ("status", "status"),
    ("outcome", "outcome"),
    ("first_seen", "first_seen"),
    ("last_seen", "last_seen"),
    ("opened_on", "first_seen"),
];

/// Register `stored_warnings` (every column of [`WARNING_COLUMNS`], empty
/// when nothing is stored yet) and `stored_evidence`.
pub async fn register_stored(ctx: &SessionContext) -> Result<()> {
    let _ = ctx.deregister_table("stored_warnings");
    let _ = ctx.deregister_table("stored_evidence");
    let sql = if ctx.table_exist(WARNINGS)? {
        let present: Vec<String> = ctx
            .table(WARNINGS)
            .await?
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let select: Vec<String> = WARNING_COLUMNS
            .iter()
            .map(|(name, old)| {
                if present.iter().any(|p| p == name) {
                    name.to_string()
                } else {
                    format!("{old} AS {name}")
                }
            })
            .collect();
        format!(
            "SELECT {} FROM {WARNINGS}",
            select
                .iter()
                .map(|c| cast_column(c))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!(
            "SELECT {} WHERE false",
            WARNING_COLUMNS
                .iter()
                .map(|(name, _)| format!("CAST(NULL AS {}) AS {name}", sql_type(name)))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    crate::lake::kept::keep(ctx, "stored_warnings", ctx.sql(&sql).await?).await?;
    let evidence = if ctx.table_exist(WARNING_EVIDENCE)? {
        format!("SELECT * FROM {WARNING_EVIDENCE}")
    } else {
        "SELECT CAST(NULL AS VARCHAR) AS warning_id, CAST(NULL AS VARCHAR) AS evidence_hash,
           CAST(NULL AS VARCHAR) AS rule, CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS record_key,
           CAST(NULL AS VARCHAR) AS person_id, CAST(NULL AS DATE) AS event_date, CAST(NULL AS DOUBLE) AS amount,
           CAST(NULL AS VARCHAR) AS detail, CAST(NULL AS VARCHAR) AS severity WHERE false"
            .to_string()
    };
    ctx.register_table("stored_evidence", ctx.sql(&evidence).await?.into_view())?;
    Ok(())
}

fn sql_type(column: &str) -> &'static str {
    match column {
        "score" | "rank" | "estimate_per_capita" => "DOUBLE",
        "records" => "BIGINT",
        "first_seen" | "last_seen" | "opened_on" => "DATE",
        _ => "VARCHAR",
    }
}

/// `expr AS name` (or a bare column) cast to the column's type, so old and
/// new lakes read alike.
fn cast_column(select: &str) -> String {
    let (expr, name) = match select.rsplit_once(" AS ") {
        Some((e, n)) => (e.to_string(), n.to_string()),
        None => (select.to_string(), select.to_string()),
    };
    format!("CAST({expr} AS {}) AS {name}", sql_type(&name))
}

/// The schema of `warning_events`.
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("warning_id", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("at", timestamp_type(), false),
        Field::new("as_of", DataType::Utf8, false),
        Field::new("evidence_hash", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("actor", DataType::Utf8, false),
        // The warning as it stands after this event, as pushed to the
        // monitoring system: this table is also the delivery outbox, so a
        // change and its delivery item are one commit. NULL for changes the
        // monitoring system is not told of (a warning still queued).
        Field::new("payload", DataType::Utf8, true),
    ]))
}

/// What the monitoring system receives for one event of the relation
/// `rows` (a warning row with `event_id`, `event` and region codes): the
/// idempotency key (the event id, so one key always carries one content)
/// and the warning as it stands after the event.
pub fn payload_sql() -> &'static str {
    "'{\"idempotency_key\":' || sn_json(event_id) || ',\"warning_id\":' || sn_json(warning_id)
      || ',\"version\":' || sn_json(evidence_hash) || ',\"event\":' || sn_json(event)
      || ',\"status\":' || sn_json(status) || ',\"outcome\":' || coalesce(sn_json(outcome), 'null')
      || ',\"household_id\":' || sn_json(household_id)
      || ',\"county_code\":' || coalesce(sn_json(county_code), 'null')
      || ',\"township_code\":' || coalesce(sn_json(township_code), 'null')
      || ',\"village_code\":' || coalesce(sn_json(village_code), 'null')
      || ',\"kind\":' || sn_json(kind) || ',\"risk_type\":' || sn_json(risk_type)
      || ',\"severity\":' || sn_json(severity) || ',\"score\":' || CAST(score AS VARCHAR)
      || ',\"period\":' || sn_json(period) || ',\"rules\":' || sn_json(rules)
      || ',\"records\":' || CAST(records AS VARCHAR)
      || ',\"evidence\":' || evidence || ',\"new_evidence\":' || new_evidence
      || ',\"estimate_per_capita\":' || coalesce(CAST(round(estimate_per_capita, 2) AS VARCHAR), 'null')
      || ',\"assessment\":' || coalesce(assessment, 'null')
      || ',\"first_seen\":' || sn_json(CAST(first_seen AS VARCHAR))
      || ',\"last_seen\":' || sn_json(CAST(last_seen AS VARCHAR)) || '}'"
}

/// The rows of `sql`, appended to `table` in one commit (created with the
/// plan's schema when missing).
pub async fn append_plan(lake: &Lake, ctx: &SessionContext, table: &str, sql: &str) -> Result<()> {
    let plan = ctx
        .sql(sql)
        .await
        .with_context(|| format!("planning rows for {table}"))?
        .into_optimized_plan()?;
    lake.append_with_plan(ctx, table, plan).await
}

/// Append the events of `next_events` not recorded yet (by event id).
pub async fn append_events(lake: &Lake, ctx: &SessionContext) -> Result<()> {
    let known = if ctx.table_exist(WARNING_EVENTS)? {
        format!(" AND e.event_id NOT IN (SELECT event_id FROM {WARNING_EVENTS})")
    } else {
        String::new()
    };
    append_plan(
        lake,
        ctx,
        WARNING_EVENTS,
        &format!(
            "SELECT e.event_id, e.warning_id, e.event, e.at, e.as_of, e.evidence_hash, e.detail, e.actor, e.payload
             FROM next_events e WHERE true{known}"
        ),
    )
    .await
}

/// Append this run's evidence for every warning version not stored yet.
pub async fn append_evidence(lake: &Lake, ctx: &SessionContext) -> Result<()> {
    let known = if ctx.table_exist(WARNING_EVIDENCE)? {
        format!(
            " AND NOT EXISTS (SELECT 1 FROM {WARNING_EVIDENCE} s WHERE s.warning_id = i.warning_id AND s.evidence_hash = i.evidence_hash)"
        )
    } else {
        String::new()
    };
    append_plan(
        lake,
        ctx,
        WARNING_EVIDENCE,
        &format!(
            "SELECT i.warning_id, i.evidence_hash, i.rule, i.source, i.record_key, i.person_id,
               i.event_date, i.amount, i.detail, i.severity
             FROM fresh_items i WHERE true{known}"
        ),
    )
    .await
}

/// Rewrite `warnings` from `next_warnings`, with each household's region
/// codes from the roster.
pub async fn write_warnings(lake: &Lake, ctx: &SessionContext) -> Result<()> {
    let plan = ctx
        .sql(&format!(
            "SELECT w.warning_id, w.household_id,
               h.province_code, h.prefecture_code, h.county_code, h.township_code, h.village_code,
               w.kind, w.risk_type, w.severity, w.score, w.rank, w.period, w.rules, w.records, w.evidence,
               w.evidence_hash, w.new_evidence, w.estimate_per_capita, w.assessment, w.status, w.outcome,
               w.first_seen, w.last_seen, w.opened_on
             FROM next_warnings w LEFT JOIN {ROSTER_HOUSEHOLD} h ON w.household_id = h.household_id
             ORDER BY w.warning_id"
        ))
        .await?
        .into_optimized_plan()?;
    lake.overwrite_with_plan(ctx, WARNINGS, plan).await
}
