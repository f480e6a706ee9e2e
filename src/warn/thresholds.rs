//! Thresholds as data: `pipelines/thresholds.csv` (region prefix, year,
//! effective date, population group, parameter, value, unit, source) and
//! `pipelines/population_groups.csv` (roster category → group) are loaded
//! as tables, and `household_thresholds` resolves, for every household and
//! parameter, the row that applies: the longest matching region prefix,
//! then the household's own group over `all`, then the latest effective
//! date on or before the run's date.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

pub use crate::lake::tables::PLACE_THRESHOLDS;
use crate::lake::tables::ROSTER_HOUSEHOLD;
use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Every parameter the rules and the assessment read, with the values it
/// may take (inclusive) and whether it counts something whole. A row with
/// any other parameter, or a value out of bounds, is refused when the
/// file is loaded, naming the file, the line and the parameter.
pub const PARAMETERS: &[(&str, f64, f64, bool)] = &[
    ("monitoring_income_line", 0.0, 1.0e6, false),
    ("medical_selfpay_ytd", 0.0, 1.0e7, false),
    ("medical_income_share", 0.0, 100.0, false),
    ("rural_disposable_income_prev_year", 0.0, 1.0e6, false),
    ("working_age_min", 0.0, 120.0, true),
    ("working_age_max", 0.0, 120.0, true),
    ("compulsory_age_min", 0.0, 30.0, true),
    ("compulsory_age_max", 0.0, 30.0, true),
    ("assessment_margin_share", 0.0, 1.0, false),
    ("village_monthly_capacity", 0.0, 10_000.0, true),
    ("local_monthly_wage", 0.0, 1.0e6, false),
    ("contribution_base_wage_share", 0.1, 3.0, false),
    ("job_loss_months_max", 0.0, 12.0, true),
    ("disability_income_loss_share", 0.0, 1.0, false),
];

/// Refuse a parameter row that names an unknown parameter or a value it
/// cannot take.
fn check_parameter(name: &str, value: f64) -> std::result::Result<(), String> {
    let Some((_, min, max, whole)) = PARAMETERS.iter().find(|p| p.0 == name) else {
        return Err(format!(
            "parameter '{name}' is not one the rules or the assessment read ({})",
            PARAMETERS
                .iter()
                .map(|p| p.0)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if !value.is_finite() || value < *min || value > *max {
        return Err(format!(
            "parameter '{name}' must be between {min} and {max}, not {value}"
        ));
    }
    if *whole && value.fract() != 0.0 {
        return Err(format!(
            "parameter '{name}' must be a whole number, not {value}"
        ));
    }
    Ok(())
}

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
        let name = r[4].trim().to_string();
        let v = r[5].trim().parse::<f64>().with_context(|| {
            at(&format!(
                "parameter '{name}': value '{}' is not a number",
                r[5].trim()
            ))
        })?;
        check_parameter(&name, v).map_err(|e| anyhow::anyhow!(at(&e)))?;
        parameter.push(name);
        value.push(v);
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

    // An optional third column says which categories are monitoring
    // objects (监测对象): yes/no, 是/否.
    let rows_g = read_rows(groups, &["category", "population_group"])?;
    let mut monitoring = Vec::new();
    for (line, r) in &rows_g {
        let v = r.get(2).unwrap_or("").trim();
        monitoring.push(match v {
            "" | "no" | "否" | "false" => false,
            "yes" | "是" | "true" => true,
            other => bail!(
                "{}: line {line}: monitoring_object '{other}' must be yes or no",
                groups.display()
            ),
        });
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("category", DataType::Utf8, false),
        Field::new("population_group", DataType::Utf8, false),
        Field::new("monitoring_object", DataType::Boolean, false),
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
            Arc::new(datafusion::arrow::array::BooleanArray::from(monitoring)),
        ],
    )?;
    ctx.register_table(
        "population_groups",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(rows.len())
}

/// The parameters a rule or component query reads, in order of first
/// mention: every `parameter = '<name>'` in its text. A query joins to
/// `household_thresholds` by them, so one with no row would drop every
/// record without a word; [`require`] refuses that instead.
pub fn parameters_named(sql: &str) -> Vec<String> {
    static NAMED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"parameter\s*=\s*'([a-z0-9_]+)'").expect("a valid pattern")
    });
    let mut out: Vec<String> = Vec::new();
    for c in NAMED.captures_iter(sql) {
        let name = c[1].to_string();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Refuse to go on when any of `needed` — (parameter, the rule or
/// component file that reads it) — has no row at all in the thresholds
/// file, naming the file, the parameter and its reader. One read of the
/// parameters set, however many are needed.
pub async fn require(ctx: &SessionContext, file: &Path, needed: &[(&str, &str)]) -> Result<()> {
    let set: HashSet<String> =
        crate::lake::query::first_column(ctx, "SELECT DISTINCT parameter FROM thresholds")
            .await?
            .into_iter()
            .flatten()
            .collect();
    if let Some((parameter, needed_by)) = needed.iter().find(|(p, _)| !set.contains(*p)) {
        return Err(crate::error::Error::settings(
            file.display(),
            *parameter,
            format!("no row sets this parameter, and {needed_by} reads it"),
        )
        .into());
    }
    Ok(())
}

/// The views rules join to, as statements (for other engines).
pub fn household_thresholds_sql(as_of: NaiveDate) -> String {
    format!(
        "CREATE VIEW {PLACE_THRESHOLDS} AS {};\nCREATE VIEW household_thresholds AS {}",
        place_thresholds_query(as_of),
        household_thresholds_query()
    )
}

/// For every village and population group that has households, and every
/// parameter, the threshold row that applies. Resolved per place rather
/// than per household: a province has millions of households but some
/// ten thousand villages, and ranking 30 million household rows was a
/// sort that outgrew the memory pool.
pub fn place_thresholds_query(as_of: NaiveDate) -> String {
    format!(
        "SELECT village_code, population_group, parameter, value, source FROM (
           SELECT k.village_code, k.population_group, t.parameter, t.value, t.source,
             row_number() OVER (PARTITION BY k.village_code, k.population_group, t.parameter
               ORDER BY length(t.region_prefix) DESC,
                        CASE WHEN t.population_group = 'all' THEN 1 ELSE 0 END,
                        t.effective_from DESC) AS n
           FROM (SELECT DISTINCT coalesce(h.village_code, '') AS village_code,
                   coalesce(g.population_group, 'other') AS population_group
                 FROM {ROSTER_HOUSEHOLD} h
                 LEFT JOIN population_groups g ON g.category = h.category) k
           JOIN thresholds t
             ON starts_with(k.village_code, t.region_prefix)
            AND t.effective_from <= DATE '{as_of}'
            AND (t.population_group = 'all' OR t.population_group = k.population_group)
         ) WHERE n = 1"
    )
}

/// For every household and parameter, the threshold that applies: its
/// place's (see `place_thresholds_query`).
pub fn household_thresholds_query() -> String {
    format!(
        "SELECT h.household_id, p.parameter, p.value, p.source
         FROM {ROSTER_HOUSEHOLD} h
         LEFT JOIN population_groups g ON g.category = h.category
         JOIN {PLACE_THRESHOLDS} p
           ON p.village_code = coalesce(h.village_code, '')
          AND p.population_group = coalesce(g.population_group, 'other')"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::query::strings_of;

    /// Rows that cannot be right are refused when the file is loaded, and
    /// the message names the file, the line and the parameter.
    #[tokio::test]
    async fn bad_parameter_rows_are_refused_by_file_line_and_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let groups = dir.path().join("groups.csv");
        std::fs::write(&groups, "category,population_group\n脱贫户,monitored\n").unwrap();
        let header =
            "region_prefix,year,effective_from,population_group,parameter,value,unit,source\n";
        for (row, words) in [
            (
                ",2026,2026-01-01,all,village_monthly_capacity,-1,户,x",
                vec!["line 2", "village_monthly_capacity", "between"],
            ),
            (
                ",2026,2026-01-01,all,village_monthly_capacity,2.5,户,x",
                vec!["line 2", "village_monthly_capacity", "whole"],
            ),
            (
                ",2026,2026-01-01,all,monitoring_line_typo,8800,元,x",
                vec!["line 2", "monitoring_line_typo", "not one"],
            ),
            (
                ",2026,2026-01-01,all,assessment_margin_share,1.5,share,x",
                vec!["line 2", "assessment_margin_share"],
            ),
            (
                ",2026,2026-01-01,all,local_monthly_wage,三千,元,x",
                vec!["line 2", "local_monthly_wage", "not a number"],
            ),
        ] {
            let file = dir.path().join("thresholds.csv");
            std::fs::write(&file, format!("{header}{row}\n")).unwrap();
            let err = register(&SessionContext::new(), &file, &groups)
                .expect_err(row)
                .to_string();
            assert!(err.contains("thresholds.csv"), "{row}: {err}");
            for w in words {
                assert!(err.contains(w), "{row}: '{w}' not in: {err}");
            }
        }
        // A file without the monitoring line: refused for the assessment.
        let file = dir.path().join("thresholds.csv");
        std::fs::write(
            &file,
            format!("{header},2026,2026-01-01,all,working_age_min,16,岁,x\n"),
        )
        .unwrap();
        let ctx = SessionContext::new();
        register(&ctx, &file, &groups).unwrap();
        let err = require(&ctx, &file, &[("monitoring_income_line", "the assessment")])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("thresholds.csv") && err.contains("monitoring_income_line"),
            "{err}"
        );
    }

    /// The parameters a query reads are found in its text, once each, in
    /// order; every one the shipped rules and components read is known
    /// and has a row in the shipped file.
    #[test]
    fn queries_name_the_parameters_they_read() {
        let sql = "JOIN household_thresholds a ON a.parameter = 'working_age_min'
                   JOIN household_thresholds b ON b.parameter='job_loss_months_max'
                   JOIN household_thresholds c ON c.parameter =  'working_age_min'";
        assert_eq!(
            parameters_named(sql),
            vec!["working_age_min", "job_loss_months_max"]
        );
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let shipped = std::fs::read_to_string(repo.join("pipelines/thresholds.csv")).unwrap();
        let mut queries: Vec<(String, String)> =
            crate::warn::rules::load_dir(&repo.join("pipelines/rules"))
                .unwrap()
                .into_iter()
                .map(|r| (r.file, r.sql))
                .collect();
        queries.extend(
            crate::warn::assessment::load_dir(&repo.join("pipelines/assessment"))
                .unwrap()
                .into_iter()
                .map(|c| (c.file, c.sql)),
        );
        let mut seen = 0;
        for (file, sql) in &queries {
            for p in parameters_named(sql) {
                seen += 1;
                assert!(PARAMETERS.iter().any(|k| k.0 == p), "{file}: {p} unknown");
                assert!(
                    shipped.contains(&format!(",{p},")),
                    "{file}: {p} has no row"
                );
            }
        }
        assert!(
            seen >= 10,
            "only {seen} parameters found in the shipped queries"
        );
    }

    /// The most specific row wins: longest region prefix, then the
    /// household's own group over `all`, then the latest date not after
    /// the run; households take their place's values.
    #[tokio::test]
    async fn the_most_specific_threshold_applies() {
        let dir = tempfile::tempdir().unwrap();
        let thresholds = dir.path().join("thresholds.csv");
        std::fs::write(
            &thresholds,
            "region_prefix,year,effective_from,population_group,parameter,value,unit,source\n\
             ,2026,2026-01-01,all,monitoring_income_line,100,元,national\n\
             52,2026,2026-01-01,all,monitoring_income_line,200,元,province\n\
             52,2026,2026-01-01,monitored,monitoring_income_line,250,元,province monitored\n\
             52,2026,2026-06-01,monitored,monitoring_income_line,260,元,province monitored later\n\
             52,2026,2027-01-01,monitored,monitoring_income_line,999,元,not yet in force\n\
             522322,2026,2026-01-01,all,monitoring_income_line,300,元,county\n",
        )
        .unwrap();
        let groups = dir.path().join("groups.csv");
        std::fs::write(&groups, "category,population_group\n脱贫户,monitored\n").unwrap();
        let ctx = SessionContext::new();
        register(&ctx, &thresholds, &groups).unwrap();
        ctx.sql(
            "CREATE TABLE roster_household AS \
             SELECT column1 AS household_id, column2 AS village_code, column3 AS category FROM (VALUES \
             ('H1', '520100000001', '脱贫户'), ('H2', '520100000001', '一般户'), \
             ('H3', '522322000001', '脱贫户'), ('H4', '110100000001', '脱贫户'), ('H5', NULL, NULL))",
        )
        .await
        .unwrap();
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let place = ctx
            .sql(&place_thresholds_query(as_of))
            .await
            .unwrap()
            .cache()
            .await
            .unwrap();
        ctx.register_table(PLACE_THRESHOLDS, place.into_view())
            .unwrap();
        let query = format!(
            "SELECT household_id, source FROM ({}) ORDER BY household_id",
            household_thresholds_query()
        );
        let batches = ctx.sql(&query).await.unwrap().collect().await.unwrap();
        let mut got = Vec::new();
        for b in &batches {
            let h = strings_of(b.column(0)).unwrap();
            let s = strings_of(b.column(1)).unwrap();
            for (h, s) in h.into_iter().zip(s) {
                got.push(format!("{}={}", h.unwrap(), s.unwrap()));
            }
        }
        assert_eq!(
            got,
            [
                "H1=province monitored later",
                "H2=province",
                "H3=county",
                "H4=national",
                "H5=national"
            ]
        );
    }
}
