//! Ingesting one file as one batch: hash it, skip it if the same content was
//! ingested before, keep the original under `raw/`, parse and normalise it
//! into `staged_<source>` and `quarantine_<source>`, and finally commit its
//! row in `batches`, which is what makes the batch visible.
//!
//! Crash safety: rows written before the `batches` commit belong to a batch
//! the lake does not show (see `lake::committed_view`). A re-run finds them,
//! deletes them and ingests the file again, so counts come out exact.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::prelude::{col, lit};
use deltalake::writer::{DeltaWriter, WriteMode};
use object_store::{ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

use super::input::InputFile;
use super::normalise::{
    Normalised, Normaliser, high_cardinality_columns, map_columns, raw_text_columns,
};
use super::rows::{self, Format, RawRow};
use crate::config::SourceSchema;
use crate::failpoint;
use crate::lake::Lake;
use crate::lake::tables::{self, BATCHES, batches_schema, quarantine_schema};

/// Rows per chunk dealt by the reader thread to a normaliser thread, and
/// so per Arrow batch handed to the Parquet writer.
const CHUNK_ROWS: usize = 32_768;

/// Normaliser threads: `SAFETYNET_INGEST_THREADS`, else one per core
/// (at most eight). A value that is not a count is refused, not ignored.
fn normaliser_count() -> Result<usize> {
    match std::env::var("SAFETYNET_INGEST_THREADS") {
        Ok(value) => value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .with_context(|| {
                format!("SAFETYNET_INGEST_THREADS must be a number of threads from 1 to 64, not '{value}'")
            }),
        Err(_) => Ok(std::thread::available_parallelism().map_or(2, |n| n.get().min(8))),
    }
}

/// What happened to one input file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    /// The file as the user named it.
    pub file: String,
    /// The batch id (source and the content's SHA-256 prefix), as in `batches`.
    pub batch_id: String,
    /// "ingested", or "already ingested" for a file whose content was seen before.
    pub outcome: String,
    /// Data rows read.
    pub rows_read: u64,
    /// Rows staged.
    pub rows_staged: u64,
    /// Rows quarantined, each with its reasons.
    pub rows_quarantined: u64,
    /// Schema fields with no column in the file: empty in this batch.
    pub missing_fields: Vec<String>,
    /// Wall time for the file.
    pub seconds: f64,
}

/// Options that apply to every file of one ingest call.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Overrides the schema's encoding.
    pub encoding: Option<String>,
}

/// Hash a file's content (SHA-256, hex).
fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// The file name of an earlier batch with this id, if it was committed.
async fn committed_batch(lake: &Lake, batch_id: &str) -> Result<Option<String>> {
    let Some(table) = lake.table(BATCHES).await? else {
        return Ok(None);
    };
    let ctx = datafusion::prelude::SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let rows = ctx
        .read_table(table.table_provider().await?)?
        .filter(col("batch_id").eq(lit(batch_id)))?
        .select(vec![col("file_name")])?
        .collect()
        .await?;
    for batch in rows {
        if let Some(name) = crate::lake::query::strings_of(batch.column(0))?
            .into_iter()
            .next()
        {
            return Ok(Some(name.unwrap_or_default()));
        }
    }
    Ok(None)
}

/// Rows of `batch_id` present in a table (left there by an interrupted run).
async fn has_rows_of(lake: &Lake, table_name: &str, batch_id: &str) -> Result<bool> {
    let Some(table) = lake.table(table_name).await? else {
        return Ok(false);
    };
    let ctx = datafusion::prelude::SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let n = ctx
        .read_table(table.table_provider().await?)?
        .filter(col("batch_id").eq(lit(batch_id)))?
        .limit(0, Some(1))?
        .count()
        .await?;
    Ok(n > 0)
}

/// Copy the original file byte for byte to `raw/<source>/<batch>/<name>`.
async fn keep_raw(lake: &Lake, file: &InputFile, relative: &str) -> Result<()> {
    let path = lake.path(relative);
    let upload = lake.store().put_multipart(&path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
    let mut input = tokio::fs::File::open(&file.local_path).await?;
    let mut buf = vec![0u8; 8 << 20];
    loop {
        use tokio::io::AsyncReadExt;
        let n = input.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        writer.wait_for_capacity(2).await?;
        writer.write(&buf[..n]);
    }
    writer
        .finish()
        .await
        .with_context(|| format!("cannot keep the original file under {relative}"))?;
    Ok(())
}

/// Ingest one file. `progress` receives the number of rows read so far.
pub async fn ingest_file(
    lake: &Lake,
    schema: &Arc<SourceSchema>,
    file: &InputFile,
    options: &IngestOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<FileReport> {
    let started = Instant::now();
    let started_at = Utc::now();
    let (sha256, file_bytes) = hash_file(&file.local_path)?;
    let batch_id = format!("{}-{}", schema.name, &sha256[..16]);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "hashed");

    if let Some(earlier) = committed_batch(lake, &batch_id).await? {
        return Ok(FileReport {
            file: file.display_name.clone(),
            batch_id,
            outcome: format!("already ingested (as {earlier})"),
            rows_read: 0,
            rows_staged: 0,
            rows_quarantined: 0,
            missing_fields: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    // Everything that can refuse the file happens before anything is written.
    let format = Format::from_extension(&file.extension())
        .with_context(|| format!("{}: cannot read", file.display_name))?;
    let reader = rows::open(
        &file.local_path,
        format,
        schema,
        options.encoding.as_deref(),
    )
    .with_context(|| format!("{}: cannot read", file.display_name))?;
    let column_map = map_columns(schema, &reader.headers, &file.display_name)?;
    let normalisers = normaliser_count()?;
    let encoding = reader.encoding;

    let raw_path = format!("raw/{}/{}/{}", schema.name, batch_id, file.file_name);
    keep_raw(lake, file, &raw_path).await?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "original kept under raw/"
    );

    let staged_name = tables::staged(&schema.name);
    let quarantine_name = tables::quarantine(&schema.name);
    for name in [&staged_name, &quarantine_name] {
        if has_rows_of(lake, name, &batch_id).await? {
            tracing::warn!(table = %name, batch = %batch_id, "removing rows left by an interrupted ingest");
            lake.delete_batch(name, &batch_id).await?;
        }
    }

    let delimiter = if format == Format::Tsv { '\t' } else { ',' };
    let staged_schema = super::normalise::staged_schema(schema);
    let mut staged_table = lake.table_or_create(&staged_name, &staged_schema).await?;
    let mut quarantine_table = lake
        .table_or_create(&quarantine_name, &quarantine_schema())
        .await?;
    let mut staged_writer =
        Lake::writer(&staged_table)?.with_writer_properties(crate::lake::staged_writer_properties(
            &high_cardinality_columns(schema),
            &raw_text_columns(schema),
        ));
    let mut quarantine_writer = Lake::writer(&quarantine_table)?;

    // The work runs at once on every core: a reader thread parses and
    // deals chunks of rows in turn to normaliser threads, which type and
    // check them; this task takes their results back in the same turn (so
    // rows reach the table in file order), encodes Parquet and writes.
    // Normalising is the heaviest step, hence several threads for it.
    // Bounded channels keep memory flat whatever the file size.
    let mut chunk_senders = Vec::new();
    let mut result_receivers = Vec::new();
    let mut normaliser_threads = Vec::new();
    for _ in 0..normalisers {
        let (chunk_sender, chunk_receiver) = std::sync::mpsc::sync_channel::<Vec<RawRow>>(2);
        let (result_sender, result_receiver) = tokio::sync::mpsc::channel::<(usize, Normalised)>(2);
        let mut normaliser = Normaliser::new(
            schema.clone(),
            column_map.columns.clone(),
            &batch_id,
            &file.display_name,
            delimiter,
        );
        normaliser_threads.push(std::thread::spawn(move || -> Result<(u64, u64)> {
            for chunk in chunk_receiver {
                let rows = chunk.len();
                for row in chunk {
                    normaliser.push(row);
                }
                if result_sender
                    .blocking_send((rows, normaliser.take()?))
                    .is_err()
                {
                    break;
                }
            }
            Ok((normaliser.staged_rows, normaliser.quarantined_rows))
        }));
        chunk_senders.push(chunk_sender);
        result_receivers.push(result_receiver);
    }
    let reader_rows = reader.rows;
    let reader_thread = std::thread::spawn(move || {
        let mut read = 0u64;
        let mut dealt = 0usize;
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        for row in reader_rows {
            read += 1;
            chunk.push(row);
            if chunk.len() == CHUNK_ROWS {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                if chunk_senders[dealt % chunk_senders.len()]
                    .send(full)
                    .is_err()
                {
                    break;
                }
                dealt += 1;
            }
        }
        if !chunk.is_empty() {
            let _ = chunk_senders[dealt % chunk_senders.len()].send(chunk);
        }
        read
    });

    let mut rows_seen = 0u64;
    'turns: loop {
        for receiver in &mut result_receivers {
            // The first normaliser with nothing more ends the file: chunks
            // were dealt in turn.
            let Some((rows, (staged, quarantined))) = receiver.recv().await else {
                break 'turns;
            };
            rows_seen += rows as u64;
            if let Some(batch) = staged {
                // A schema file may have gained fields since the table was created.
                staged_writer
                    .write_with_mode(batch, WriteMode::MergeSchema)
                    .await?;
            }
            if let Some(batch) = quarantined {
                quarantine_writer.write(batch).await?;
            }
            progress(rows_seen);
        }
    }
    // Threads still sending (after a failure) stop when their receiver goes.
    drop(result_receivers);
    let rows_read = reader_thread
        .join()
        .map_err(|_| anyhow::anyhow!("{}: the reader thread failed", file.display_name))?;
    let (mut rows_staged, mut rows_quarantined) = (0, 0);
    for thread in normaliser_threads {
        let (staged, quarantined) = thread
            .join()
            .map_err(|_| anyhow::anyhow!("{}: a normaliser thread failed", file.display_name))??;
        rows_staged += staged;
        rows_quarantined += quarantined;
    }
    if rows_read != rows_staged + rows_quarantined || rows_read != rows_seen {
        bail!(
            "{}: row count mismatch (read {rows_read}, staged {rows_staged}, quarantined {rows_quarantined}); nothing committed",
            file.display_name
        );
    }

    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        rows_read,
        "rows written"
    );
    crate::lake::schemas::record(lake, schema, &batch_id).await?;
    failpoint::hit("ingest:before-commit");
    staged_writer.flush_and_commit(&mut staged_table).await?;
    failpoint::hit("ingest:after-staged-commit");
    quarantine_writer
        .flush_and_commit(&mut quarantine_table)
        .await?;
    failpoint::hit("ingest:after-quarantine-commit");

    let finished_at = Utc::now();
    let row: Vec<ArrayRef> = vec![
        str_array(&batch_id),
        str_array(&schema.name),
        str_array(&file.display_name),
        str_array(&sha256),
        Arc::new(Int64Array::from(vec![file_bytes as i64])),
        str_array(&raw_path),
        str_array(format.name()),
        str_array(encoding),
        Arc::new(Int64Array::from(vec![rows_read as i64])),
        Arc::new(Int64Array::from(vec![rows_staged as i64])),
        Arc::new(Int64Array::from(vec![rows_quarantined as i64])),
        Arc::new(StringArray::from(vec![
            (!column_map.unmapped.is_empty()).then(|| column_map.unmapped.join(", ")),
        ])),
        Arc::new(StringArray::from(vec![
            (!column_map.missing.is_empty()).then(|| column_map.missing.join(", ")),
        ])),
        timestamp(started_at),
        timestamp(finished_at),
    ];
    let batch = RecordBatch::try_new(batches_schema(), row)?;
    lake.append(BATCHES, &batches_schema(), vec![batch]).await?;

    Ok(FileReport {
        file: file.display_name.clone(),
        batch_id,
        outcome: "ingested".into(),
        rows_read,
        rows_staged,
        rows_quarantined,
        missing_fields: column_map.missing.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn str_array(value: &str) -> ArrayRef {
    Arc::new(StringArray::from(vec![value]))
}

fn timestamp(t: chrono::DateTime<Utc>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![t.timestamp_micros()]).with_timezone("UTC"))
}
