//! The watermark windows of a database pull, whatever the database.
//!
//! With a `watermark` column, windows are `(last, upper]`, where `last` is
//! the upper bound of the last committed window (table `pulls`) and
//! `upper` the value `batch_rows` rows on, so a window never splits one
//! watermark value. Without one, every run pulls everything and an
//! unchanged result is "already ingested". Each window is read in a total
//! order, so the same rows make the same file and the same batch id.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};

use super::{Job, last_watermark, nothing_new, record};
use crate::config::schema::header_key;
use crate::config::{FieldType, SourceSchema};
use crate::ingest::FileOutcome;

/// What a column's database type can hold, for the schema check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TypeClass {
    Integer,
    Decimal,
    Date,
    Text,
    Other,
}

/// A column of the pulled relation.
pub(super) struct Column {
    pub name: String,
    /// The database's own name for the type, for messages and casts.
    pub type_name: String,
    pub class: TypeClass,
}

/// One database's dialect and client, as the window loop needs them.
#[async_trait::async_trait]
pub(super) trait Database: Send {
    /// `postgres`, `mysql`.
    fn kind(&self) -> &'static str;
    /// A quoted identifier.
    fn quote(&self, name: &str) -> String;
    /// An expression cast to text.
    fn as_text(&self, expr: &str) -> String;
    /// An expression that stands for `value` and compares as `column`'s
    /// type, in the statements that follow (until `slot` is used again).
    /// Where the client can, the value is bound, never written into the
    /// statement's text.
    async fn value(&mut self, slot: usize, value: &str, column: &Column) -> Result<String>;
    /// An ORDER BY list that orders the rows of `SELECT * … AS src` totally.
    fn total_order(&self, columns: &[Column]) -> String;
    /// The columns of a query, without reading its rows.
    async fn columns(&mut self, select: &str) -> Result<Vec<Column>>;
    /// The first column of the first row, as text.
    async fn first_text(&mut self, select: &str) -> Result<Option<String>>;
    /// Write a query's rows as CSV with a header row.
    async fn copy_csv(&mut self, select: &str, path: &Path) -> Result<()>;
}

/// Pull window after window until the origin has no newer rows. A refused
/// window stops the pull (later windows would skip it); windows already
/// committed stay.
pub(super) async fn pull_windows(db: &mut dyn Database, job: &Job<'_>) -> Result<Vec<FileOutcome>> {
    let (lake, schema, pull) = (job.lake, job.schema, job.pull);
    let source = &schema.name;
    let kind = db.kind();
    let origin = pull.origin();
    let relation = match (&pull.table, &pull.query) {
        (Some(table), _) => table
            .split('.')
            .map(|p| db.quote(p))
            .collect::<Vec<_>>()
            .join("."),
        (_, Some(query)) => format!("({query})"),
        _ => bail!("source {source}: [source.pull] needs a table or a query"),
    };
    let base = format!("SELECT * FROM {relation} AS src");
    let columns = db
        .columns(&base)
        .await
        .with_context(|| format!("source {source}: cannot read {origin:?} from the database"))?;
    check_types(schema, &columns)
        .with_context(|| format!("source {source}: {origin:?} does not fit schema {source}"))?;
    let watermark = match &pull.watermark {
        Some(name) => Some(columns.iter().find(|c| c.name == *name).ok_or_else(|| {
            anyhow!(
                "source {source}: the watermark column {name} is not in {origin:?} (columns: {})",
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?),
        None => None,
    };
    let order = match watermark {
        Some(column) => format!("{}, {}", db.quote(&column.name), db.total_order(&columns)),
        None => db.total_order(&columns),
    };

    let scratch = tempfile::tempdir()?;
    let mut last = last_watermark(lake, source, &origin).await?;
    let mut outcomes = Vec::new();
    loop {
        let (condition, window) = match watermark {
            Some(column) => {
                let quoted = db.quote(&column.name);
                let above = match &last {
                    Some(v) => format!("{quoted} > {}", db.value(1, v, column).await?),
                    None => format!("{quoted} IS NOT NULL"),
                };
                let Some(upper) = window_upper(db, &base, &quoted, &above, pull.batch_rows)
                    .await
                    .with_context(|| {
                        format!("source {source}: cannot read the watermark of {origin:?}")
                    })?
                else {
                    if outcomes.is_empty() {
                        outcomes.push(nothing_new(source, kind, &origin, last.as_deref()));
                    }
                    break;
                };
                let at_most = db.value(2, &upper, column).await?;
                (format!("{above} AND {quoted} <= {at_most}"), Some(upper))
            }
            None => ("1 = 1".to_string(), None),
        };
        let path = scratch
            .path()
            .join(format!("{source}-pull-{}.csv", outcomes.len() + 1));
        let display = format!(
            "{kind} {origin} {}",
            match (&last, &window) {
                (_, None) => "(all rows)".to_string(),
                (None, Some(to)) => format!("(…, {to}]"),
                (Some(from), Some(to)) => format!("({from}, {to}]"),
            }
        );
        (job.on_file_start)(&display);
        let copied = db
            .copy_csv(&format!("{base} WHERE {condition} ORDER BY {order}"), &path)
            .await
            .with_context(|| format!("source {source}: the pull of {origin:?} failed"));
        let result = match copied {
            Ok(()) => job.ingest(&path, &display).await,
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

/// Refuse, before anything is pulled, a database column whose type cannot
/// hold what its schema field expects (a date field fed by a boolean).
fn check_types(schema: &SourceSchema, columns: &[Column]) -> Result<()> {
    let mut wrong = Vec::new();
    for field in &schema.fields {
        let aliases: Vec<String> = field.headers.iter().map(|h| header_key(h)).collect();
        let Some(column) = columns
            .iter()
            .find(|c| aliases.contains(&header_key(&c.name)))
        else {
            continue;
        };
        let (allowed, expected): (&[TypeClass], &str) = match field.kind {
            FieldType::Integer => (&[TypeClass::Integer], "an integer"),
            FieldType::Decimal => (&[TypeClass::Integer, TypeClass::Decimal], "a number"),
            FieldType::Date => (&[TypeClass::Date], "a date or timestamp"),
            FieldType::String | FieldType::Enum => continue,
        };
        if !allowed.contains(&column.class) && column.class != TypeClass::Text {
            wrong.push(format!(
                "column {} (field {}) is {} in the database; expected {expected} or text",
                column.name,
                field.display_name(),
                column.type_name,
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
    db: &mut dyn Database,
    base: &str,
    column: &str,
    above: &str,
    batch_rows: usize,
) -> Result<Option<String>> {
    // `w.` so that ORDER BY takes the column, not the text output.
    let mark = db.as_text(&format!("w.{column}"));
    let at = db
        .first_text(&format!(
            "SELECT {mark} AS mark FROM ({base} WHERE {above}) AS w ORDER BY w.{column} LIMIT 1 OFFSET {}",
            batch_rows - 1
        ))
        .await?;
    if at.is_some() {
        return Ok(at);
    }
    let max = db.as_text(&format!("max(w.{column})"));
    db.first_text(&format!(
        "SELECT {max} AS mark FROM ({base} WHERE {above}) AS w"
    ))
    .await
}
