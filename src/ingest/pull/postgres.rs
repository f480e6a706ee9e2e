//! Pulling from a department's PostgreSQL exchange database.
//!
//! Each window of rows is written by the server itself (`COPY (…) TO
//! STDOUT` as CSV, in a total order) to a local file, which is ingested
//! like any other. With a `watermark` column, windows are `(last, upper]`,
//! where `last` is the upper bound of the last committed window (table
//! `pulls`) and `upper` the value `batch_rows` rows on, so a window never
//! splits one watermark value. Without one, every run pulls everything and
//! an unchanged result is "already ingested".
//!
//! The connection URL comes from the environment variable the pipeline
//! names; it is never printed or stored.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use futures::{StreamExt, pin_mut};
use tokio::io::AsyncWriteExt;

use super::{last_watermark, nothing_new, record};
use crate::config::schema::header_key;
use crate::config::{FieldType, PullConfig, SourceSchema};
use crate::ingest::FileOutcome;
use crate::ingest::batch::{self, IngestOptions};
use crate::lake::Lake;
use crate::lake::query::sql_text;

/// A column of the pulled relation.
struct Column {
    name: String,
    type_name: String,
}

/// Pull `schema`'s source window by window, until the origin has no
/// newer rows. A refused window stops the pull (later windows would skip
/// it); windows already committed stay.
pub(super) async fn pull(
    lake: &Lake,
    schema: &Arc<SourceSchema>,
    pull: &PullConfig,
    options: &IngestOptions,
    on_file_start: &(dyn Fn(&str) + Sync),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<FileOutcome>> {
    let source = &schema.name;
    let url_env = pull.url_env.as_deref().unwrap_or_default();
    let url = std::env::var(url_env).map_err(|_| {
        anyhow!(
            "source {source}: environment variable {url_env} is not set (it holds the PostgreSQL connection URL for the pull)"
        )
    })?;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .with_context(|| {
            format!("source {source}: cannot connect to PostgreSQL (the URL in {url_env})")
        })?;
    let connection = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection closed: {e}");
        }
    });
    let result = pull_windows(
        lake,
        schema,
        pull,
        &client,
        options,
        on_file_start,
        progress,
    )
    .await;
    drop(client);
    connection.abort();
    result
}

async fn pull_windows(
    lake: &Lake,
    schema: &Arc<SourceSchema>,
    pull: &PullConfig,
    client: &tokio_postgres::Client,
    options: &IngestOptions,
    on_file_start: &(dyn Fn(&str) + Sync),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<FileOutcome>> {
    let source = &schema.name;
    let origin = pull.origin();
    let relation = match (&pull.table, &pull.query) {
        (Some(table), _) => table
            .split('.')
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join("."),
        (_, Some(query)) => format!("({query})"),
        _ => unreachable!("checked: a table or a query"),
    };
    let base = format!("SELECT * FROM {relation} AS src");
    let columns = describe(client, &base)
        .await
        .with_context(|| format!("source {source}: cannot read {origin:?} from the database"))?;
    check_types(schema, &columns)
        .with_context(|| format!("source {source}: {origin:?} does not fit schema {source}"))?;
    let watermark = match &pull.watermark {
        Some(name) => {
            let column = columns.iter().find(|c| c.name == *name).ok_or_else(|| {
                anyhow!(
                    "source {source}: the watermark column {name} is not in {origin:?} (columns: {})",
                    columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            })?;
            // The type goes into CASTs: a plain type name only.
            if !column
                .type_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                bail!(
                    "source {source}: the watermark column {name} has type {:?}, which cannot be compared; use a number, date or timestamp column",
                    column.type_name
                );
            }
            Some((format!("\"{name}\""), column.type_name.clone()))
        }
        None => None,
    };

    let scratch = tempfile::tempdir()?;
    let mut last = last_watermark(lake, source, &origin).await?;
    let mut outcomes = Vec::new();
    loop {
        let (condition, window) = match &watermark {
            Some((column, type_name)) => {
                let above = match &last {
                    Some(v) => format!("{column} > CAST({} AS {type_name})", sql_text(v)),
                    None => format!("{column} IS NOT NULL"),
                };
                let Some(upper) = window_upper(client, &base, column, &above, pull.batch_rows)
                    .await
                    .with_context(|| {
                        format!("source {source}: cannot read the watermark of {origin:?}")
                    })?
                else {
                    if outcomes.is_empty() {
                        outcomes.push(nothing_new(source, "postgres", &origin, last.as_deref()));
                    }
                    break;
                };
                (
                    format!(
                        "{above} AND {column} <= CAST({} AS {type_name})",
                        sql_text(&upper)
                    ),
                    Some(upper),
                )
            }
            None => ("true".to_string(), None),
        };
        let order = match &watermark {
            Some((column, _)) => format!("{column}, CAST(src AS TEXT)"),
            None => "CAST(src AS TEXT)".to_string(),
        };
        let file_name = format!("{source}-pull-{}.csv", outcomes.len() + 1);
        let path = scratch.path().join(&file_name);
        let display = format!(
            "postgres {origin} {}",
            match (&last, &window) {
                (_, None) => "(all rows)".to_string(),
                (None, Some(to)) => format!("(…, {to}]"),
                (Some(from), Some(to)) => format!("({from}, {to}]"),
            }
        );
        on_file_start(&display);
        let copied = copy_to_file(
            client,
            &format!("COPY ({base} WHERE {condition} ORDER BY {order}) TO STDOUT WITH (FORMAT csv, HEADER true)"),
            &path,
        )
        .await
        .with_context(|| format!("source {source}: the pull of {origin:?} failed"));
        let result = match copied {
            Ok(()) => {
                let mut file = crate::ingest::input::InputFile::local(&path);
                file.display_name = display.clone();
                batch::ingest_file(lake, schema, &file, options, progress).await
            }
            Err(e) => Err(e),
        };
        let committed = match &result {
            Ok(report) => {
                crate::failpoint::hit("pull:after-batch");
                record(
                    lake,
                    source,
                    pull,
                    &origin,
                    report,
                    last.as_deref(),
                    window.as_deref(),
                )
                .await?;
                true
            }
            Err(e) => {
                tracing::error!(source = %source, "{e:#}");
                false
            }
        };
        outcomes.push(FileOutcome {
            file: display,
            result,
        });
        if !committed || window.is_none() {
            break;
        }
        last = window;
    }
    Ok(outcomes)
}

/// The relation's columns and their PostgreSQL types, without reading rows.
async fn describe(client: &tokio_postgres::Client, base: &str) -> Result<Vec<Column>> {
    let statement = client.prepare(&format!("{base} LIMIT 0")).await?;
    Ok(statement
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_name: c.type_().name().to_string(),
        })
        .collect())
}

/// Refuse, before anything is pulled, a database column whose type cannot
/// hold what its schema field expects (a date field fed by a boolean).
fn check_types(schema: &SourceSchema, columns: &[Column]) -> Result<()> {
    const TEXT: &[&str] = &["text", "varchar", "bpchar", "name"];
    let mut wrong = Vec::new();
    for field in &schema.fields {
        let aliases: Vec<String> = field.headers.iter().map(|h| header_key(h)).collect();
        let Some(column) = columns
            .iter()
            .find(|c| aliases.contains(&header_key(&c.name)))
        else {
            continue;
        };
        let allowed: &[&str] = match field.kind {
            FieldType::Integer => &["int2", "int4", "int8", "numeric"],
            FieldType::Decimal => &["int2", "int4", "int8", "numeric", "float4", "float8"],
            FieldType::Date => &["date", "timestamp", "timestamptz"],
            FieldType::String | FieldType::Enum => continue,
        };
        if !allowed.contains(&column.type_name.as_str())
            && !TEXT.contains(&column.type_name.as_str())
        {
            wrong.push(format!(
                "column {} (field {}) is {} in the database; expected {} or text",
                column.name,
                field.display_name(),
                column.type_name,
                allowed.join(", ")
            ));
        }
    }
    if !wrong.is_empty() {
        bail!("{}", wrong.join("; "));
    }
    Ok(())
}

/// The watermark value `batch_rows` rows above `above` (or the largest,
/// when fewer are left); None when no row is newer.
async fn window_upper(
    client: &tokio_postgres::Client,
    base: &str,
    column: &str,
    above: &str,
    batch_rows: usize,
) -> Result<Option<String>> {
    let at = client
        .query_opt(
            &format!(
                "SELECT CAST(w.{column} AS TEXT) AS mark FROM ({base} WHERE {above}) AS w ORDER BY w.{column} OFFSET {} LIMIT 1",
                batch_rows - 1
            ),
            &[],
        )
        .await?;
    if let Some(row) = at {
        return Ok(row.get::<_, Option<String>>(0));
    }
    let max = client
        .query_one(
            &format!(
                "SELECT CAST(max(w.{column}) AS TEXT) AS mark FROM ({base} WHERE {above}) AS w"
            ),
            &[],
        )
        .await?;
    Ok(max.get::<_, Option<String>>(0))
}

/// Stream `COPY … TO STDOUT` into a file.
async fn copy_to_file(
    client: &tokio_postgres::Client,
    copy: &str,
    path: &std::path::Path,
) -> Result<()> {
    let stream = client.copy_out(copy).await?;
    pin_mut!(stream);
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(path).await?);
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await?;
    Ok(())
}
