//! Intermediate tables of one linking run, kept as Parquet files in a
//! temporary directory rather than in memory.
//!
//! At province scale (10M roster people) the prepared sides and the
//! candidate pairs are gigabytes. DataFusion's in-memory cache cannot
//! spill, so a run that cached them needed all of it in RAM at once; read
//! back from files, each later query loads only the columns it uses, a
//! batch at a time. The directory goes away with the run, also on error.
//! Small runs (see [`ON_DISK_ROWS`]) keep them in memory instead: writing
//! and re-reading files made a 100,000-household run three times slower.
//! `SAFETYNET_SCRATCH_DIR` chooses where it lives (default: the system's
//! temporary directory); `SAFETYNET_SCRATCH_ROWS` moves the threshold
//! (0: always files). Runs on disk decide a million records at a time
//! (`SAFETYNET_PART_RECORDS`).
//!
//! With workers the tables are always files, whatever their size: a table
//! held in memory travels inside every plan that reads it, so at a
//! million roster people each worker was sent 0.9–1.1 GB of plans and
//! timed out waiting for them. Files travel as their paths, which the
//! workers must be able to open: on several machines the scratch
//! directory has to be shared at the same path (docs/distributed.md).

use std::path::Path;

use anyhow::{Context, Result};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use tempfile::TempDir;

/// Rows (records plus registry people) from which intermediate tables go
/// to files rather than memory.
pub const ON_DISK_ROWS: i64 = 2_000_000;

/// A row count from the environment, or `default` when unset.
fn rows_from_env(name: &str, default: i64) -> Result<i64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name} must be a number of rows, not '{v}'")),
        Err(_) => Ok(default),
    }
}

/// Records per part when a large run decides in parts (see `parts`).
pub const RECORDS_PER_PART: i64 = 1_000_000;

/// A link run's temporary directory, removed when dropped; large runs spill their intermediate tables to it.
pub struct Scratch {
    dir: TempDir,
    on_disk: bool,
}

impl Scratch {
    /// `rows`: the records and registry people of the run.
    pub fn new(rows: i64) -> Result<Self> {
        let dir = crate::lake::kept::scratch_dir("safetynet-link-")?;
        let on_disk = crate::distributed::current()?.is_distributed()
            || rows >= rows_from_env("SAFETYNET_SCRATCH_ROWS", ON_DISK_ROWS)?;
        Ok(Self { dir, on_disk })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// In how many parts to decide `records` records: one per million
    /// (`SAFETYNET_PART_RECORDS`) on disk, else one. Scoring a part's
    /// pairs and picking each record's best candidate then fits the memory
    /// pool without spilling. (With six million records in one query,
    /// DataFusion 55's repartition spill could stall the query for good:
    /// apache/datafusion#24883.)
    pub fn parts(&self, records: i64) -> Result<i64> {
        if !self.on_disk {
            return Ok(1);
        }
        let per_part = rows_from_env("SAFETYNET_PART_RECORDS", RECORDS_PER_PART)?.max(1);
        Ok((records.max(1) as u64).div_ceil(per_part as u64) as i64)
    }

    /// Run each query in turn, one Parquet file each, and register the
    /// union of their rows as table `name`. One query at a time keeps only
    /// one join's build side in memory (the blocking rules are such joins).
    /// The queries must return the same columns.
    ///
    /// With `partition`, the rows are written in one directory per value of
    /// that integer column, and a filter on it reads only that directory.
    pub async fn materialise(
        &self,
        ctx: &SessionContext,
        name: &str,
        queries: &[String],
        partition: Option<&str>,
    ) -> Result<()> {
        // Written again (the decisions are, when records whose ID number
        // is in doubt change the review budget), the table replaces the
        // first: its name is freed, and its old files go, so that no row
        // is read twice.
        ctx.deregister_table(name)?;
        if !self.on_disk {
            let frame = ctx
                .sql(&queries.join("\nUNION ALL\n"))
                .await
                .with_context(|| format!("planning {name}"))?
                .cache()
                .await
                .with_context(|| format!("computing {name}"))?;
            ctx.register_table(name, frame.into_view())?;
            return Ok(());
        }
        let dir = self.dir.path().join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot empty {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut schema: Option<Schema> = None;
        for (i, sql) in queries.iter().enumerate() {
            let frame = ctx
                .sql(sql)
                .await
                .with_context(|| format!("planning {name} (part {})", i + 1))?;
            if schema.is_none() {
                let arrow = frame.schema().as_arrow();
                let columns: Vec<_> = arrow
                    .fields()
                    .iter()
                    .filter(|f| Some(f.name().as_str()) != partition)
                    .cloned()
                    .collect();
                schema = Some(Schema::new(columns));
            }
            let (target, options) = match partition {
                // Files named by DataFusion, unique per write.
                Some(column) => (
                    format!("{}/", dir.to_string_lossy()),
                    DataFrameWriteOptions::new().with_partition_by(vec![column.to_string()]),
                ),
                None => (
                    dir.join(format!("part-{i:03}.parquet"))
                        .to_string_lossy()
                        .into_owned(),
                    DataFrameWriteOptions::new().with_single_file_output(true),
                ),
            };
            frame
                .write_parquet(&target, options, Some(fast_parquet()))
                .await
                .with_context(|| format!("computing {name} (part {})", i + 1))?;
            tracing::info!(table = name, part = i + 1, of = queries.len(), "written");
        }
        let schema = schema.context("materialise needs at least one query")?;
        let mut read = ParquetReadOptions::default().schema(&schema);
        if let Some(column) = partition {
            read = read.table_partition_cols(vec![(column.to_string(), DataType::Int32)]);
        }
        ctx.register_parquet(name, format!("{}/", dir.to_string_lossy()), read)
            .await
            .with_context(|| format!("reading back {name}"))?;
        Ok(())
    }
}

/// Written once and read back a few times: light compression is faster
/// than zstd and the files are gone after the run.
fn fast_parquet() -> TableParquetOptions {
    let mut options = TableParquetOptions::default();
    options.global.compression = Some("lz4_raw".into());
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of `SELECT x FROM name`, sorted.
    async fn rows(ctx: &SessionContext, name: &str) -> Vec<i64> {
        let batches = ctx
            .sql(&format!("SELECT x FROM {name} ORDER BY x"))
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs");
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .expect("BIGINT")
                    .values()
                    .to_vec()
            })
            .collect()
    }

    /// A province-scale run writes its decisions a second time when the
    /// records in doubt move the review budget: the second writing must
    /// replace the first, in files and in memory alike (at 3M roster
    /// people it failed with "The table decided already exists").
    #[tokio::test]
    async fn a_table_written_again_replaces_the_first() {
        for rows_in_run in [0, ON_DISK_ROWS] {
            let scratch = Scratch::new(rows_in_run).expect("scratch");
            let ctx = SessionContext::new();
            let first = [
                "SELECT CAST(1 AS BIGINT) AS x".to_string(),
                "SELECT CAST(2 AS BIGINT) AS x".to_string(),
            ];
            scratch
                .materialise(&ctx, "decided", &first, None)
                .await
                .expect("first writing");
            assert_eq!(rows(&ctx, "decided").await, [1, 2]);
            let again = ["SELECT CAST(3 AS BIGINT) AS x".to_string()];
            scratch
                .materialise(&ctx, "decided", &again, None)
                .await
                .expect("second writing");
            assert_eq!(
                rows(&ctx, "decided").await,
                [3],
                "on disk: {}",
                scratch.on_disk
            );
        }
    }
}
