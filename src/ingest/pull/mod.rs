//! Pulling a source from a department's system instead of reading files
//! that land in a folder: its PostgreSQL exchange database (前置机,
//! `postgres`, `mysql` for MySQL and MariaDB) or a provincial platform's
//! paged JSON interface (`http`).
//!
//! A pull is a file ingest with a different front. What is pulled is
//! written to a local file (CSV from the database, JSON lines from the
//! interface), and that file goes through [`batch::ingest_file`] like any
//! other: schema mapping, normalisation, quarantine with reasons, batch
//! accounting, the original kept under `raw/`. So:
//!
//! - the batch id is the hash of what was pulled: pulling the same rows
//!   again is "already ingested", a reported no-op;
//! - a pull killed midway leaves no partial batch (ingest is crash-safe),
//!   and the next run pulls the same rows and completes it;
//! - table `pulls` records every committed batch, with its watermark
//!   window where there is one (written after the batch commits).

mod http;
mod mysql;
mod postgres;
mod tls;
mod windows;

pub use tls::http_client;

use std::sync::Arc;

use anyhow::Result;
use chrono::Utc;
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::batch::{self, IngestOptions};
use super::{FileOutcome, roster};
use crate::config::{PullConfig, PullKind, SourceSchema};
use crate::lake::Lake;
use crate::lake::query::{bound, rows_of, scalar_i64_of};
use crate::lake::tables::{BATCHES, PULLS, ROSTER_SOURCE, timestamp_type};

/// One pull's inputs, as every kind takes them.
pub(super) struct Job<'a> {
    pub lake: &'a Lake,
    pub schema: &'a Arc<SourceSchema>,
    pub pull: &'a PullConfig,
    pub options: &'a IngestOptions,
    pub on_file_start: &'a (dyn Fn(&str) + Sync),
    pub progress: &'a (dyn Fn(u64) + Sync),
}

impl Job<'_> {
    /// The source's name.
    fn source(&self) -> &str {
        &self.schema.name
    }

    /// The context of a failed connection to `system`: the source and the
    /// variable that holds the URL, never the URL (it holds a password).
    fn cannot_connect(&self, system: &str) -> String {
        format!(
            "source {}: cannot connect to {system} (the URL in {})",
            self.source(),
            self.pull.url_env.as_deref().unwrap_or_default()
        )
    }

    /// Ingest a pulled file like any other, under `display`'s name.
    async fn ingest(&self, path: &std::path::Path, display: &str) -> Result<batch::FileReport> {
        let mut file = crate::ingest::input::InputFile::local(path);
        file.display_name = display.to_string();
        batch::ingest_file(self.lake, self.schema, &file, self.options, self.progress).await
    }
}

/// The connection URL from the environment variable the pull names.
fn env_url(job: &Job<'_>, system: &str) -> Result<String> {
    let name = job.pull.url_env.as_deref().unwrap_or_default();
    std::env::var(name).map_err(|_| {
        anyhow::anyhow!(
            "source {}: environment variable {name} is not set (it holds the {system} connection URL for the pull)",
            job.source()
        )
    })
}

/// Pull `schema`'s source as `pull` says. After a roster pull the roster
/// tables are brought up to date.
pub async fn pull_source(
    lake: &Lake,
    schema: Arc<SourceSchema>,
    pull: &PullConfig,
    options: &IngestOptions,
    on_file_start: &(dyn Fn(&str) + Sync),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<FileOutcome>> {
    pull.check(&schema.name)?;
    let job = Job {
        lake,
        schema: &schema,
        pull,
        options,
        on_file_start,
        progress,
    };
    let outcomes = match pull.kind {
        PullKind::Postgres => postgres::pull(&job).await?,
        PullKind::Mysql => mysql::pull(&job).await?,
        PullKind::Http => http::pull(&job).await?,
    };
    if schema.name == ROSTER_SOURCE && outcomes.iter().any(|o| o.result.is_ok()) {
        roster::refresh(lake).await?;
    }
    Ok(outcomes)
}

/// The `pulls` table: which window of which origin each batch holds.
pub fn pulls_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("batch_id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("origin", DataType::Utf8, false),
        Field::new("watermark_column", DataType::Utf8, true),
        Field::new("watermark_from", DataType::Utf8, true),
        Field::new("watermark_to", DataType::Utf8, true),
        Field::new("rows", DataType::Int64, false),
        Field::new("pulled_at", timestamp_type(), false),
    ]))
}

/// The outcome of a pull that found no row above the watermark.
pub(super) fn nothing_new(
    source: &str,
    kind: &str,
    origin: &str,
    last: Option<&str>,
) -> FileOutcome {
    let file = format!("{kind} {origin}");
    FileOutcome {
        file: file.clone(),
        result: Ok(batch::FileReport {
            file,
            batch_id: String::new(),
            outcome: match last {
                Some(v) => format!("没有新数据 no new rows above watermark {v} (source {source})"),
                None => format!("没有数据 no rows (source {source})"),
            },
            rows_read: 0,
            rows_staged: 0,
            rows_quarantined: 0,
            missing_fields: Vec::new(),
            seconds: 0.0,
        }),
    }
}

/// The upper watermark of the last committed window of this origin.
pub(super) async fn last_watermark(
    lake: &Lake,
    source: &str,
    origin: &str,
) -> Result<Option<String>> {
    let ctx = lake.session_with(&[PULLS]).await?;
    if !ctx.table_exist(PULLS)? {
        return Ok(None);
    }
    let batches = bound(
        &ctx,
        &format!(
            "SELECT watermark_to FROM {PULLS} WHERE source = $1 AND origin = $2 AND watermark_to IS NOT NULL
             ORDER BY pulled_at DESC LIMIT 1"
        ),
        &[source, origin],
    )
    .await?
    .collect()
    .await?;
    Ok(rows_of(&batches)?
        .into_iter()
        .next()
        .and_then(|r| r.get("watermark_to").cloned()))
}

/// Note a committed window in `pulls` (once per batch and window).
pub(super) async fn record(
    lake: &Lake,
    source: &str,
    pull: &PullConfig,
    origin: &str,
    report: &batch::FileReport,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<()> {
    let ctx = lake.session_with(&[PULLS, BATCHES]).await?;
    let batch_id: &str = &report.batch_id;
    if ctx.table_exist(PULLS)?
        && scalar_i64_of(
            bound(
                &ctx,
                &format!(
                    "SELECT count(*) FROM {PULLS} WHERE batch_id = $1 AND coalesce(watermark_to, '') = $2"
                ),
                &[batch_id, to.unwrap_or("")],
            )
            .await?,
        )
        .await?
            > 0
    {
        return Ok(());
    }
    // A window pulled again after a crash is "already ingested" with no
    // rows read this time: the batch's own count is what the window holds.
    let rows = if report.rows_read == 0 && ctx.table_exist(BATCHES)? {
        scalar_i64_of(
            bound(
                &ctx,
                &format!("SELECT rows_read FROM {BATCHES} WHERE batch_id = $1"),
                &[batch_id],
            )
            .await?,
        )
        .await?
    } else {
        report.rows_read as i64
    };
    let text = |v: Option<&str>| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let row: Vec<ArrayRef> = vec![
        text(Some(source)),
        text(Some(&report.batch_id)),
        text(Some(&pull.kind.to_string())),
        text(Some(origin)),
        text(pull.watermark.as_deref()),
        text(from),
        text(to),
        Arc::new(Int64Array::from(vec![rows])),
        Arc::new(
            datafusion::arrow::array::TimestampMicrosecondArray::from(vec![
                Utc::now().timestamp_micros(),
            ])
            .with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(pulls_schema(), row)?;
    lake.append(PULLS, &pulls_schema(), vec![batch]).await
}
