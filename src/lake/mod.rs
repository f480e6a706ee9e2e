//! The lake: Delta Lake tables under one root, a local directory or an
//! object-store URL (`s3://bucket/prefix`, `file:///…`).
//!
//! Every stage reads and writes through [`Lake`]; [`Lake::session`] is the one
//! place a DataFusion `SessionContext` is built, with every table registered
//! by name.

pub mod catalog;
pub mod files;
pub mod kept;
pub mod query;
pub mod schemas;
mod store;
pub mod tables;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::LogicalPlan;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{
    EnabledStatistics, WriterProperties, WriterPropertiesBuilder,
};
use datafusion::prelude::{SessionContext, col, lit};
use deltalake::protocol::SaveMode;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder};
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use url::Url;

pub use catalog::committed_view;
pub use store::{location_url, object_store_for as store_for_url};

/// An opened lake root.
#[derive(Clone, Debug)]
pub struct Lake {
    root: Url,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
}

impl Lake {
    /// Open (and for a local path, create) the lake at `location`: a path,
    /// or a URL with scheme `file`, `s3` or `memory`. S3 endpoint and
    /// credentials come from the usual `AWS_*` environment variables.
    pub async fn open(location: &str) -> Result<Self> {
        let root = store::location_url(location, true)?;
        let (store, prefix) = store::object_store_for(&root)?;
        Ok(Lake {
            root,
            store,
            prefix,
        })
    }

    /// The lake's root URL.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The object store the lake is in.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Object-store path of `relative` under the lake root.
    pub fn path(&self, relative: &str) -> StorePath {
        let mut path = self.prefix.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }

    /// The URL of the table `name` under the root.
    pub fn table_url(&self, name: &str) -> Result<Url> {
        self.root
            .join(&format!("{name}/"))
            .with_context(|| format!("bad table name {name}"))
    }

    /// True when `name` has a Delta log under the root.
    pub async fn table_exists(&self, name: &str) -> Result<bool> {
        let log = self.path(&format!("{name}/_delta_log"));
        let listing = self
            .store
            .list_with_delimiter(Some(&log))
            .await
            .with_context(|| format!("cannot list lake table {name}"))?;
        Ok(!listing.objects.is_empty())
    }

    /// The table, or `None` when it has never been written.
    pub async fn table(&self, name: &str) -> Result<Option<DeltaTable>> {
        if !self.table_exists(name).await? {
            return Ok(None);
        }
        let url = self.table_url(name)?;
        let mut table = DeltaTableBuilder::from_url(url)?
            .with_storage_options(store::storage_options())
            .build()?;
        match table.load().await {
            Ok(()) => Ok(Some(table)),
            Err(deltalake::DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(anyhow!(e).context(format!("cannot open lake table {name}"))),
        }
    }

    /// The table, created empty with `schema` if it does not exist yet.
    pub async fn table_or_create(&self, name: &str, schema: &SchemaRef) -> Result<DeltaTable> {
        if let Some(table) = self.table(name).await? {
            return Ok(table);
        }
        let url = self.table_url(name)?;
        let table = DeltaTableBuilder::from_url(url)?
            .with_storage_options(store::storage_options())
            .build()?;
        let table = table
            .write(vec![RecordBatch::new_empty(schema.clone())])
            .with_save_mode(SaveMode::Append)
            .with_table_name(name)
            .await
            .with_context(|| format!("cannot create lake table {name}"))?;
        Ok(table)
    }

    /// A streaming writer to `table`; rows become visible only at
    /// `flush_and_commit`.
    pub fn writer(table: &DeltaTable) -> Result<RecordBatchWriter> {
        Ok(RecordBatchWriter::for_table(table)?.with_writer_properties(writer_properties()))
    }

    /// Append small batches (bookkeeping rows) in one commit.
    pub async fn append(
        &self,
        name: &str,
        schema: &SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        let mut table = self.table_or_create(name, schema).await?;
        let mut writer = Self::writer(&table)?;
        for batch in batches {
            // A bookkeeping table may have gained a column since it was
            // created (batches.missing_fields): older rows read it as null.
            writer
                .write_with_mode(batch, deltalake::writer::WriteMode::MergeSchema)
                .await?;
        }
        writer
            .flush_and_commit(&mut table)
            .await
            .with_context(|| format!("cannot commit to lake table {name}"))?;
        Ok(())
    }

    /// Replace the whole content of `name` with the result of `plan`, in one
    /// commit, streaming (the result is never held in memory whole).
    pub async fn overwrite_with_plan(
        &self,
        ctx: &SessionContext,
        name: &str,
        plan: LogicalPlan,
    ) -> Result<()> {
        let url = self.table_url(name)?;
        let table = match self.table(name).await? {
            Some(t) => t,
            None => DeltaTableBuilder::from_url(url)?
                .with_storage_options(store::storage_options())
                .build()?,
        };
        let (plan, state) = crate::distributed::writes::write_input(ctx, plan)?;
        table
            .write(Vec::<RecordBatch>::new())
            .with_input_plan(plan)
            .with_session_state(Arc::new(state))
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
            .with_writer_properties(writer_properties())
            .with_table_name(name)
            .await
            .with_context(|| format!("cannot rewrite lake table {name}"))?;
        Ok(())
    }

    /// Append the result of `plan` to `name` in one commit, streaming; the
    /// table is created with the plan's schema when it does not exist.
    /// New columns in the plan are added to the table's schema.
    pub async fn append_with_plan(
        &self,
        ctx: &SessionContext,
        name: &str,
        plan: LogicalPlan,
    ) -> Result<()> {
        let url = self.table_url(name)?;
        let table = match self.table(name).await? {
            Some(t) => t,
            None => DeltaTableBuilder::from_url(url)?
                .with_storage_options(store::storage_options())
                .build()?,
        };
        let (plan, state) = crate::distributed::writes::write_input(ctx, plan)?;
        table
            .write(Vec::<RecordBatch>::new())
            .with_input_plan(plan)
            .with_session_state(Arc::new(state))
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(deltalake::operations::write::SchemaMode::Merge)
            .with_writer_properties(writer_properties())
            .with_table_name(name)
            .await
            .with_context(|| format!("cannot append to lake table {name}"))?;
        Ok(())
    }

    /// Delete the rows of one batch from a table (left by a crashed run).
    pub async fn delete_batch(&self, name: &str, batch_id: &str) -> Result<()> {
        let Some(table) = self.table(name).await? else {
            return Ok(());
        };
        table
            .delete()
            .with_predicate(col("batch_id").eq(lit(batch_id)))
            .with_writer_properties(writer_properties())
            .await
            .with_context(|| format!("cannot remove batch {batch_id} from {name}"))?;
        Ok(())
    }

    /// Names of the Delta tables under the root, sorted.
    pub async fn table_names(&self) -> Result<Vec<String>> {
        catalog::table_names(self).await
    }

    /// A DataFusion session with every lake table registered by name. The
    /// `staged_*` and `quarantine_*` tables show committed batches only.
    pub async fn session(&self) -> Result<SessionContext> {
        catalog::session(self, None).await
    }

    /// A session with only the named tables (cheaper for small look-ups).
    pub async fn session_with(&self, tables: &[&str]) -> Result<SessionContext> {
        catalog::session(self, Some(tables)).await
    }
}

/// Parquet settings for every lake file: zstd, which DuckDB and Spark read.
pub fn writer_properties() -> WriterProperties {
    lake_parquet().build()
}

/// The settings every lake file shares, for [`writer_properties`] and
/// [`staged_writer_properties`] to build on.
fn lake_parquet() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1")))
        .set_max_row_group_row_count(Some(1 << 20))
}

/// As [`writer_properties`], for a staged table: dictionary encoding off
/// for `distinct` columns, whose values are nearly all distinct (record
/// keys, ID numbers, raw text), where building the dictionary costs time
/// and saves nothing; and no min/max statistics for `unfiltered` columns
/// (the raw text kept beside each value), which no query prunes on and
/// whose statistics cost a string comparison per value.
pub fn staged_writer_properties(distinct: &[String], unfiltered: &[String]) -> WriterProperties {
    let mut builder = lake_parquet();
    for column in distinct {
        builder = builder.set_column_dictionary_enabled(column.as_str().into(), false);
    }
    for column in unfiltered {
        builder =
            builder.set_column_statistics_enabled(column.as_str().into(), EnabledStatistics::None);
    }
    builder.build()
}

/// Storage options handed to delta-rs (from the environment).
pub fn storage_options() -> HashMap<String, String> {
    store::storage_options()
}
