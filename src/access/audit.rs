//! The `audit_log` lake table (审计日志): one row per API call, failed
//! login and SQL statement — who, from where, when, what, how many rows,
//! and how it ended. A SQL statement has a `started` row, written before
//! any row is sent (if it cannot be written the statement is refused:
//! the log fails closed), and a row with its outcome: `ok`, `error`, or
//! `abandoned` when the client stopped reading midway.
//!
//! Writes go through one task that commits whatever has queued since its
//! last commit (group commit), and each caller waits for the commit that
//! holds its entry, so a call is answered only once it is on record.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use tokio::sync::{mpsc, oneshot};

use crate::lake::Lake;
pub use crate::lake::tables::AUDIT_LOG;
use crate::lake::tables::timestamp_type;

/// How an audited call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// It failed, or was refused.
    Error,
    /// The client went away before reading every row.
    Abandoned,
    /// A SQL statement began (its outcome follows in another row).
    Started,
}

impl Outcome {
    /// The value in the `outcome` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Abandoned => "abandoned",
            Outcome::Started => "started",
        }
    }
}

/// One audited call.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When the call began.
    pub at: DateTime<Utc>,
    /// `api` or `sql`.
    pub interface: &'static str,
    /// The caller's user or token name.
    pub user: String,
    /// The caller's role (`admin`, `analyst`, `verifier`, `reader`).
    pub role: String,
    /// The client's address, as the connection or proxy reported it.
    pub client: String,
    /// The SQL text, or the HTTP method and path with its query.
    pub request: String,
    /// HTTP status, or 0 for SQL.
    pub code: i32,
    /// Rows returned or written.
    pub rows: i64,
    /// How the call ended.
    pub outcome: Outcome,
    /// The error the caller was given, if any.
    pub error: Option<String>,
    /// How long the call took, in milliseconds.
    pub millis: i64,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("at", timestamp_type(), false),
        Field::new("interface", DataType::Utf8, false),
        Field::new("user_name", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("client", DataType::Utf8, false),
        Field::new("request", DataType::Utf8, false),
        Field::new("code", DataType::Int32, false),
        Field::new("rows_returned", DataType::Int64, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("duration_ms", DataType::Int64, false),
    ]))
}

fn batch(entries: &[Entry]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&Entry) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(entries.iter().map(f)))
    };
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    entries.iter().map(|e| e.at.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
            text(&|e| e.interface.to_string()),
            text(&|e| e.user.clone()),
            text(&|e| e.role.clone()),
            text(&|e| e.client.clone()),
            text(&|e| e.request.clone()),
            Arc::new(Int32Array::from_iter_values(entries.iter().map(|e| e.code))),
            Arc::new(Int64Array::from_iter_values(entries.iter().map(|e| e.rows))),
            text(&|e| e.outcome.as_str().to_string()),
            Arc::new(StringArray::from(
                entries.iter().map(|e| e.error.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from_iter_values(
                entries.iter().map(|e| e.millis),
            )),
        ],
    )?)
}

type Request = (Entry, oneshot::Sender<Result<(), String>>);

/// A handle to the audit writer; clone it freely.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Request>,
}

impl AuditLog {
    /// Start the writer task for `lake`.
    pub fn start(lake: Lake) -> AuditLog {
        let (tx, mut rx) = mpsc::channel::<Request>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut pending = vec![first];
                while let Ok(more) = rx.try_recv() {
                    pending.push(more);
                }
                let entries: Vec<Entry> = pending.iter().map(|(e, _)| e.clone()).collect();
                let result = match batch(&entries) {
                    _ if crate::failpoint::fails("audit:write") => {
                        Err(anyhow!("failpoint audit:write"))
                    }
                    Ok(b) => lake.append(AUDIT_LOG, &schema(), vec![b]).await,
                    Err(e) => Err(e),
                }
                .map_err(|e| format!("{e:#}"));
                if let Err(e) = &result {
                    tracing::error!("audit log write failed: {e}");
                }
                for (_, done) in pending {
                    let _ = done.send(result.clone());
                }
            }
        });
        AuditLog { tx }
    }

    /// Record an entry and wait until it is committed.
    pub async fn record(&self, entry: Entry) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((entry, done))
            .await
            .map_err(|_| anyhow!("the audit writer has stopped"))?;
        wait.await
            .map_err(|_| anyhow!("the audit writer has stopped"))?
            .map_err(|e| anyhow!("cannot write the audit log: {e}"))
    }
}
