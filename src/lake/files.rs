//! Delta tables scanned as the plain Parquet files of their snapshot.
//!
//! delta-rs's own scan (`DeltaScan`) has no physical codec, so a
//! distributed engine cannot send it to a worker (delta-io/delta-rs#4171).
//! DataFusion's Parquet scan it can: the coordinator reads each table's
//! log once, at one version, and hands DataFusion the list of live files
//! and the table's schema. Workers then need only the files, never the
//! log. `SAFETYNET_SCAN=parquet` turns this on for every session; the
//! default stays `delta`, except with workers (`crate::distributed`),
//! where this scan is the only one.
//!
//! A plain Parquet scan reads exactly what is in the files, so a table
//! whose rows depend on more than that — partition values kept in the
//! log, deletion vectors, column mapping (all signalled by its partition
//! columns or a reader version above 1) — keeps the Delta scan, and the
//! reason is logged. safetynet writes no such table; a lake written by
//! another tool may hold one.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use deltalake::DeltaTable;
use deltalake::delta_datafusion::DataFusionMixins;

/// How sessions scan the lake's Delta tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// delta-rs's scan: the default.
    Delta,
    /// DataFusion's Parquet scan over the snapshot's files (see the module).
    ParquetFiles,
}

/// The variable that chooses the scan.
pub const SCAN_VARIABLE: &str = "SAFETYNET_SCAN";

impl Scan {
    /// The scan for `engine`: `SAFETYNET_SCAN`'s locally; Parquet files
    /// with workers, which cannot run the Delta scan (asking for it there
    /// is refused, not ignored).
    pub fn for_engine(engine: &crate::distributed::Engine) -> Result<Scan> {
        let asked = std::env::var(SCAN_VARIABLE).ok();
        if !engine.is_distributed() {
            return Scan::named(asked.as_deref());
        }
        match asked.as_deref().map(str::trim) {
            Some("delta") => bail!(
                "{SCAN_VARIABLE}=delta cannot be used with workers: their plans read the \
                 tables as Parquet files (unset {SCAN_VARIABLE}, or set it to 'parquet')"
            ),
            other => Scan::named(other).map(|_| Scan::ParquetFiles),
        }
    }

    /// The scan a value of `SAFETYNET_SCAN` names.
    fn named(value: Option<&str>) -> Result<Scan> {
        match value.map(str::trim) {
            None | Some("") | Some("delta") => Ok(Scan::Delta),
            Some("parquet") => Ok(Scan::ParquetFiles),
            Some(other) => bail!("{SCAN_VARIABLE} must be 'delta' or 'parquet', not '{other}'"),
        }
    }
}

/// Why `table` cannot be read as plain Parquet files, if it cannot.
pub fn needs_delta_reader(table: &DeltaTable) -> Result<Option<String>> {
    let state = table.snapshot()?;
    let partitions = state.metadata().partition_columns();
    if !partitions.is_empty() {
        return Ok(Some(format!(
            "it is partitioned by {} (their values are kept in the log, not in the files)",
            partitions.join(", ")
        )));
    }
    let protocol = state.protocol();
    if protocol.min_reader_version() > 1 {
        let features = protocol
            .reader_features()
            .map(|f| format!("{f:?}"))
            .unwrap_or_else(|| "column mapping".into());
        return Ok(Some(format!(
            "it needs Delta reader version {} ({features})",
            protocol.min_reader_version()
        )));
    }
    Ok(None)
}

/// How one table is read: its provider, and why it must be read on this
/// process when that is so.
pub struct TableScan {
    /// The scan.
    pub provider: Arc<dyn TableProvider>,
    /// Set when the table needs the Delta reader and there are workers,
    /// which cannot run that scan: the reason, for the session to say why
    /// it runs its queries on this process.
    pub local_only: Option<String>,
}

/// The scan of `table` that `scan` asks for. A table that needs the Delta
/// reader keeps the Delta scan: with a warning when this process runs
/// queries itself; with workers (`distributed`), marked
/// [`TableScan::local_only`].
pub async fn provider_for(table: &DeltaTable, scan: Scan, distributed: bool) -> Result<TableScan> {
    let (provider, local_only) = if scan == Scan::Delta {
        (table.table_provider().await?, None)
    } else {
        match needs_delta_reader(table)? {
            None => (parquet_files_provider(table)?, None),
            Some(reason) if distributed => (table.table_provider().await?, Some(reason)),
            Some(reason) => {
                tracing::warn!(
                    table = %table.table_url(),
                    "read with the Delta scan, not as Parquet files: {reason}"
                );
                (table.table_provider().await?, None)
            }
        }
    };
    Ok(TableScan {
        provider,
        local_only,
    })
}

/// A scan of `table`'s live files at its loaded version, addressed by
/// their full URLs: a local lake's resolve in any session, an S3 lake's
/// through the store delta-rs registers for the table's root
/// (`DeltaTable::update_datafusion_session`). Files written before a
/// column was added read it as null.
pub fn parquet_files_provider(table: &DeltaTable) -> Result<Arc<dyn TableProvider>> {
    let schema = table.snapshot()?.snapshot().read_schema();
    let urls = table
        .get_file_uris()?
        .map(|url| ListingTableUrl::parse(&url).with_context(|| format!("bad file address {url}")))
        .collect::<Result<Vec<_>>>()?;
    if urls.is_empty() {
        // A listing needs at least one path; a table with no live file is
        // simply empty.
        return Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?));
    }
    // Any name: the log says which files are live, not their extension.
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use deltalake::DeltaTableBuilder;

    async fn table_of(dir: &std::path::Path, partitioned: bool) -> DeltaTable {
        let url = url::Url::from_directory_path(dir).unwrap();
        let table = DeltaTableBuilder::from_url(url).unwrap().build().unwrap();
        let batch = |p: &str, v: i64| {
            RecordBatch::try_from_iter(vec![
                ("p", Arc::new(StringArray::from(vec![p])) as ArrayRef),
                ("v", Arc::new(Int64Array::from(vec![v])) as ArrayRef),
            ])
            .unwrap()
        };
        let mut write = table.write(vec![batch("a", 1)]);
        if partitioned {
            write = write.with_partition_columns(["p"]);
        }
        // Two commits: two files, both live.
        let table = write.await.unwrap();
        table.write(vec![batch("b", 2)]).await.unwrap()
    }

    async fn rows(provider: Arc<dyn TableProvider>) -> Vec<String> {
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_table("t", provider).unwrap();
        let batches = ctx
            .sql("SELECT p || '=' || CAST(v AS VARCHAR) AS row FROM t ORDER BY v")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        crate::lake::query::rows_of(&batches)
            .unwrap()
            .into_iter()
            .map(|r| r["row"].clone())
            .collect()
    }

    #[tokio::test]
    async fn a_plain_table_reads_the_same_as_parquet_files() {
        let dir = tempfile::tempdir().unwrap();
        let table = table_of(dir.path(), false).await;
        assert_eq!(needs_delta_reader(&table).unwrap(), None);
        let files = parquet_files_provider(&table).unwrap();
        assert_eq!(rows(files).await, vec!["a=1", "b=2"]);
        assert_eq!(
            rows(table.table_provider().await.unwrap()).await,
            vec!["a=1", "b=2"]
        );
    }

    #[tokio::test]
    async fn a_partitioned_table_keeps_the_delta_scan_and_says_why() {
        // Its partition values are in the log, not in the files: a plain
        // Parquet scan would read p as missing.
        let dir = tempfile::tempdir().unwrap();
        let table = table_of(dir.path(), true).await;
        let reason = needs_delta_reader(&table).unwrap().expect("a reason");
        assert!(reason.contains("partitioned by p"), "{reason}");
        // Locally it is still read, with its partition values.
        let local = provider_for(&table, Scan::ParquetFiles, false)
            .await
            .unwrap();
        assert!(local.local_only.is_none());
        assert_eq!(rows(local.provider).await, vec!["a=1", "b=2"]);
        // With workers, which cannot run the Delta scan, it is marked to be
        // read on this process, with the reason.
        let spread = provider_for(&table, Scan::ParquetFiles, true)
            .await
            .unwrap();
        assert!(
            spread
                .local_only
                .as_deref()
                .is_some_and(|r| r.contains("partitioned by p")),
            "{:?}",
            spread.local_only
        );
        assert_eq!(rows(spread.provider).await, vec!["a=1", "b=2"]);
    }

    #[test]
    fn the_scan_is_chosen_by_name() {
        assert_eq!(Scan::named(None).unwrap(), Scan::Delta);
        assert_eq!(Scan::named(Some("delta")).unwrap(), Scan::Delta);
        assert_eq!(Scan::named(Some(" parquet ")).unwrap(), Scan::ParquetFiles);
        let e = Scan::named(Some("files")).unwrap_err().to_string();
        assert!(e.contains("SAFETYNET_SCAN") && e.contains("'files'"), "{e}");
    }
}
