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

/// The schema of `review_decisions`.
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
    sources: &[crate::config::SourceName],
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
        let Some(sql) = band_sql(&ctx, &recorded, schemas_dir, settings_file, source).await? else {
            continue;
        };
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

/// SQL of `source`'s review band in `ctx`: one row per record in the band,
/// beside its best candidate, with the columns of [`EXPORT_COLUMNS`] up to
/// `roster_region`, by record key. None when the source was never linked.
/// In a caller's session (`access`) the names and numbers come masked, as
/// the views show them.
pub async fn band_sql(
    ctx: &datafusion::prelude::SessionContext,
    recorded: &std::collections::BTreeMap<String, crate::config::SourceSchema>,
    schemas_dir: &Path,
    settings_file: &SettingsFile,
    source: &crate::config::SourceName,
) -> Result<Option<String>> {
    let table = link_table(source);
    if !ctx.table_exist(table.as_str())? {
        return Ok(None);
    }
    let settings = settings_file.for_source(source)?;
    let schema = crate::lake::schemas::pick(recorded, schemas_dir, source)?;
    let left = prepare::source_view_sql(ctx, &schema, false).await?;
    let right = if settings.registry == ROSTER_SOURCE {
        prepare::roster_view_sql()
    } else {
        let registry = crate::lake::schemas::pick(recorded, schemas_dir, &settings.registry)?;
        prepare::source_view_sql(ctx, &registry, true).await?
    };
    let key = schema.key.replace('"', "\"\"");
    let quoted = crate::lake::query::sql_text(source);
    Ok(Some(format!(
        "SELECT {quoted} AS source, l.record_key, k.person_id, k.household_id,
                CAST(round(k.match_weight, 2) AS VARCHAR) AS match_weight,
                CAST(round(k.match_probability, 4) AS VARCHAR) AS match_probability,
                l.name AS record_name, r.name AS roster_name,
                l.id_number AS record_id_number, r.id_number AS roster_id_number,
                CAST(l.birth_date AS VARCHAR) AS record_birth_date, CAST(r.birth_date AS VARCHAR) AS roster_birth_date,
                l.gender AS record_gender, r.gender AS roster_gender,
                l.region_code AS record_region, r.region_code AS roster_region
         FROM {table} k
         JOIN ({left}) l ON CAST(k.\"{key}\" AS VARCHAR) = l.record_key
         LEFT JOIN ({right}) r ON k.person_id = r.person_id
         WHERE k.status = 'review'
         ORDER BY l.record_key"
    )))
}

/// What an import stored.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    /// Pairs decided as matches.
    pub matches: usize,
    /// Pairs decided as non-matches.
    pub non_matches: usize,
    /// Rows left undecided (skipped).
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
    let decisions: Vec<Decision> = rows
        .into_iter()
        .map(
            |[source, record, person, decision, reviewer, note]| Decision {
                source: source.unwrap_or_default(),
                record_key: record.unwrap_or_default(),
                person_id: person.unwrap_or_default(),
                decision: decision.unwrap_or_default(),
                reviewer,
                note,
            },
        )
        .collect();
    self::record(lake, &decisions, &file.display().to_string()).await?;
    Ok(report)
}

/// A clerk's decision on one record and candidate.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The record's source.
    pub source: String,
    /// The record's key.
    pub record_key: String,
    /// The roster person it was shown with.
    pub person_id: String,
    /// `match`, `no_match`, or `undone` (a decision taken back: the pair
    /// is decided by the model again).
    pub decision: String,
    /// Who decided.
    pub reviewer: Option<String>,
    /// Why, if they said.
    pub note: Option<String>,
}

/// The decisions a clerk may record.
pub const DECISIONS: &[&str] = &["match", "no_match", "undone"];

/// Append decisions to `review_decisions`, all from `file` (the imported
/// file, or `console`). The latest decision on a pair is the one a link
/// run follows.
pub async fn record(lake: &Lake, decisions: &[Decision], file: &str) -> Result<()> {
    if decisions.is_empty() {
        return Ok(());
    }
    if let Some(d) = decisions
        .iter()
        .find(|d| !DECISIONS.contains(&d.decision.as_str()))
    {
        bail!(
            "decision '{}' is not one of {}",
            d.decision,
            DECISIONS.join(", ")
        );
    }
    let n = decisions.len();
    let text = |f: &dyn Fn(&Decision) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            decisions.iter().map(f).collect::<Vec<_>>(),
        ))
    };
    let batch = RecordBatch::try_new(
        decisions_schema(),
        vec![
            text(&|d| Some(d.source.clone())),
            text(&|d| Some(d.record_key.clone())),
            text(&|d| Some(d.person_id.clone())),
            text(&|d| Some(d.decision.clone())),
            text(&|d| d.reviewer.clone()),
            text(&|d| d.note.clone()),
            Arc::new(StringArray::from(vec![file; n])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Utc::now().timestamp_micros(); n])
                    .with_timezone("UTC"),
            ),
        ],
    )?;
    lake.append(REVIEW_DECISIONS, &decisions_schema(), vec![batch])
        .await?;
    Ok(())
}
