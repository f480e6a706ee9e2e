//! Reading and writing `warnings` and `warning_events`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::Utc;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::state::{Event, Warning};
use crate::lake::Lake;
use crate::lake::query::{first_column, register_keys, rows_of, strings_of};
use crate::lake::tables::{ROSTER_HOUSEHOLD, timestamp_type};

pub const WARNINGS: &str = "warnings";
pub const WARNING_EVENTS: &str = "warning_events";

/// Stored warnings by id.
pub async fn read_warnings(ctx: &SessionContext) -> Result<BTreeMap<String, Warning>> {
    let mut out = BTreeMap::new();
    if !ctx.table_exist(WARNINGS)? {
        return Ok(out);
    }
    let batches = ctx
        .sql(&format!(
            "SELECT warning_id, household_id, risk_type, period, severity, score, rules, records, evidence, evidence_hash,
                    new_evidence, status, outcome, CAST(first_seen AS VARCHAR) AS first_seen, CAST(last_seen AS VARCHAR) AS last_seen
             FROM {WARNINGS}"
        ))
        .await?
        .collect()
        .await?;
    for row in rows_of(&batches)? {
        let get = |k: &str| row.get(k).cloned().unwrap_or_default();
        let warning = Warning {
            warning_id: get("warning_id"),
            household_id: get("household_id"),
            risk_type: get("risk_type"),
            period: get("period"),
            severity: get("severity"),
            score: get("score").parse().unwrap_or(0.0),
            rules: get("rules"),
            records: get("records").parse().unwrap_or(0),
            evidence: serde_json::from_str(&get("evidence"))
                .context("bad evidence JSON in warnings")?,
            evidence_hash: get("evidence_hash"),
            new_evidence: serde_json::from_str(
                &row.get("new_evidence")
                    .cloned()
                    .unwrap_or_else(|| "[]".into()),
            )
            .unwrap_or_default(),
            status: get("status"),
            outcome: row.get("outcome").cloned(),
            first_seen: get("first_seen"),
            last_seen: get("last_seen"),
        };
        out.insert(warning.warning_id.clone(), warning);
    }
    Ok(out)
}

fn warning_rows_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("warning_id", DataType::Utf8, false),
        Field::new("household_id", DataType::Utf8, false),
        Field::new("risk_type", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("period", DataType::Utf8, false),
        Field::new("rules", DataType::Utf8, false),
        Field::new("records", DataType::Int64, false),
        Field::new("evidence", DataType::Utf8, false),
        Field::new("evidence_hash", DataType::Utf8, false),
        Field::new("new_evidence", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("outcome", DataType::Utf8, true),
        Field::new("first_seen", DataType::Utf8, false),
        Field::new("last_seen", DataType::Utf8, false),
    ]))
}

/// Replace the `warnings` table with `warnings`, adding each household's
/// region codes from the roster.
pub async fn write_warnings(
    lake: &Lake,
    ctx: &SessionContext,
    warnings: &[&Warning],
) -> Result<()> {
    let text = |f: &dyn Fn(&Warning) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(warnings.iter().map(|w| f(w))))
    };
    let columns: Vec<ArrayRef> = vec![
        text(&|w| w.warning_id.clone()),
        text(&|w| w.household_id.clone()),
        text(&|w| w.risk_type.clone()),
        text(&|w| w.severity.clone()),
        Arc::new(Float64Array::from_iter_values(
            warnings.iter().map(|w| w.score),
        )),
        text(&|w| w.period.clone()),
        text(&|w| w.rules.clone()),
        Arc::new(Int64Array::from_iter_values(
            warnings.iter().map(|w| w.records),
        )),
        text(&|w| serde_json::to_string(&w.evidence).unwrap_or_default()),
        text(&|w| w.evidence_hash.clone()),
        text(&|w| serde_json::to_string(&w.new_evidence).unwrap_or_default()),
        text(&|w| w.status.clone()),
        Arc::new(StringArray::from(
            warnings
                .iter()
                .map(|w| w.outcome.clone())
                .collect::<Vec<_>>(),
        )),
        text(&|w| w.first_seen.clone()),
        text(&|w| w.last_seen.clone()),
    ];
    let schema = warning_rows_schema();
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    tracing::debug!(warnings = warnings.len(), "warning rows built");
    let _ = ctx.deregister_table("warning_rows");
    ctx.register_table(
        "warning_rows",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    let plan = ctx
        .sql(
            "SELECT w.warning_id, w.household_id,
                    h.province_code, h.prefecture_code, h.county_code, h.township_code, h.village_code,
                    w.risk_type, w.severity, w.score, w.period, w.rules, w.records, w.evidence, w.evidence_hash,
                    w.new_evidence, w.status, w.outcome,
                    CAST(w.first_seen AS DATE) AS first_seen, CAST(w.last_seen AS DATE) AS last_seen
             FROM warning_rows w LEFT JOIN roster_household h ON w.household_id = h.household_id
             ORDER BY w.warning_id",
        )
        .await?
        .into_optimized_plan()?;
    lake.overwrite_with_plan(ctx, WARNINGS, plan).await
}

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
        // change and its delivery item are one commit.
        Field::new("payload", DataType::Utf8, true),
    ]))
}

/// Region codes of the households of `warnings`, from the roster.
async fn household_regions(
    ctx: &SessionContext,
    warnings: &[&Warning],
) -> Result<BTreeMap<String, [Option<String>; 3]>> {
    let mut out = BTreeMap::new();
    if !ctx.table_exist(ROSTER_HOUSEHOLD)? || warnings.is_empty() {
        return Ok(out);
    }
    let ids: HashSet<&str> = warnings.iter().map(|w| w.household_id.as_str()).collect();
    register_keys(ctx, "event_households", "id", ids)?;
    let batches = ctx
        .sql(&format!(
            "SELECT h.household_id, h.county_code, h.township_code, h.village_code
             FROM {ROSTER_HOUSEHOLD} h JOIN event_households e ON h.household_id = e.id"
        ))
        .await?
        .collect()
        .await?;
    for batch in &batches {
        let columns: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .map(strings_of)
            .collect::<Result<_>>()?;
        let [ids, county, township, village] = &columns[..] else {
            continue;
        };
        for (i, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                out.insert(
                    id.clone(),
                    [county[i].clone(), township[i].clone(), village[i].clone()],
                );
            }
        }
    }
    Ok(out)
}

/// What the monitoring system receives for one event: the idempotency key
/// (the event id, so one key always carries one content) and the warning
/// as it stands after the event. Serialised straight from borrowed fields:
/// at province scale there are over a million of them per run.
#[derive(serde::Serialize)]
struct Payload<'a> {
    idempotency_key: &'a str,
    warning_id: &'a str,
    version: &'a str,
    event: &'a str,
    status: &'a str,
    outcome: &'a Option<String>,
    household_id: &'a str,
    county_code: Option<&'a str>,
    township_code: Option<&'a str>,
    village_code: Option<&'a str>,
    risk_type: &'a str,
    severity: &'a str,
    score: f64,
    period: &'a str,
    rules: &'a str,
    records: i64,
    evidence: &'a [super::state::Evidence],
    new_evidence: &'a [super::state::Evidence],
    first_seen: &'a str,
    last_seen: &'a str,
}

pub fn payload(event: &Event, w: &Warning, regions: Option<&[Option<String>; 3]>) -> String {
    let region = |i: usize| regions.and_then(|r| r[i].as_deref());
    serde_json::to_string(&Payload {
        idempotency_key: &event.event_id,
        warning_id: &w.warning_id,
        version: &w.evidence_hash,
        event: &event.event,
        status: &w.status,
        outcome: &w.outcome,
        household_id: &w.household_id,
        county_code: region(0),
        township_code: region(1),
        village_code: region(2),
        risk_type: &w.risk_type,
        severity: &w.severity,
        score: w.score,
        period: &w.period,
        rules: &w.rules,
        records: w.records,
        evidence: &w.evidence,
        new_evidence: &w.new_evidence,
        first_seen: &w.first_seen,
        last_seen: &w.last_seen,
    })
    .unwrap_or_default()
}

/// Append events with their delivery payloads (the state of each warning in
/// `warnings` after this change), skipping any already recorded: a re-run
/// after a crash between the two writes produces the same event ids, and a
/// key once written never changes content.
pub async fn append_events(
    lake: &Lake,
    ctx: &SessionContext,
    events: &[Event],
    warnings: &BTreeMap<String, Warning>,
    as_of: &str,
    actor: &str,
) -> Result<usize> {
    let known: HashSet<String> = if ctx.table_exist(WARNING_EVENTS)? {
        first_column(ctx, &format!("SELECT event_id FROM {WARNING_EVENTS}"))
            .await?
            .into_iter()
            .flatten()
            .collect()
    } else {
        HashSet::new()
    };
    let fresh: Vec<&Event> = events
        .iter()
        .filter(|e| !known.contains(&e.event_id))
        .collect();
    if fresh.is_empty() {
        return Ok(0);
    }
    let n = fresh.len();
    let changed: Vec<&Warning> = fresh
        .iter()
        .filter_map(|e| warnings.get(&e.warning_id))
        .collect();
    let regions = household_regions(ctx, &changed).await?;
    let payloads: Vec<Option<String>> = fresh
        .iter()
        .map(|e| {
            warnings
                .get(&e.warning_id)
                .map(|w| payload(e, w, regions.get(&w.household_id)))
        })
        .collect();
    tracing::debug!(events = n, "delivery payloads built");
    let text = |f: &dyn Fn(&Event) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(fresh.iter().map(|e| f(e))))
    };
    let batch = RecordBatch::try_new(
        events_schema(),
        vec![
            text(&|e| e.event_id.clone()),
            text(&|e| e.warning_id.clone()),
            text(&|e| e.event.clone()),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Utc::now().timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec![as_of; n])),
            text(&|e| e.evidence_hash.clone()),
            text(&|e| e.detail.clone()),
            Arc::new(StringArray::from(vec![actor; n])),
            Arc::new(StringArray::from(payloads)),
        ],
    )?;
    lake.append(WARNING_EVENTS, &events_schema(), vec![batch])
        .await?;
    Ok(n)
}
