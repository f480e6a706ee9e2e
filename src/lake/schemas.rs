//! The schema each source was ingested with, kept in the lake.
//!
//! Every ingest records the schema it read a batch with in
//! `source_schemas` (its text and SHA-256), once per change: a schema file
//! edited or passed with `ingest --schema` is a new row naming the first
//! batch read with it. Later stages (link, review, eval, explain, warn) and
//! the access layer take a source's schema from here, so they read the
//! lake's columns the way they were written, whatever directory they run
//! in. A lake with no recorded schema for a source (written before this
//! table existed) falls back to `schemas/<source>.toml`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::Utc;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use super::Lake;
use super::query::rows_of;
pub use super::tables::SOURCE_SCHEMAS;
use super::tables::timestamp_type;
use crate::config::SourceSchema;

/// One row per source and schema version.
pub fn source_schemas_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("schema_sha256", DataType::Utf8, false),
        Field::new("schema_text", DataType::Utf8, false),
        Field::new("first_batch_id", DataType::Utf8, false),
        Field::new("recorded_at", timestamp_type(), false),
    ]))
}

/// SHA-256 of a schema's text, hex.
pub fn schema_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Record `schema` as the one `batch_id` of its source is read with,
/// unless it is already the source's latest. Returns whether a row was
/// written. Written before the batch commits: a crash in between leaves a
/// schema row and no batch, and the re-run finds the schema recorded.
pub async fn record(lake: &Lake, schema: &SourceSchema, batch_id: &str) -> Result<bool> {
    let hash = schema_sha256(&schema.text);
    if latest_hash(lake, &schema.name).await?.as_deref() == Some(hash.as_str()) {
        return Ok(false);
    }
    let row: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![schema.name.as_str()])),
        Arc::new(StringArray::from(vec![hash.as_str()])),
        Arc::new(StringArray::from(vec![schema.text.as_str()])),
        Arc::new(StringArray::from(vec![batch_id])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Utc::now().timestamp_micros()])
                .with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(source_schemas_schema(), row)?;
    lake.append(SOURCE_SCHEMAS, &source_schemas_schema(), vec![batch])
        .await?;
    Ok(true)
}

async fn latest_hash(lake: &Lake, source: &str) -> Result<Option<String>> {
    Ok(recorded(lake)
        .await?
        .get(source)
        .map(|s| schema_sha256(&s.text)))
}

/// Every source's latest recorded schema, from the lake.
pub async fn recorded(lake: &Lake) -> Result<BTreeMap<String, SourceSchema>> {
    let ctx = lake.session_with(&[SOURCE_SCHEMAS]).await?;
    recorded_in(&ctx).await
}

/// Every source's latest recorded schema, from a session that has the
/// table (none when it has not).
pub async fn recorded_in(ctx: &SessionContext) -> Result<BTreeMap<String, SourceSchema>> {
    let mut out = BTreeMap::new();
    if !ctx.table_exist(SOURCE_SCHEMAS)? {
        return Ok(out);
    }
    let batches = ctx
        .sql(&format!(
            "SELECT source, schema_text FROM (
               SELECT source, schema_text, row_number() OVER (PARTITION BY source ORDER BY recorded_at DESC, schema_sha256) AS n
               FROM {SOURCE_SCHEMAS}) WHERE n = 1"
        ))
        .await?
        .collect()
        .await?;
    for row in rows_of(&batches)? {
        let source = row.get("source").cloned().unwrap_or_default();
        let text = row.get("schema_text").cloned().unwrap_or_default();
        let schema = SourceSchema::parse(&text).with_context(|| {
            format!("the schema the lake recorded for source {source} (table {SOURCE_SCHEMAS})")
        })?;
        out.insert(source, schema);
    }
    Ok(out)
}

/// The schema of `source`: the one its batches were read with, else the
/// file `schemas_dir/<source>.toml`.
pub async fn source_schema(lake: &Lake, schemas_dir: &Path, source: &str) -> Result<SourceSchema> {
    pick(&recorded(lake).await?, schemas_dir, source)
}

/// Where a source's schema file lives in a schemas directory:
/// `<dir>/<source>.toml`, the one place that name is made.
pub fn file_in(schemas_dir: &Path, source: &str) -> std::path::PathBuf {
    schemas_dir.join(format!("{source}.toml"))
}

/// The schema of `source` among `recorded` ones, else from its file.
pub fn pick(
    recorded: &BTreeMap<String, SourceSchema>,
    schemas_dir: &Path,
    source: &str,
) -> Result<SourceSchema> {
    if let Some(schema) = recorded.get(source) {
        return Ok(schema.clone());
    }
    SourceSchema::load(&file_in(schemas_dir, source)).with_context(|| {
        format!(
            "the lake has no schema recorded for source {source}, and none is in {}",
            schemas_dir.display()
        )
    })
}
