//! The outbox and its delivery log.
//!
//! The outbox is `warning_events`: every event that changes a warning is
//! written with its payload in the same commit. Each delivery attempt is
//! appended to `deliveries`; an item's state is derived from its attempts,
//! so both tables are append-only and a crash loses at most the record of
//! an attempt, which is then simply made again with the same key and body.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::lake::Lake;
use crate::lake::query::{bound, register_keys, rows_of};
pub use crate::lake::tables::DELIVERIES;
use crate::lake::tables::timestamp_type;
use crate::warn::store::WARNING_EVENTS;

/// Outcomes of one attempt, as stored in `deliveries.outcome`.
pub const DELIVERED: &str = "delivered";
/// The attempt failed in a way worth retrying (5xx, 408, 429, timeout).
pub const RETRY: &str = "retry";
/// The receiver refused the item; it is not retried.
pub const REJECTED: &str = "rejected";
/// The item used up its attempts.
pub const DEAD: &str = "dead";
/// Written by `deliver --requeue`: attempts before it no longer count.
pub const REQUEUED: &str = "requeued";

/// The schema of [`DELIVERIES`].
pub fn deliveries_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("idempotency_key", DataType::Utf8, false),
        Field::new("warning_id", DataType::Utf8, false),
        Field::new("batch_id", DataType::Utf8, false),
        Field::new("attempt", DataType::Int64, false),
        Field::new("at", timestamp_type(), false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("http_status", DataType::Int32, true),
        Field::new("error", DataType::Utf8, true),
        Field::new("next_attempt_at", timestamp_type(), true),
    ]))
}

/// Where one outbox item stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not yet delivered; `next` is when it may be tried (None: now).
    Pending {
        /// When it may next be tried (None: now).
        next: Option<DateTime<Utc>>,
    },
    /// The receiver accepted it.
    Delivered,
    /// The receiver refused it (a 4xx other than 408/429).
    Rejected,
    /// Every allowed attempt failed.
    Dead,
}

impl State {
    /// The state's name, as the API and `deliveries.outcome` spell it.
    pub fn name(&self) -> &'static str {
        match self {
            State::Pending { .. } => "pending",
            State::Delivered => DELIVERED,
            State::Rejected => REJECTED,
            State::Dead => DEAD,
        }
    }
}

/// One outbox item and its delivery state.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The event's id, sent as the Idempotency-Key header.
    pub idempotency_key: String,
    /// The warning the event belongs to.
    pub warning_id: String,
    /// The warning event (`raised`, `reopened`, …).
    pub event: String,
    /// When the event was written.
    pub created: DateTime<Utc>,
    /// Attempts so far (since the last requeue).
    pub attempts: i64,
    /// Where it stands.
    pub state: State,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// When it was last tried.
    pub last_attempt: Option<DateTime<Utc>>,
}

fn micros(text: Option<&String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| t.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_micros)
}

/// Every outbox item with its state, oldest first; only those of one
/// warning when `warning` is given.
pub async fn items(ctx: &SessionContext, warning: Option<&str>) -> Result<Vec<Item>> {
    // One warning's items: its id is bound as $1.
    let only = if warning.is_some() {
        " AND warning_id = $1"
    } else {
        ""
    };
    let values: Vec<&str> = warning.into_iter().collect();
    if !ctx.table_exist(WARNING_EVENTS)? {
        return Ok(Vec::new());
    }
    let batches = bound(
        ctx,
        &format!(
            "SELECT event_id, warning_id, event, CAST(CAST(at AS BIGINT) AS VARCHAR) AS at_us
             FROM {WARNING_EVENTS} WHERE payload IS NOT NULL{only} ORDER BY CAST(at AS BIGINT), event_id"
        ),
        &values,
    )
    .await?
    .collect()
    .await?;
    let mut attempts: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    if ctx.table_exist(DELIVERIES)? {
        let log = bound(
            ctx,
            &format!(
                "SELECT idempotency_key, attempt, outcome, error,
                        CAST(CAST(at AS BIGINT) AS VARCHAR) AS at_us,
                        CAST(CAST(next_attempt_at AS BIGINT) AS VARCHAR) AS next_us
                 FROM {DELIVERIES} WHERE true{only} ORDER BY CAST(at AS BIGINT), attempt"
            ),
            &values,
        )
        .await?
        .collect()
        .await?;
        for row in rows_of(&log)? {
            let key = row.get("idempotency_key").cloned().unwrap_or_default();
            attempts.entry(key).or_default().push(row);
        }
    }
    let mut out = Vec::new();
    for row in rows_of(&batches)? {
        let key = row.get("event_id").cloned().unwrap_or_default();
        let log = attempts.get(&key).map(Vec::as_slice).unwrap_or_default();
        // Only attempts since the last requeue count.
        let since = log
            .iter()
            .rposition(|a| a.get("outcome").map(String::as_str) == Some(REQUEUED))
            .map_or(0, |i| i + 1);
        let counted = &log[since..];
        let last = counted.last();
        let state = match last.and_then(|a| a.get("outcome")).map(String::as_str) {
            Some(DELIVERED) => State::Delivered,
            Some(REJECTED) => State::Rejected,
            Some(DEAD) => State::Dead,
            Some(_) => State::Pending {
                next: micros(last.and_then(|a| a.get("next_us"))),
            },
            None => State::Pending { next: None },
        };
        // An item delivered once stays delivered even if a later record
        // (a resend after a crash) says otherwise.
        let state = if counted
            .iter()
            .any(|a| a.get("outcome").map(String::as_str) == Some(DELIVERED))
        {
            State::Delivered
        } else {
            state
        };
        out.push(Item {
            warning_id: row.get("warning_id").cloned().unwrap_or_default(),
            event: row.get("event").cloned().unwrap_or_default(),
            created: micros(row.get("at_us")).unwrap_or_default(),
            attempts: counted
                .iter()
                .filter(|a| a.get("outcome").map(String::as_str) != Some(DELIVERED))
                .count() as i64,
            last_error: counted.iter().rev().find_map(|a| a.get("error").cloned()),
            last_attempt: micros(last.and_then(|a| a.get("at_us"))),
            idempotency_key: key,
            state,
        });
    }
    Ok(out)
}

/// One attempt's record, before it is written.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The event's id.
    pub idempotency_key: String,
    /// The warning the event belongs to.
    pub warning_id: String,
    /// The delivery pass the attempt was made in.
    pub batch_id: String,
    /// Which attempt this is, from 1.
    pub attempt: i64,
    /// One of [`DELIVERED`], [`RETRY`], [`REJECTED`], [`DEAD`].
    pub outcome: &'static str,
    /// The receiver's HTTP status, if it answered.
    pub http_status: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// When a retry is due (for [`RETRY`]).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Append attempt records in one commit.
pub async fn record(lake: &Lake, attempts: &[Attempt]) -> Result<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let now = Utc::now().timestamp_micros();
    let text = |f: &dyn Fn(&Attempt) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(attempts.iter().map(f)))
    };
    let batch = RecordBatch::try_new(
        deliveries_schema(),
        vec![
            text(&|a| a.idempotency_key.clone()),
            text(&|a| a.warning_id.clone()),
            text(&|a| a.batch_id.clone()),
            Arc::new(Int64Array::from_iter_values(
                attempts.iter().map(|a| a.attempt),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(vec![now; attempts.len()]).with_timezone("UTC"),
            ),
            text(&|a| a.outcome.to_string()),
            Arc::new(Int32Array::from(
                attempts
                    .iter()
                    .map(|a| a.http_status.map(i32::from))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                attempts.iter().map(|a| a.error.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    attempts
                        .iter()
                        .map(|a| a.next_attempt_at.map(|t| t.timestamp_micros()))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
        ],
    )?;
    lake.append(DELIVERIES, &deliveries_schema(), vec![batch])
        .await
}

/// The payloads of `keys`, by key.
pub async fn payloads(ctx: &SessionContext, keys: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    register_keys(ctx, "due_keys", "key", keys.iter().map(String::as_str))?;
    let batches = ctx
        .sql(&format!(
            "SELECT e.event_id, e.payload FROM {WARNING_EVENTS} e JOIN due_keys d ON e.event_id = d.key"
        ))
        .await?
        .collect()
        .await?;
    for row in rows_of(&batches)? {
        if let (Some(k), Some(p)) = (row.get("event_id"), row.get("payload")) {
            out.insert(k.clone(), p.clone());
        }
    }
    Ok(out)
}
