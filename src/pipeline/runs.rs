//! The `runs` table: one row per stage of every run — when, what went in
//! and out, and how it ended — so operators can see what each run did.

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::lake::Lake;
pub use crate::lake::tables::RUNS;
use crate::lake::tables::timestamp_type;

/// Counts a stage reports; any that do not apply stay zero.
#[derive(Debug, Clone, Default)]
pub struct StageCounts {
    /// Rows the stage read.
    pub rows_in: i64,
    /// Rows it wrote.
    pub rows_out: i64,
    /// Rows quarantined.
    pub quarantined: i64,
    /// Records linked.
    pub linked: i64,
    /// Records in review.
    pub review: i64,
    /// Records not linked.
    pub unlinked: i64,
    /// Warnings raised.
    pub raised: i64,
    /// Warnings reopened.
    pub reopened: i64,
    /// Warnings updated.
    pub updated: i64,
    /// Deliveries made.
    pub delivered: i64,
    /// The precision the link model expects of the stage's links.
    pub expected_precision: Option<f64>,
    /// The recall the link model expects of the stage's links.
    pub expected_recall: Option<f64>,
    /// The precision of the stage's links made without an ID number, as
    /// the records whose ID it hid showed it (`link::calibrate`).
    pub calibrated_precision_without_id: Option<f64>,
    /// The recall of those links, likewise.
    pub calibrated_recall_without_id: Option<f64>,
}

/// The schema of [`RUNS`].
pub fn runs_schema() -> SchemaRef {
    let count = |name: &str| Field::new(name, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("started_at", timestamp_type(), false),
        Field::new("finished_at", timestamp_type(), false),
        count("rows_in"),
        count("rows_out"),
        count("quarantined"),
        count("linked"),
        count("review"),
        count("unlinked"),
        count("warnings_raised"),
        count("warnings_reopened"),
        count("warnings_updated"),
        count("delivered"),
        Field::new("error", DataType::Utf8, true),
        // The link stage's expected precision and recall over every source
        // it linked, from the model without truth (null for other stages).
        // Added after the table was first written: older rows read null.
        Field::new("expected_precision", DataType::Float64, true),
        Field::new("expected_recall", DataType::Float64, true),
        // The link stage's calibrated estimates for records without an ID
        // number, over every source it linked (`link::calibrate`). Added
        // later still: older rows read null.
        Field::new("calibrated_precision_without_id", DataType::Float64, true),
        Field::new("calibrated_recall_without_id", DataType::Float64, true),
    ]))
}

/// Records the stages of one run as they end.
pub struct RunLog {
    lake: Lake,
    /// This run's id.
    pub run_id: String,
    pipeline: String,
}

impl RunLog {
    /// A log for a new run of `pipeline` in `lake`.
    pub fn new(lake: &Lake, pipeline: &str) -> Self {
        let now = Utc::now();
        RunLog {
            lake: lake.clone(),
            run_id: format!(
                "{}-{:04x}",
                now.format("%Y%m%dT%H%M%S"),
                std::process::id() & 0xffff
            ),
            pipeline: pipeline.to_string(),
        }
    }

    /// Append one stage's row.
    pub async fn record(
        &self,
        stage: &str,
        started: DateTime<Utc>,
        counts: &StageCounts,
        error: Option<String>,
    ) -> Result<()> {
        let status = if error.is_some() { "failed" } else { "ok" };
        let n = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
        let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
        let time = |t: DateTime<Utc>| -> ArrayRef {
            Arc::new(
                TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC"),
            )
        };
        let batch = RecordBatch::try_new(
            runs_schema(),
            vec![
                text(&self.run_id),
                text(&self.pipeline),
                text(stage),
                text(status),
                time(started),
                time(Utc::now()),
                n(counts.rows_in),
                n(counts.rows_out),
                n(counts.quarantined),
                n(counts.linked),
                n(counts.review),
                n(counts.unlinked),
                n(counts.raised),
                n(counts.reopened),
                n(counts.updated),
                n(counts.delivered),
                Arc::new(StringArray::from(vec![error])),
                Arc::new(Float64Array::from(vec![counts.expected_precision])),
                Arc::new(Float64Array::from(vec![counts.expected_recall])),
                Arc::new(Float64Array::from(vec![
                    counts.calibrated_precision_without_id,
                ])),
                Arc::new(Float64Array::from(vec![
                    counts.calibrated_recall_without_id,
                ])),
            ],
        )?;
        self.lake.append(RUNS, &runs_schema(), vec![batch]).await
    }
}

/// When the last run of this pipeline started, from the `runs` table.
pub async fn last_run_start(lake: &Lake, pipeline: &str) -> Result<Option<DateTime<Utc>>> {
    let ctx = lake.session_with(&[RUNS]).await?;
    if !ctx.table_exist(RUNS)? {
        return Ok(None);
    }
    let micros = crate::lake::query::scalar_i64_of(
        crate::lake::query::bound(
            &ctx,
            &format!("SELECT CAST(max(started_at) AS BIGINT) FROM {RUNS} WHERE pipeline = $1"),
            &[pipeline],
        )
        .await?,
    )
    .await?;
    Ok((micros > 0)
        .then(|| DateTime::from_timestamp_micros(micros))
        .flatten())
}

/// The stages of the `limit` most recent runs, newest run first; `None`
/// when no run has been recorded.
pub async fn recent(lake: &Lake, limit: usize) -> Result<Option<Vec<RecordBatch>>> {
    let ctx = lake.session_with(&[RUNS]).await?;
    if !ctx.table_exist(RUNS)? {
        return Ok(None);
    }
    let sql = format!(
        "SELECT run_id, pipeline, stage, status, started_at, \
                CAST(round(CAST(CAST(finished_at AS BIGINT) - CAST(started_at AS BIGINT) AS DOUBLE) / 1e6, 2) AS VARCHAR) AS seconds, \
                rows_in, rows_out, quarantined, linked, review, unlinked, \
                warnings_raised AS raised, warnings_reopened AS reopened, error \
         FROM {RUNS} WHERE run_id IN (SELECT DISTINCT run_id FROM {RUNS} ORDER BY run_id DESC LIMIT {limit}) \
         ORDER BY run_id DESC, started_at"
    );
    Ok(Some(ctx.sql(&sql).await?.collect().await?))
}
