//! Small helpers for building queries (bound values, quoting, small key
//! tables) and for reading results whatever string encoding the scan
//! produced (Delta scans give Utf8View, literals Utf8).
//!
//! The rule: a value a query *filters on* never enters SQL text. It is a
//! DataFrame expression (`col(..).eq(lit(..))`) or a bound `$n`
//! ([`bound`]). [`sql_text`] is only for constants a generated query
//! *writes* into its rows (a rule's id, a run's date).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::scalar::ScalarValue;

/// `sql` with its `$1`, `$2`, … bound to `values`, in order, as text: the
/// values never enter the SQL text, so no quoting can go wrong.
pub async fn bound(ctx: &SessionContext, sql: &str, values: &[&str]) -> Result<DataFrame> {
    Ok(ctx.sql(sql).await?.with_param_values(text_values(values))?)
}

/// Text values to bind to `$1`, `$2`, … (see [`bound`]).
pub fn text_values(values: &[&str]) -> Vec<ScalarValue> {
    values
        .iter()
        .map(|v| ScalarValue::Utf8(Some((*v).to_string())))
        .collect()
}

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
    let values: ArrayRef = Arc::new(StringArray::from_iter_values(values));
    register_text_table(ctx, name, &[column], vec![values])
}

/// Register a two-column text table `name` of `rows`: a small lookup
/// (such as pattern → decision) that joins like any table, its values
/// never written into SQL text.
pub fn register_pairs(
    ctx: &SessionContext,
    name: &str,
    columns: (&str, &str),
    rows: Vec<(String, String)>,
) -> Result<()> {
    let (a, b): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
    register_text_table(
        ctx,
        name,
        &[columns.0, columns.1],
        vec![
            Arc::new(StringArray::from(a)),
            Arc::new(StringArray::from(b)),
        ],
    )
}

/// Replace any table `name` with an in-memory one of non-null text
/// `columns` holding `values`, one array per column.
fn register_text_table(
    ctx: &SessionContext,
    name: &str,
    columns: &[&str],
    values: Vec<ArrayRef>,
) -> Result<()> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|column| Field::new(*column, DataType::Utf8, false))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), values)?;
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
    first_column_of(ctx.sql(sql).await?).await
}

/// Rows of the first column of a query, as strings (nulls as None).
pub async fn first_column_of(df: DataFrame) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for batch in df.collect().await? {
        out.extend(strings_of(batch.column(0))?);
    }
    Ok(out)
}

/// The single integer `sql` returns (0 for no rows).
pub async fn scalar_i64(ctx: &SessionContext, sql: &str) -> Result<i64> {
    scalar_i64_of(ctx.sql(sql).await?).await
}

/// The single integer a query returns (0 for no rows, or a null).
pub async fn scalar_i64_of(df: DataFrame) -> Result<i64> {
    for batch in df.collect().await? {
        if batch.num_rows() > 0 {
            let column = cast(batch.column(0), &DataType::Int64)?;
            if column.is_null(0) {
                return Ok(0);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A table `people(name)` of awkward names.
    fn people() -> SessionContext {
        let ctx = SessionContext::new();
        register_keys(
            &ctx,
            "people",
            "name",
            ["O'Brien", "x' OR '1'='1", "张三", "李四"],
        )
        .unwrap();
        ctx
    }

    #[tokio::test]
    async fn a_bound_value_is_compared_as_text_not_read_as_sql() {
        let ctx = people();
        let count = |sql: &'static str, value: &'static str| {
            let ctx = ctx.clone();
            async move {
                scalar_i64_of(bound(&ctx, sql, &[value]).await.unwrap())
                    .await
                    .unwrap()
            }
        };
        let equal = "SELECT count(*) FROM people WHERE name = $1";
        assert_eq!(count(equal, "O'Brien").await, 1);
        // What would widen a pasted filter matches only itself.
        assert_eq!(count(equal, "x' OR '1'='1").await, 1);
        assert_eq!(count(equal, "' OR ''='").await, 0);
        // Bound inside a subquery too, as the region views and the model
        // lookup use it.
        let nested = "SELECT count(*) FROM people WHERE name IN (SELECT name FROM people WHERE starts_with(name, $1))";
        assert_eq!(count(nested, "张").await, 1);
    }

    #[tokio::test]
    async fn an_unbound_placeholder_is_an_error_not_an_empty_answer() {
        let ctx = people();
        let unbound = bound(&ctx, "SELECT count(*) FROM people WHERE name = $1", &[]).await;
        let error = unbound.expect_err("a query with $1 and no value is refused");
        assert!(error.to_string().contains("$1"), "{error}");
    }
}
