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
//! temporary directory).

use std::path::Path;

use anyhow::{Context, Result};
use datafusion::arrow::datatypes::Schema;
use datafusion::common::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use tempfile::TempDir;

/// Rows (records plus registry people) from which intermediate tables go
/// to files rather than memory.
pub const ON_DISK_ROWS: i64 = 2_000_000;

pub struct Scratch {
    dir: TempDir,
    on_disk: bool,
}

impl Scratch {
    /// `rows`: the records and registry people of the run.
    pub fn new(rows: i64) -> Result<Self> {
        let base = std::env::var_os("SAFETYNET_SCRATCH_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base)
            .with_context(|| format!("cannot create scratch directory {}", base.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("safetynet-link-")
            .tempdir_in(&base)
            .with_context(|| format!("cannot create scratch directory in {}", base.display()))?;
        Ok(Self {
            dir,
            on_disk: rows >= ON_DISK_ROWS,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run each query in turn, one Parquet file each, and register the
    /// union of their rows as table `name`. One query at a time keeps only
    /// one join's build side in memory (the blocking rules are such joins).
    /// The queries must return the same columns.
    pub async fn materialise(
        &self,
        ctx: &SessionContext,
        name: &str,
        queries: &[String],
    ) -> Result<()> {
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
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut schema: Option<Schema> = None;
        for (i, sql) in queries.iter().enumerate() {
            let frame = ctx
                .sql(sql)
                .await
                .with_context(|| format!("planning {name} (part {})", i + 1))?;
            if schema.is_none() {
                schema = Some(frame.schema().as_arrow().clone());
            }
            let file = dir.join(format!("part-{i:03}.parquet"));
            frame
                .write_parquet(
                    &file.to_string_lossy(),
                    DataFrameWriteOptions::new().with_single_file_output(true),
                    Some(fast_parquet()),
                )
                .await
                .with_context(|| format!("computing {name} (part {})", i + 1))?;
        }
        let schema = schema.context("materialise needs at least one query")?;
        ctx.register_parquet(
            name,
            format!("{}/", dir.to_string_lossy()),
            ParquetReadOptions::default().schema(&schema),
        )
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
