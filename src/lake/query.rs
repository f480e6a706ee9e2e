//! Small helpers for building queries (quoting, small key tables) and for
//! reading results whatever string encoding the scan produced (Delta scans
//! give Utf8View, literals Utf8).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// A SQL string literal: `it's` → `'it''s'`.
pub fn sql_text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A quoted SQL identifier: `a"b` → `"a""b"`.
pub fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Register (or replace) a one-column in-memory table `name(column)` of
/// `values`, for joining a query to a set of keys.
pub fn register_keys<'a>(
    ctx: &SessionContext,
    name: &str,
    column: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from_iter_values(values))],
    )?;
    let _ = ctx.deregister_table(name);
    ctx.register_table(
        name,
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(())
}

/// A column as optional strings.
pub fn strings_of(array: &ArrayRef) -> Result<Vec<Option<String>>> {
    let utf8 = cast(array, &DataType::Utf8)?;
    let column = utf8.as_string::<i32>();
    Ok((0..column.len())
        .map(|i| column.is_valid(i).then(|| column.value(i).to_string()))
        .collect())
}

/// Rows of the first column of `sql`, as strings (nulls as None).
pub async fn first_column(ctx: &SessionContext, sql: &str) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for batch in ctx.sql(sql).await?.collect().await? {
        out.extend(strings_of(batch.column(0))?);
    }
    Ok(out)
}

/// The single integer `sql` returns (0 for no rows).
pub async fn scalar_i64(ctx: &SessionContext, sql: &str) -> Result<i64> {
    for batch in ctx.sql(sql).await?.collect().await? {
        if batch.num_rows() > 0 {
            let column = cast(batch.column(0), &DataType::Int64)?;
            return Ok(column.as_primitive::<Int64Type>().value(0));
        }
    }
    Ok(0)
}

/// Rows as column name → text (null values left out).
pub fn rows_of(batches: &[RecordBatch]) -> Result<Vec<BTreeMap<String, String>>> {
    let mut rows = Vec::new();
    for batch in batches {
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let columns: Vec<Vec<Option<String>>> = batch
            .columns()
            .iter()
            .map(strings_of)
            .collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            rows.push(
                names
                    .iter()
                    .zip(&columns)
                    .filter_map(|(n, c)| c[i].clone().map(|v| (n.clone(), v)))
                    .collect(),
            );
        }
    }
    Ok(rows)
}
