//! A lake session as one caller may see it (按角色和区划的数据视图).
//!
//! Every table is replaced, under its own name, by a view that
//!
//! - masks names and ID numbers (columns whose schema role is a person's
//!   name or ID number, their `_raw` twins, and `raw_text` of quarantined
//!   rows) unless the role allows raw values;
//! - for a region-scoped caller keeps only rows of the region: by
//!   `village_code` where a table has it, else through the household
//!   (`household_id`), the warning (`warning_id`) or the record's link to a
//!   household (`staged_<source>`); a table with no way to tell a row's
//!   region is not shown to scoped callers, except run bookkeeping that
//!   holds no personal data;
//! - `audit_log` and `api_tokens` are shown to admin only.
//!
//! The raw tables are deregistered, so no name reaches them; the views hold
//! their scans inside. `information_schema` then lists only what the caller
//! may query, which is what `\dt` and clients' catalog queries show.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use datafusion::prelude::SessionContext;

use super::Principal;
use super::audit::AUDIT_LOG;
use super::tokens::API_TOKENS;
use crate::config::SourceSchema;
use crate::config::schema::Role as FieldRole;
use crate::lake::Lake;
use crate::lake::query::{sql_ident, sql_text};
use crate::lake::tables::{BATCHES, ROSTER_HOUSEHOLD};
use crate::link::link_table;

/// Tables of run bookkeeping: counts, model parameters, no personal data.
const BOOKKEEPING: &[&str] = &[BATCHES, "runs", "link_model", "roster_version"];

/// Column names that hold names or ID numbers, from every source schema.
fn sensitive_columns(schemas_dir: &Path) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let mut names: BTreeSet<String> = ["name".to_string()].into();
    let mut ids: BTreeSet<String> = ["id_number".to_string()].into();
    if let Ok(entries) = std::fs::read_dir(schemas_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let schema = SourceSchema::load(&path)?;
                for f in &schema.fields {
                    let set = match f.role {
                        Some(FieldRole::PersonName) => &mut names,
                        Some(FieldRole::IdNumber) => &mut ids,
                        _ => continue,
                    };
                    set.insert(f.name.clone());
                    set.insert(format!("{}_raw", f.name));
                }
            }
        }
    }
    Ok((names, ids))
}

/// The row filter of a table for a scoped caller, or None when the table
/// cannot be scoped (and is then hidden).
fn region_filter(
    table: &str,
    columns: &BTreeSet<String>,
    prefix: &str,
    key_of: &dyn Fn(&str) -> Option<String>,
    tables: &BTreeSet<String>,
) -> Option<String> {
    let p = sql_text(prefix);
    let households = format!(
        "(SELECT household_id FROM {ROSTER_HOUSEHOLD} WHERE starts_with(village_code, {p}))"
    );
    if columns.contains("village_code") {
        return Some(format!("starts_with(village_code, {p})"));
    }
    if columns.contains("household_id") && tables.contains(ROSTER_HOUSEHOLD) {
        return Some(format!("household_id IN {households}"));
    }
    if columns.contains("warning_id") && tables.contains("warnings") {
        return Some(format!(
            "warning_id IN (SELECT warning_id FROM warnings WHERE starts_with(village_code, {p}))"
        ));
    }
    let source = table.strip_prefix("staged_")?;
    let link = link_table(source);
    let key = key_of(source)?;
    if !tables.contains(&link) || !tables.contains(ROSTER_HOUSEHOLD) {
        return None;
    }
    Some(format!(
        "{k} IN (SELECT {k} FROM {link} WHERE household_id IN {households})",
        k = sql_ident(&key)
    ))
}

/// The lake as `p` may see it; `memory_limit` in bytes (default: the
/// lake's usual limit).
pub async fn session_for(
    lake: &Lake,
    p: &Principal,
    schemas_dir: &Path,
    memory_limit: Option<usize>,
) -> Result<SessionContext> {
    let ctx = match memory_limit {
        Some(bytes) => crate::lake::catalog::session_with_memory(lake, None, bytes).await?,
        None => lake.session().await?,
    };
    let (names, ids) = sensitive_columns(schemas_dir)?;
    let key_of = |source: &str| -> Option<String> {
        let schema = SourceSchema::load(&schemas_dir.join(format!("{source}.toml"))).ok()?;
        schema
            .field_with_role(FieldRole::RecordKey)
            .map(|f| f.name.clone())
    };
    let schema = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("public"))
        .context("the session has no default schema")?;
    let tables: BTreeSet<String> = schema.table_names().into_iter().collect();
    let mut views = Vec::new();
    for table in &tables {
        let admin_only = [AUDIT_LOG, API_TOKENS].contains(&table.as_str());
        if admin_only && !p.raw_values() {
            continue;
        }
        let provider = ctx.table_provider(table.as_str()).await?;
        let columns: Vec<String> = provider
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let column_set: BTreeSet<String> = columns.iter().cloned().collect();
        let filter = match &p.region {
            None => None,
            Some(_) if BOOKKEEPING.contains(&table.as_str()) => None,
            Some(prefix) => match region_filter(table, &column_set, prefix, &key_of, &tables) {
                Some(f) => Some(f),
                None => continue,
            },
        };
        let select: Vec<String> = columns
            .iter()
            .map(|c| {
                let q = sql_ident(c);
                if p.raw_values() {
                    q
                } else if names.contains(c) {
                    format!("sn_mask_name({q}) AS {q}")
                } else if ids.contains(c) {
                    format!("sn_mask_id({q}) AS {q}")
                } else if c == "raw_text" {
                    format!("CASE WHEN {q} IS NULL THEN NULL ELSE '（已脱敏 masked）' END AS {q}")
                } else {
                    q
                }
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {}{}",
            select.join(", "),
            sql_ident(table),
            filter.map(|f| format!(" WHERE {f}")).unwrap_or_default()
        );
        let view = ctx
            .sql(&sql)
            .await
            .with_context(|| format!("cannot build the view of {table} for {}", p.name))?
            .into_view();
        views.push((table.clone(), view));
    }
    // Views are built from the raw tables; now the names point at views only.
    for table in &tables {
        ctx.deregister_table(table.as_str())?;
    }
    for (table, view) in views {
        ctx.register_table(table.as_str(), std::sync::Arc::new(AsTable(view)))?;
    }
    Ok(ctx)
}

/// A caller's view presented as a base table, so clients' catalog queries
/// (psql's `\dt`, DBeaver's tree) list it like the table it stands for.
#[derive(Debug)]
struct AsTable(std::sync::Arc<dyn datafusion::catalog::TableProvider>);

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for AsTable {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Base
    }

    fn get_logical_plan(
        &self,
    ) -> Option<std::borrow::Cow<'_, datafusion::logical_expr::LogicalPlan>> {
        self.0.get_logical_plan()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::logical_expr::Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>
    {
        self.0.scan(state, projection, filters, limit).await
    }
}
