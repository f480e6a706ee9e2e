//! A query's result kept under a name for the queries after it in one
//! session: in memory on the local engine, as Parquet files with workers.
//!
//! A table held in memory travels inside every plan that reads it, so with
//! workers each stage over it ships the whole table: the warning stage at
//! a million roster people sent the workers 1.16 GB of plans. Kept as
//! files, a plan names their paths instead, and the workers read them. The
//! files live in a temporary directory (`SAFETYNET_SCRATCH_DIR`, else the
//! system's) that goes away with the session; on several machines it must
//! be a directory they all mount at the same path, as for linking's
//! scratch (docs/distributed.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use tempfile::TempDir;

/// The directory of one session's kept tables, removed with the session.
struct KeptFiles {
    dir: TempDir,
    /// Writes so far: each gets its own subdirectory, so a name kept again
    /// never reads the files of its earlier result.
    writes: AtomicUsize,
}

/// Register `frame`'s result as table `name` of `ctx`, replacing any table
/// of that name.
pub async fn keep(ctx: &SessionContext, name: &str, frame: DataFrame) -> Result<()> {
    if !crate::distributed::current()?.is_distributed() {
        let cached = frame
            .cache()
            .await
            .with_context(|| format!("computing {name}"))?;
        let _ = ctx.deregister_table(name);
        ctx.register_table(name, cached.into_view())?;
        return Ok(());
    }
    let files = files_of(ctx)?;
    let n = files.writes.fetch_add(1, Ordering::Relaxed);
    let dir = files.dir.path().join(format!("{name}-{n}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let schema = frame.schema().as_arrow().clone();
    let path = format!("{}/", dir.to_string_lossy());
    frame
        .write_parquet(&path, DataFrameWriteOptions::new(), None)
        .await
        .with_context(|| format!("computing {name}"))?;
    let _ = ctx.deregister_table(name);
    ctx.register_parquet(name, &path, ParquetReadOptions::default().schema(&schema))
        .await
        .with_context(|| format!("reading back {name}"))?;
    Ok(())
}

/// The session's directory of kept tables, made on first use.
fn files_of(ctx: &SessionContext) -> Result<Arc<KeptFiles>> {
    let state = ctx.state_ref();
    let mut state = state.write();
    if let Some(files) = state.config().get_extension::<KeptFiles>() {
        return Ok(files);
    }
    let files = Arc::new(KeptFiles {
        dir: scratch_dir("safetynet-kept-")?,
        writes: AtomicUsize::new(0),
    });
    state.config_mut().set_extension(Arc::clone(&files));
    Ok(files)
}

/// A new directory named `prefix…` under `SAFETYNET_SCRATCH_DIR` (else the
/// system's temporary directory), removed when dropped.
pub fn scratch_dir(prefix: &str) -> Result<TempDir> {
    let base = std::env::var_os("SAFETYNET_SCRATCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)
        .with_context(|| format!("cannot create scratch directory {}", base.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .with_context(|| format!("cannot create scratch directory in {}", base.display()))
}
