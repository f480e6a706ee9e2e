//! Rule files: `pipelines/rules/*.sql`, a header of `-- key: value` lines
//! and one query that returns clues (signals): records worth a look. In
//! assessment mode a clue is evidence beside the household's assessment; in
//! every-rule mode every clue is a task.

use std::path::Path;

use anyhow::{Context, Result, bail};
use datafusion::prelude::SessionContext;

use crate::config::SourceName;
use crate::lake::query::sql_text;

/// The national list of risk types (致贫返贫风险类型).
pub const RISK_TYPES: &[&str] = &[
    "因病",
    "因残",
    "因学",
    "因灾",
    "因意外事故",
    "因产业项目失败",
    "因务工就业不稳",
    "缺劳动力",
    "住房安全",
    "饮水安全",
    "其他",
];

/// A file of `-- key: value` header lines followed by one query: the form
/// of rule files and assessment components.
pub(crate) struct SqlFile {
    fields: std::collections::BTreeMap<String, String>,
    /// The query, without its trailing semicolon.
    pub sql: String,
    /// The file, for messages.
    pub file: String,
}

impl SqlFile {
    /// Split `text` into its header and its query.
    pub fn parse(text: &str, file: &str) -> Result<SqlFile> {
        let mut fields = std::collections::BTreeMap::new();
        let mut body = Vec::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if body.is_empty() {
                if let Some(rest) = trimmed.strip_prefix("--") {
                    if let Some((k, v)) = rest.split_once(':') {
                        fields.insert(k.trim().to_string(), v.trim().to_string());
                    }
                    continue;
                }
                if trimmed.is_empty() {
                    continue;
                }
            }
            body.push(line);
        }
        let sql = body.join("\n").trim().trim_end_matches(';').to_string();
        if sql.is_empty() {
            bail!("{file}: no query after the header");
        }
        Ok(SqlFile {
            fields,
            sql,
            file: file.to_string(),
        })
    }

    /// A header value that must be there.
    pub fn get(&self, key: &str) -> Result<String> {
        self.fields
            .get(key)
            .cloned()
            .filter(|v| !v.is_empty())
            .with_context(|| format!("{}: the header has no '-- {key}:' line", self.file))
    }

    /// The header's source, checked as a source name.
    pub fn source(&self) -> Result<SourceName> {
        let source = self.get("source")?;
        SourceName::new(&source).with_context(|| format!("{}: the '-- source:' line", self.file))
    }

    /// The header's risk type, checked against the national list.
    pub fn risk_type(&self) -> Result<String> {
        let risk = self.get("risk_type")?;
        if !RISK_TYPES.contains(&risk.as_str()) {
            bail!(
                "{}: risk_type '{risk}' is not on the national list ({})",
                self.file,
                RISK_TYPES.join(" ")
            );
        }
        Ok(risk)
    }
}

/// `query` with the run's dates filled in: `{as_of}` and `{year_start}`
/// become DATE literals.
pub fn with_dates(query: &str, as_of: chrono::NaiveDate) -> String {
    let year_start =
        chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&as_of), 1, 1).unwrap_or(as_of);
    query
        .replace("{as_of}", &format!("DATE '{as_of}'"))
        .replace("{year_start}", &format!("DATE '{year_start}'"))
}

/// One warning rule: a query over linked records that returns the records
/// that are clues.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rule {
    /// Unique id, from the header.
    pub id: String,
    /// What it finds, for people.
    pub title: String,
    /// The national risk type of its clues.
    pub risk_type: String,
    /// The department whose data it reads.
    pub department: String,
    /// high, medium or low, unless the query says per row.
    pub severity: String,
    /// The source whose linked records it reads (`linked_<source>`).
    pub source: SourceName,
    /// The published practice it follows.
    pub basis: String,
    /// Population groups it covers.
    pub groups: Vec<String>,
    /// The query.
    pub sql: String,
    /// The file.
    pub file: String,
}

impl Rule {
    /// Parse a rule file.
    pub fn parse(text: &str, file: &str) -> Result<Rule> {
        let f = SqlFile::parse(text, file)?;
        let rule = Rule {
            id: f.get("id")?,
            title: f.get("title")?,
            risk_type: f.risk_type()?,
            department: f.get("department")?,
            severity: f.get("severity")?,
            source: f.source()?,
            basis: f.get("basis")?,
            groups: f
                .get("groups")?
                .split(',')
                .map(|g| g.trim().to_string())
                .collect(),
            sql: f.sql,
            file: file.to_string(),
        };
        if super::status::Severity::parse(&rule.severity).is_none() {
            bail!(
                "{file}: severity '{}' must be high, medium or low",
                rule.severity
            );
        }
        Ok(rule)
    }

    /// The query with the run's dates filled in.
    pub fn query(&self, as_of: chrono::NaiveDate) -> String {
        with_dates(&self.sql, as_of)
    }
}

/// The clues of every rule whose source is linked, as one query with
/// these columns: rule, source, household_id, person_id, record_key,
/// event_date (DATE), amount (DOUBLE), detail, severity, risk_type. A rule
/// whose query does not plan is an error naming its file.
pub async fn signals_sql(
    ctx: &SessionContext,
    rules: &[&Rule],
    as_of: chrono::NaiveDate,
) -> Result<Option<String>> {
    let mut parts = Vec::new();
    for rule in rules {
        let query = rule.query(as_of);
        let planned = ctx
            .sql(&query)
            .await
            .with_context(|| format!("rule {} ({})", rule.id, rule.file))?;
        let columns: Vec<String> = planned
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for need in [
            "household_id",
            "person_id",
            "record_key",
            "event_date",
            "amount",
            "detail",
        ] {
            if !columns.iter().any(|c| c == need) {
                bail!(
                    "rule {} ({}) returns no '{need}' column",
                    rule.id,
                    rule.file
                );
            }
        }
        let or_default = |column: &str, default: &str| {
            if columns.iter().any(|c| c == column) {
                format!("coalesce(CAST({column} AS VARCHAR), {})", sql_text(default))
            } else {
                sql_text(default)
            }
        };
        parts.push(format!(
            "SELECT {id} AS rule, {source} AS source, CAST(household_id AS VARCHAR) AS household_id, \
             CAST(person_id AS VARCHAR) AS person_id, CAST(record_key AS VARCHAR) AS record_key, \
             CAST(event_date AS DATE) AS event_date, CAST(amount AS DOUBLE) AS amount, \
             coalesce(CAST(detail AS VARCHAR), '') AS detail, {severity} AS severity, {risk} AS risk_type \
             FROM ({query}) WHERE household_id IS NOT NULL",
            id = sql_text(&rule.id),
            source = sql_text(&rule.source),
            severity = or_default("severity", &rule.severity),
            risk = or_default("risk_type", &rule.risk_type),
        ));
    }
    Ok((!parts.is_empty()).then(|| parts.join("\nUNION ALL\n")))
}

/// The `*.sql` files of a directory, sorted by name: (path, text).
pub(crate) fn sql_files(dir: &Path, what: &str) -> Result<Vec<(String, String)>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the {what} directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        out.push((path.display().to_string(), text));
    }
    if out.is_empty() {
        bail!("no {what} (*.sql) in {}", dir.display());
    }
    Ok(out)
}

/// Every rule in a directory, sorted by file name; ids must be unique.
pub fn load_dir(dir: &Path) -> Result<Vec<Rule>> {
    let mut rules: Vec<Rule> = Vec::new();
    for (file, text) in sql_files(dir, "rule files")? {
        let rule = Rule::parse(&text, &file)?;
        if rules.iter().any(|r| r.id == rule.id) {
            bail!("{file}: rule id '{}' is used twice", rule.id);
        }
        rules.push(rule);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_parse() {
        let rules =
            load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/rules")).unwrap();
        assert!(rules.len() >= 9);
        let q = rules[0].query(chrono::NaiveDate::from_ymd_opt(2026, 8, 14).unwrap());
        assert!(!q.contains('{'), "{q}");
    }

    #[test]
    fn bad_headers_are_explained() {
        let err = Rule::parse("-- id: x\nSELECT 1", "r.sql")
            .unwrap_err()
            .to_string();
        assert!(err.contains("r.sql") && err.contains("title"), "{err}");
        let text = "-- id: x\n-- title: t\n-- risk_type: 因穷\n-- department: d\n-- severity: high\n-- source: s\n-- basis: b\n-- groups: all\nSELECT 1";
        assert!(
            Rule::parse(text, "r.sql")
                .unwrap_err()
                .to_string()
                .contains("national list")
        );
    }
}
