//! The clerical review loop: records in the review band are exported with
//! the record and its best candidate side by side; clerks fill in
//! `decision`; the import stores the decisions in `review_decisions`, and
//! every later link run follows them (a "match" links the pair, a
//! "no_match" removes the pair from the candidates).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::plan::REVIEW_DECISIONS;
use super::settings::SettingsFile;
use super::{link_table, prepare};
use crate::lake::Lake;
use crate::lake::tables::{ROSTER_SOURCE, timestamp_type};

/// Columns of the exported review file, in order.
pub const EXPORT_COLUMNS: &[&str] = &[
    "source",
    "record_key",
    "person_id",
    "household_id",
    "match_weight",
    "match_probability",
    "record_name",
    "roster_name",
    "record_id_number",
    "roster_id_number",
    "record_birth_date",
    "roster_birth_date",
    "record_gender",
    "roster_gender",
    "record_region",
    "roster_region",
    "decision",
    "reviewer",
    "note",
];

pub fn decisions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("record_key", DataType::Utf8, false),
        Field::new("person_id", DataType::Utf8, false),
        Field::new("decision", DataType::Utf8, false),
        Field::new("reviewer", DataType::Utf8, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("file", DataType::Utf8, false),
        Field::new("decided_at", timestamp_type(), false),
    ]))
}

/// Write the review band of `sources` to a CSV (UTF-8 with a byte-order
/// mark, so spreadsheet programs show the Chinese text). Returns the rows.
pub async fn export(
    lake: &Lake,
    schemas_dir: &Path,
    settings_file: &SettingsFile,
    sources: &[String],
    out: &Path,
) -> Result<usize> {
    let ctx = lake.session().await?;
    let recorded = crate::lake::schemas::recorded_in(&ctx).await?;
    let mut file =
        std::fs::File::create(out).with_context(|| format!("cannot write {}", out.display()))?;
    std::io::Write::write_all(&mut file, "\u{feff}".as_bytes())?;
    let mut writer = csv::Writer::from_writer(file);
    writer.write_record(EXPORT_COLUMNS)?;
    let mut rows = 0;
    for source in sources {
        let table = link_table(source);
        if !ctx.table_exist(table.as_str())? {
            continue;
        }
        let settings = settings_file.for_source(source)?;
        let schema = crate::lake::schemas::pick(&recorded, schemas_dir, source)?;
        let left = prepare::source_view_sql(&ctx, &schema, false).await?;
        let right = if settings.registry == ROSTER_SOURCE {
            prepare::roster_view_sql()
        } else {
            let registry = crate::lake::schemas::pick(&recorded, schemas_dir, &settings.registry)?;
            prepare::source_view_sql(&ctx, &registry, true).await?
        };
        let key = schema.key.replace('"', "\"\"");
        let sql = format!(
            "SELECT '{source}', l.record_key, k.person_id, k.household_id,
                    CAST(round(k.match_weight, 2) AS VARCHAR), CAST(round(k.match_probability, 4) AS VARCHAR),
                    l.name, r.name, l.id_number, r.id_number,
                    CAST(l.birth_date AS VARCHAR), CAST(r.birth_date AS VARCHAR),
                    l.gender, r.gender, l.region_code, r.region_code
             FROM {table} k
             JOIN ({left}) l ON CAST(k.\"{key}\" AS VARCHAR) = l.record_key
             LEFT JOIN ({right}) r ON k.person_id = r.person_id
             WHERE k.status = 'review'
             ORDER BY l.record_key"
        );
        for batch in ctx.sql(&sql).await?.collect().await? {
            let columns: Vec<Vec<Option<String>>> = batch
                .columns()
                .iter()
                .map(crate::lake::query::strings_of)
                .collect::<Result<_>>()?;
            for i in 0..batch.num_rows() {
                let mut record: Vec<String> = columns
                    .iter()
                    .map(|c| c[i].clone().unwrap_or_default())
                    .collect();
                record.extend(["".into(), "".into(), "".into()]);
                writer.write_record(&record)?;
                rows += 1;
            }
        }
    }
    writer.flush()?;
    Ok(rows)
}

/// What an import stored.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    pub matches: usize,
    pub non_matches: usize,
    pub undecided: usize,
}

/// Read clerks' decisions. Accepted: match / 是 / 同一人 / yes / y / 1 and
/// no_match / 否 / 不是 / no / n / 0; an empty decision is skipped.
pub async fn import(lake: &Lake, file: &Path) -> Result<ImportReport> {
    let mut reader =
        csv::Reader::from_path(file).with_context(|| format!("cannot read {}", file.display()))?;
    let headers: Vec<String> = reader
        .headers()?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            format!(
                "{}: no '{name}' column (found: {})",
                file.display(),
                headers.join(", ")
            )
        })
    };
    let (source, record, person, decision) = (
        column("source")?,
        column("record_key")?,
        column("person_id")?,
        column("decision")?,
    );
    let reviewer = headers.iter().position(|h| h == "reviewer");
    let note = headers.iter().position(|h| h == "note");

    let mut report = ImportReport::default();
    let mut rows: Vec<[Option<String>; 6]> = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: line {}", file.display(), i + 2))?;
        let get = |c: usize| row.get(c).map(str::trim).unwrap_or_default().to_string();
        let text = get(decision);
        let decided = match text.to_lowercase().as_str() {
            "" => {
                report.undecided += 1;
                continue;
            }
            "match" | "是" | "同一人" | "yes" | "y" | "1" => {
                report.matches += 1;
                "match"
            }
            "no_match" | "否" | "不是" | "不是同一人" | "no" | "n" | "0" => {
                report.non_matches += 1;
                "no_match"
            }
            other => bail!(
                "{}: line {}: decision '{other}' is not match/是 or no_match/否",
                file.display(),
                i + 2
            ),
        };
        if get(source).is_empty() || get(record).is_empty() || get(person).is_empty() {
            bail!(
                "{}: line {}: source, record_key and person_id are all needed",
                file.display(),
                i + 2
            );
        }
        let optional = |c: Option<usize>| c.map(get).filter(|v| !v.is_empty());
        rows.push([
            Some(get(source)),
            Some(get(record)),
            Some(get(person)),
            Some(decided.to_string()),
            optional(reviewer),
            optional(note),
        ]);
    }
    if rows.is_empty() {
        return Ok(report);
    }
    let n = rows.len();
    let column_of = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
        ))
    };
    let file_name = file.display().to_string();
    let batch = RecordBatch::try_new(
        decisions_schema(),
        vec![
            column_of(0),
            column_of(1),
            column_of(2),
            column_of(3),
            column_of(4),
            column_of(5),
            Arc::new(StringArray::from(vec![file_name.as_str(); n])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Utc::now().timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
        ],
    )?;
    lake.append(REVIEW_DECISIONS, &decisions_schema(), vec![batch])
        .await?;
    Ok(report)
}
