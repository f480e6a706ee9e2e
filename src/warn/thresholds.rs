//! Thresholds as data: `pipelines/thresholds.csv` (region prefix, year,
//! effective date, population group, parameter, value, unit, source) and
//! `pipelines/population_groups.csv` (roster category → group) are loaded
//! as tables, and `household_thresholds` resolves, for every household and
//! parameter, the row that applies: the longest matching region prefix,
//! then the household's own group over `all`, then the latest effective
//! date on or before the run's date.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn read_rows(path: &Path, expected: &[&str]) -> Result<Vec<(usize, csv::StringRecord)>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers: Vec<String> = reader
        .headers()?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    if headers
        .iter()
        .map(String::as_str)
        .take(expected.len())
        .collect::<Vec<_>>()
        != expected
    {
        bail!(
            "{}: the columns must be {} (found {})",
            path.display(),
            expected.join(","),
            headers.join(",")
        );
    }
    reader
        .records()
        .enumerate()
        .map(|(i, r)| {
            r.map(|r| (i + 2, r))
                .with_context(|| format!("{}: line {}", path.display(), i + 2))
        })
        .collect()
}

/// Register `thresholds` and `population_groups` in the session.
pub fn register(ctx: &SessionContext, thresholds: &Path, groups: &Path) -> Result<usize> {
    let rows = read_rows(
        thresholds,
        &[
            "region_prefix",
            "year",
            "effective_from",
            "population_group",
            "parameter",
            "value",
            "unit",
            "source",
        ],
    )?;
    let mut prefix = Vec::new();
    let mut year = Vec::new();
    let mut effective = Vec::new();
    let mut group = Vec::new();
    let mut parameter = Vec::new();
    let mut value = Vec::new();
    let mut unit = Vec::new();
    let mut source = Vec::new();
    for (line, r) in &rows {
        let at = |what: &str| format!("{}: line {line}: {what}", thresholds.display());
        let p = r[0].trim();
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            bail!(at(&format!(
                "region_prefix '{p}' must be digits (or empty for everywhere)"
            )));
        }
        prefix.push(p.to_string());
        year.push(
            r[1].trim()
                .parse::<i64>()
                .with_context(|| at("year is not a number"))?,
        );
        let date = NaiveDate::parse_from_str(r[2].trim(), "%Y-%m-%d")
            .with_context(|| at("effective_from is not YYYY-MM-DD"))?;
        effective.push(chrono::Datelike::num_days_from_ce(&date) - EPOCH_DAYS_FROM_CE);
        group.push(r[3].trim().to_string());
        parameter.push(r[4].trim().to_string());
        value.push(
            r[5].trim()
                .parse::<f64>()
                .with_context(|| at("value is not a number"))?,
        );
        unit.push(r.get(6).unwrap_or("").to_string());
        source.push(r.get(7).unwrap_or("").to_string());
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("region_prefix", DataType::Utf8, false),
        Field::new("year", DataType::Int64, false),
        Field::new("effective_from", DataType::Date32, false),
        Field::new("population_group", DataType::Utf8, false),
        Field::new("parameter", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("unit", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(prefix)),
        Arc::new(Int64Array::from(year)),
        Arc::new(Date32Array::from(effective)),
        Arc::new(StringArray::from(group)),
        Arc::new(StringArray::from(parameter)),
        Arc::new(Float64Array::from(value)),
        Arc::new(StringArray::from(unit)),
        Arc::new(StringArray::from(source)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    ctx.register_table(
        "thresholds",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;

    let rows_g = read_rows(groups, &["category", "population_group"])?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("category", DataType::Utf8, false),
        Field::new("population_group", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows_g.iter().map(|(_, r)| r[0].trim().to_string()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows_g.iter().map(|(_, r)| r[1].trim().to_string()),
            )),
        ],
    )?;
    ctx.register_table(
        "population_groups",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(rows.len())
}

/// The view rules join to, as a statement (for other engines).
pub fn household_thresholds_sql(as_of: NaiveDate) -> String {
    format!(
        "CREATE VIEW household_thresholds AS {}",
        household_thresholds_query(as_of)
    )
}

/// For every household and parameter, the threshold row that applies.
pub fn household_thresholds_query(as_of: NaiveDate) -> String {
    format!(
        "SELECT household_id, parameter, value, source FROM (
           SELECT h.household_id, t.parameter, t.value, t.source,
             row_number() OVER (PARTITION BY h.household_id, t.parameter
               ORDER BY length(t.region_prefix) DESC,
                        CASE WHEN t.population_group = 'all' THEN 1 ELSE 0 END,
                        t.effective_from DESC) AS n
           FROM roster_household h
           LEFT JOIN population_groups g ON g.category = h.category
           JOIN thresholds t
             ON starts_with(coalesce(h.village_code, ''), t.region_prefix)
            AND t.effective_from <= DATE '{as_of}'
            AND (t.population_group = 'all' OR t.population_group = coalesce(g.population_group, 'other'))
         ) WHERE n = 1"
    )
}
