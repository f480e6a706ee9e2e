//! Rule files: `pipelines/rules/*.sql`, a header of `-- key: value` lines
//! and one query.

use std::path::Path;

use anyhow::{Context, Result, bail};

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

#[derive(Debug, Clone, serde::Serialize)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub risk_type: String,
    pub department: String,
    pub severity: String,
    pub source: String,
    pub basis: String,
    pub groups: Vec<String>,
    pub sql: String,
    pub file: String,
}

impl Rule {
    pub fn parse(text: &str, file: &str) -> Result<Rule> {
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
        let get = |k: &str| -> Result<String> {
            fields
                .get(k)
                .cloned()
                .filter(|v| !v.is_empty())
                .with_context(|| format!("{file}: the header has no '-- {k}:' line"))
        };
        let rule = Rule {
            id: get("id")?,
            title: get("title")?,
            risk_type: get("risk_type")?,
            department: get("department")?,
            severity: get("severity")?,
            source: get("source")?,
            basis: get("basis")?,
            groups: get("groups")?
                .split(',')
                .map(|g| g.trim().to_string())
                .collect(),
            sql: body.join("\n").trim().trim_end_matches(';').to_string(),
            file: file.to_string(),
        };
        if !RISK_TYPES.contains(&rule.risk_type.as_str()) {
            bail!(
                "{file}: risk_type '{}' is not on the national list ({})",
                rule.risk_type,
                RISK_TYPES.join(" ")
            );
        }
        if !["high", "medium", "low"].contains(&rule.severity.as_str()) {
            bail!(
                "{file}: severity '{}' must be high, medium or low",
                rule.severity
            );
        }
        if rule.sql.is_empty() {
            bail!("{file}: no query after the header");
        }
        Ok(rule)
    }

    /// The query with the run's dates filled in.
    pub fn query(&self, as_of: chrono::NaiveDate) -> String {
        let year_start =
            chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&as_of), 1, 1).unwrap_or(as_of);
        self.sql
            .replace("{as_of}", &format!("DATE '{as_of}'"))
            .replace("{year_start}", &format!("DATE '{year_start}'"))
    }
}

/// Every rule in a directory, sorted by file name; ids must be unique.
pub fn load_dir(dir: &Path) -> Result<Vec<Rule>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read rules directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    let mut rules = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let rule = Rule::parse(&text, &path.display().to_string())?;
        if rules.iter().any(|r: &Rule| r.id == rule.id) {
            bail!("{}: rule id '{}' is used twice", path.display(), rule.id);
        }
        rules.push(rule);
    }
    if rules.is_empty() {
        bail!("no rule files (*.sql) in {}", dir.display());
    }
    Ok(rules)
}

/// Severity as a number for ordering and scores.
pub fn severity_rank(severity: &str) -> u8 {
    match severity {
        "high" => 3,
        "medium" => 2,
        _ => 1,
    }
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
