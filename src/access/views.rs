//! A lake session as one caller may see it (按角色和区划的数据视图).
//!
//! Every table is replaced, under its own name, by a view that, unless the
//! role allows raw values,
//!
//! - masks names and ID numbers (columns whose schema role is a person's
//!   name or ID number, and their `_raw` twins);
//! - coarsens birth dates to the year (or year and month, by policy),
//!   since the 8 digits an ID mask hides are the birth date: shown beside a
//!   masked ID, a full birth date gives the number back;
//! - masks free text that may name people: `raw_text` of quarantined rows,
//!   the quoted values in `issues`, clerks' notes in `review_decisions`
//!   and the reasons recorded with verifications in `warning_events`;
//!
//! and for a region-scoped caller keeps only rows of the region: by
//! `village_code` where a table has it, else through the household
//! (`household_id`), the warning (`warning_id`) or the record's link to a
//! household (`staged_<source>`); a table with no way to tell a row's
//! region is not shown to scoped callers, except run bookkeeping that
//! holds no personal data. `audit_log` and `api_tokens` are shown to admin
//! only.
//!
//! The raw tables are deregistered, so no name reaches them; the views hold
//! their scans inside. `information_schema` then lists only what the caller
//! may query, which is what `\dt` and clients' catalog queries show.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use super::Principal;
use super::audit::AUDIT_LOG;
use super::tokens::API_TOKENS;
use crate::config::schema::Role as FieldRole;
use crate::config::{BirthDatePrecision, SourceSchema};
use crate::lake::query::{bound, sql_ident};
use crate::lake::tables::{BATCHES, REVIEW_DECISIONS, ROSTER_HOUSEHOLD, WARNINGS, link_table};

/// Tables of run bookkeeping: counts, model parameters, no personal data.
const BOOKKEEPING: &[&str] = &[
    BATCHES,
    crate::lake::tables::RUNS,
    crate::lake::tables::LINK_MODEL,
    crate::lake::schemas::SOURCE_SCHEMAS,
    crate::lake::tables::PULLS,
    crate::lake::tables::LINK_HISTORY,
    crate::lake::tables::LINK_CALIBRATION,
];

/// What masked free text shows.
pub const MASKED: &str = "（已脱敏 masked）";

/// Which columns hold names, ID numbers and birth dates, and each source's
/// record key and event date: read from the source schemas once.
#[derive(Debug, Clone, Default)]
pub struct ColumnRoles {
    names: BTreeSet<String>,
    ids: BTreeSet<String>,
    births: BTreeSet<String>,
    record_keys: BTreeMap<String, String>,
    event_dates: BTreeMap<String, String>,
}

impl ColumnRoles {
    /// From every schema in `schemas_dir`, plus the roster's own columns.
    pub fn load(schemas_dir: &Path) -> Result<ColumnRoles> {
        let mut out = ColumnRoles {
            names: ["name".to_string()].into(),
            ids: ["id_number".to_string()].into(),
            births: ["birth_date".to_string()].into(),
            record_keys: BTreeMap::new(),
            event_dates: BTreeMap::new(),
        };
        let Ok(entries) = std::fs::read_dir(schemas_dir) else {
            return Ok(out);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            out.add(&SourceSchema::load(&path)?);
        }
        Ok(out)
    }

    /// These roles with a schema's as well (one the lake recorded: a
    /// column it names as an ID number is masked whatever the directory
    /// holds). Where two schemas of one source disagree on its record key
    /// or event date, the added one wins.
    pub fn with(&self, schemas: &BTreeMap<String, SourceSchema>) -> ColumnRoles {
        let mut out = self.clone();
        for schema in schemas.values() {
            out.add(schema);
        }
        out
    }

    fn add(&mut self, schema: &SourceSchema) {
        for f in &schema.fields {
            let set = match f.role {
                Some(FieldRole::PersonName) => &mut self.names,
                Some(FieldRole::IdNumber) => &mut self.ids,
                Some(FieldRole::BirthDate) => &mut self.births,
                Some(FieldRole::RecordKey) => {
                    self.record_keys
                        .insert(schema.name.to_string(), f.name.clone());
                    continue;
                }
                Some(FieldRole::EventDate) => {
                    self.event_dates
                        .insert(schema.name.to_string(), f.name.clone());
                    continue;
                }
                _ => continue,
            };
            set.insert(f.name.clone());
        }
    }

    /// The record key column of a source.
    pub fn record_key(&self, source: &str) -> Option<&str> {
        self.record_keys.get(source).map(String::as_str)
    }

    /// The event date column of a source.
    pub fn event_date(&self, source: &str) -> Option<&str> {
        self.event_dates.get(source).map(String::as_str)
    }
}

/// The row filter of a table for a scoped caller, or None when the table
/// cannot be scoped (and is then hidden). The caller's region prefix is
/// `$1`, bound when the view is built.
fn region_filter(
    table: &str,
    columns: &BTreeMap<String, DataType>,
    roles: &ColumnRoles,
    tables: &BTreeSet<String>,
) -> Option<String> {
    let p = "$1";
    let households = format!(
        "(SELECT household_id FROM {ROSTER_HOUSEHOLD} WHERE starts_with(village_code, {p}))"
    );
    if columns.contains_key("village_code") {
        return Some(format!("starts_with(village_code, {p})"));
    }
    if columns.contains_key("household_id") && tables.contains(ROSTER_HOUSEHOLD) {
        return Some(format!("household_id IN {households}"));
    }
    if columns.contains_key("warning_id") && tables.contains(WARNINGS) {
        return Some(format!(
            "warning_id IN (SELECT warning_id FROM {WARNINGS} WHERE starts_with(village_code, {p}))"
        ));
    }
    let source = crate::lake::tables::source_of_staged(table)?;
    let link = link_table(&source);
    let key = roles.record_key(&source)?;
    if !tables.contains(link.as_str()) || !tables.contains(ROSTER_HOUSEHOLD) {
        return None;
    }
    Some(format!(
        "{k} IN (SELECT {k} FROM {link} WHERE household_id IN {households})",
        k = sql_ident(key)
    ))
}

fn width(precision: BirthDatePrecision) -> usize {
    match precision {
        BirthDatePrecision::Year => 4,
        BirthDatePrecision::Month => 7,
    }
}

fn unit(precision: BirthDatePrecision) -> &'static str {
    match precision {
        BirthDatePrecision::Year => "year",
        BirthDatePrecision::Month => "month",
    }
}

fn is_text(kind: &DataType) -> bool {
    matches!(
        kind,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    )
}

/// A birth date as the caller may see it: truncated to the year or month,
/// keeping the column's type.
fn coarse_date(column: &str, kind: &DataType, precision: BirthDatePrecision) -> String {
    if is_text(kind) {
        return format!("substr({column}, 1, {})", width(precision));
    }
    let target = if matches!(kind, DataType::Timestamp(..)) {
        "TIMESTAMP"
    } else {
        "DATE"
    };
    format!(
        "CAST(date_trunc('{}', {column}) AS {target})",
        unit(precision)
    )
}

/// A column's expression for a role without raw values, or None when the
/// column is shown as it is.
fn masked(
    table: &str,
    column: &str,
    kind: &DataType,
    all: &BTreeMap<String, DataType>,
    roles: &ColumnRoles,
    precision: BirthDatePrecision,
) -> Option<String> {
    let q = sql_ident(column);
    let base = column.strip_suffix("_raw");
    let is = |set: &BTreeSet<String>| set.contains(column) || base.is_some_and(|b| set.contains(b));
    if is(&roles.names) {
        return Some(format!("sn_mask_name({q})"));
    }
    if is(&roles.ids) {
        return Some(format!("sn_mask_id({q})"));
    }
    if roles.births.contains(column) {
        return Some(coarse_date(&q, kind, precision));
    }
    if let Some(b) = base.filter(|b| roles.births.contains(*b)) {
        // The original text of a birth date: shown as the coarse date when
        // it was read, masked when it was not.
        let shown = match all.get(b) {
            Some(k) if !is_text(k) => format!(
                "substr(CAST({} AS VARCHAR), 1, {})",
                sql_ident(b),
                width(precision)
            ),
            _ => format!("'{MASKED}'"),
        };
        return Some(format!(
            "CASE WHEN {q} IS NULL THEN NULL WHEN {b} IS NULL THEN '{MASKED}' ELSE {shown} END",
            b = sql_ident(b)
        ));
    }
    match (table, column) {
        (_, "raw_text") => Some(format!(
            "CASE WHEN {q} IS NULL THEN NULL ELSE '{MASKED}' END"
        )),
        // Problems noted at ingest quote the values they saw.
        (_, "issues") => Some(format!("regexp_replace({q}, '''[^'']*''', '''***''', 'g')")),
        (REVIEW_DECISIONS, "note") => Some(format!(
            "CASE WHEN {q} IS NULL OR {q} = '' THEN {q} ELSE '{MASKED}' END"
        )),
        // A verification's detail ends with the reason staff wrote, and its
        // actor is the person who visited.
        ("warning_events", "detail") => Some(format!(
            "CASE WHEN event IN ('verified', 'closed') THEN regexp_replace({q}, '^(outcome [a-z_]+;( visited [0-9-]+;)?).*$', '${{1}} （理由已脱敏 reason masked）') ELSE {q} END"
        )),
        ("warning_events", "actor") => Some(format!(
            "CASE WHEN event IN ('verified', 'closed') THEN sn_mask_name({q}) ELSE {q} END"
        )),
        _ => None,
    }
}

/// Replace every table of `ctx` by the view `p` may see.
pub(crate) async fn restrict(
    ctx: &SessionContext,
    p: &Principal,
    roles: &ColumnRoles,
    precision: BirthDatePrecision,
) -> Result<()> {
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
        let fields = provider.schema();
        let columns: BTreeMap<String, DataType> = fields
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let filter = match &p.region {
            None => None,
            Some(_) if BOOKKEEPING.contains(&table.as_str()) => None,
            Some(_) => match region_filter(table, &columns, roles, &tables) {
                Some(f) => Some(f),
                None => continue,
            },
        };
        let select: Vec<String> = fields
            .fields()
            .iter()
            .map(|f| {
                let q = sql_ident(f.name());
                let expr = (!p.raw_values())
                    .then(|| masked(table, f.name(), f.data_type(), &columns, roles, precision))
                    .flatten();
                match expr {
                    Some(expr) => format!("{expr} AS {q}"),
                    None => q,
                }
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {}{}",
            select.join(", "),
            sql_ident(table),
            filter.map(|f| format!(" WHERE {f}")).unwrap_or_default()
        );
        let prefix: Vec<&str> = p.region.as_deref().into_iter().collect();
        let view = bound(ctx, &sql, &prefix)
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
    Ok(())
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
