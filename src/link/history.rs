//! `link_history`: one row per source per link run, so quality can be
//! followed over time (the link table itself holds only the latest run):
//! how many records were linked, sent to review or left unlinked, and the
//! model's own estimates, made without any truth:
//!
//! - expected precision: the mean match probability of the linked records;
//! - expected wrong links: the sum of one minus that probability;
//! - expected matches not linked: the sum of the probabilities of the
//!   other records' best candidates (review included).
//!
//! They are as good as the model's calibration, no better; `eval`
//! measures against truth where there is some. The row is appended after
//! the link table is written: a crash between the two loses the row, never
//! a link.

use std::sync::Arc;

use anyhow::Result;
use chrono::Utc;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::lake::Lake;
use crate::lake::query::rows_of;
use crate::lake::tables::{LINK_HISTORY, link_table, timestamp_type};

/// The counts and estimates of one source's link table.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Quality {
    /// Records linked.
    pub linked: i64,
    /// Records in review.
    pub review: i64,
    /// Records not linked.
    pub unlinked: i64,
    /// None when nothing is linked.
    pub expected_precision: Option<f64>,
    /// Σ(1 − p) over the linked records: the wrong links the model expects.
    pub expected_wrong_links: f64,
    /// Σp over the records not linked: the matches the model expects were missed.
    pub expected_not_linked: f64,
}

impl Quality {
    /// Σp over the linked records: the right links the model expects.
    pub fn expected_right_links(&self) -> f64 {
        self.linked as f64 - self.expected_wrong_links
    }

    /// The share of all the matches the model expects among the records
    /// (linked or not) that its links find; None when it expects none.
    pub fn expected_recall(&self) -> Option<f64> {
        let right = self.expected_right_links();
        let all = right + self.expected_not_linked;
        (all > 0.0).then(|| right / all)
    }

    /// The figures of several sources taken together: counts and expected
    /// links add up, precision is recomputed from them.
    pub fn combined<'a>(all: impl IntoIterator<Item = &'a Quality>) -> Quality {
        let mut sum = Quality::default();
        for q in all {
            sum.linked += q.linked;
            sum.review += q.review;
            sum.unlinked += q.unlinked;
            sum.expected_wrong_links += q.expected_wrong_links;
            sum.expected_not_linked += q.expected_not_linked;
        }
        sum.expected_precision =
            (sum.linked > 0).then(|| sum.expected_right_links() / sum.linked as f64);
        sum
    }
}

/// Read the counts and estimates off `source`'s link table, in one pass.
pub async fn measure(ctx: &SessionContext, source: &crate::config::SourceName) -> Result<Quality> {
    let batches = ctx
        .sql(&format!(
            "SELECT CAST(count(*) FILTER (WHERE status = 'linked') AS VARCHAR) AS linked,
                    CAST(count(*) FILTER (WHERE status = 'review') AS VARCHAR) AS review,
                    CAST(count(*) FILTER (WHERE status = 'unlinked') AS VARCHAR) AS unlinked,
                    CAST(avg(match_probability) FILTER (WHERE status = 'linked') AS VARCHAR) AS precision,
                    CAST(coalesce(sum(1.0 - match_probability) FILTER (WHERE status = 'linked'), 0.0) AS VARCHAR) AS wrong,
                    CAST(coalesce(sum(match_probability) FILTER (WHERE status <> 'linked'), 0.0) AS VARCHAR) AS not_linked
             FROM {}",
            link_table(source)
        ))
        .await?
        .collect()
        .await?;
    let row = rows_of(&batches)?.into_iter().next().unwrap_or_default();
    let int = |k: &str| row.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let float = |k: &str| row.get(k).and_then(|v| v.parse::<f64>().ok());
    Ok(Quality {
        linked: int("linked"),
        review: int("review"),
        unlinked: int("unlinked"),
        expected_precision: float("precision"),
        expected_wrong_links: float("wrong").unwrap_or(0.0),
        expected_not_linked: float("not_linked").unwrap_or(0.0),
    })
}

/// The columns that name a link run, first in `link_history` and
/// `link_calibration`: the source, when it linked, and the model version.
pub(crate) fn run_fields() -> [Field; 3] {
    [
        Field::new("source", DataType::Utf8, false),
        Field::new("linked_at", timestamp_type(), false),
        Field::new("model_version", DataType::Int64, false),
    ]
}

/// The schema of `link_history`.
pub fn schema() -> SchemaRef {
    let count = |name: &str| Field::new(name, DataType::Int64, false);
    Arc::new(Schema::new(
        run_fields()
            .into_iter()
            .chain([
                Field::new("trained", DataType::Boolean, false),
                count("records"),
                count("candidate_pairs"),
                count("linked"),
                count("review"),
                count("unlinked"),
                Field::new("expected_precision", DataType::Float64, true),
                Field::new("expected_wrong_links", DataType::Float64, false),
                Field::new("expected_not_linked", DataType::Float64, false),
                Field::new("seconds", DataType::Float64, false),
                // Added after the table was first written: older rows read null.
                Field::new("expected_recall", DataType::Float64, true),
                // From the records with their ID number hidden (`calibrate`).
                Field::new("calibration_labelled", DataType::Int64, true),
                Field::new("calibration_on_registry", DataType::Int64, true),
                Field::new("calibration_linked", DataType::Int64, true),
                Field::new("calibration_linked_right", DataType::Int64, true),
                Field::new("calibrated_precision_without_id", DataType::Float64, true),
                Field::new("calibrated_recall_without_id", DataType::Float64, true),
                // The calibration's assumption: candidate shares with and without
                // an ID (see `Calibration::assumption_gap`).
                Field::new("calibration_assumption_gap", DataType::Float64, true),
            ])
            .collect::<Vec<_>>(),
    ))
}

/// Append one link run's row.
pub async fn record(lake: &Lake, report: &super::LinkReport) -> Result<()> {
    let n = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
    let f = |v: Option<f64>| -> ArrayRef { Arc::new(Float64Array::from(vec![v])) };
    let m = |v: Option<i64>| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
    let q = &report.quality;
    let c = report.calibration.as_ref();
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![report.source.as_str()])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Utc::now().timestamp_micros()])
                    .with_timezone("UTC"),
            ),
            n(report.model_version),
            Arc::new(BooleanArray::from(vec![report.trained])),
            n(report.records),
            n(report.candidate_pairs),
            n(q.linked),
            n(q.review),
            n(q.unlinked),
            f(q.expected_precision),
            f(Some(q.expected_wrong_links)),
            f(Some(q.expected_not_linked)),
            f(Some(report.seconds)),
            f(q.expected_recall()),
            m(c.map(|c| c.labelled)),
            m(c.map(|c| c.on_registry)),
            m(c.map(|c| c.linked)),
            m(c.map(|c| c.linked_right)),
            f(c.and_then(|c| c.precision())),
            f(c.and_then(|c| c.recall())),
            f(c.and_then(|c| c.assumption_gap())),
        ],
    )?;
    lake.append(LINK_HISTORY, &schema(), vec![batch]).await
}

/// The calibrated estimates of the last link run of `source` (empty when
/// there is none, or it made none).
pub async fn calibrated(
    ctx: &SessionContext,
    source: &crate::config::SourceName,
) -> Result<super::eval::WithoutId> {
    let mut out = super::eval::WithoutId::default();
    if !ctx.table_exist(LINK_HISTORY)? {
        return Ok(out);
    }
    let has = ctx
        .table(LINK_HISTORY)
        .await?
        .schema()
        .field_with_unqualified_name("calibrated_precision_without_id")
        .is_ok();
    if !has {
        return Ok(out);
    }
    let batches = crate::lake::query::bound(
        ctx,
        &format!(
            "SELECT CAST(calibrated_precision_without_id AS VARCHAR) AS p,
                    CAST(calibrated_recall_without_id AS VARCHAR) AS r
             FROM {LINK_HISTORY} WHERE source = $1 ORDER BY linked_at DESC LIMIT 1"
        ),
        &[source.as_str()],
    )
    .await?
    .collect()
    .await?;
    if let Some(row) = rows_of(&batches)?.into_iter().next() {
        out.calibrated_precision = row.get("p").and_then(|v| v.parse().ok());
        out.calibrated_recall = row.get("r").and_then(|v| v.parse().ok());
    }
    Ok(out)
}
