//! Pull sources: a department's exchange database (前置机) that the data
//! office queries, instead of files that land in a folder.
//!
//! ```toml
//! [[source]]
//! name = "health"
//! [source.pull]
//! kind = "postgres"
//! url_env = "HEALTH_PG_URL"      # the connection URL is read from here, never from the file
//! table = "exchange.settlements" # or: query = "SELECT … FROM …"
//! watermark = "updated_at"       # optional: pull only rows newer than the last batch's
//! batch_rows = 100000            # rows per batch (a batch may run over to finish a watermark value)
//! ```

use anyhow::{Result, bail};
use serde::Deserialize;

/// The kinds of system a source can be pulled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullKind {
    /// A PostgreSQL database.
    Postgres,
}

impl std::fmt::Display for PullKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PullKind::Postgres => "postgres",
        })
    }
}

/// How one source is pulled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// What to pull from.
    pub kind: PullKind,
    /// The environment variable holding the connection URL (with its
    /// password): a pipeline file is shared and versioned, secrets are not.
    pub url_env: String,
    /// A table or view, optionally schema-qualified (`exchange.settlements`).
    #[serde(default)]
    pub table: Option<String>,
    /// Or a query whose result is the extract.
    #[serde(default)]
    pub query: Option<String>,
    /// A column that grows with every new or changed row (a timestamp, a
    /// sequence): each batch takes rows above the last committed batch's
    /// value. Without it, every run pulls everything, and an unchanged
    /// result is a reported no-op.
    #[serde(default)]
    pub watermark: Option<String>,
    /// Rows per batch.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
}

fn default_batch_rows() -> usize {
    100_000
}

impl PullConfig {
    /// Check what serde cannot: one of table and query, sane names.
    pub fn check(&self, source: &str) -> Result<()> {
        match (&self.table, &self.query) {
            (Some(_), Some(_)) => {
                bail!("source {source}: [source.pull] names both a table and a query; give one")
            }
            (None, None) => bail!("source {source}: [source.pull] needs a table or a query"),
            _ => {}
        }
        if let Some(table) = &self.table
            && !table.split('.').all(is_identifier)
        {
            bail!(
                "source {source}: pull table {table:?} is not a table name (letters, digits and _, optionally schema.table)"
            );
        }
        if let Some(column) = &self.watermark
            && !is_identifier(column)
        {
            bail!("source {source}: watermark {column:?} is not a column name");
        }
        if self.url_env.is_empty()
            || !self
                .url_env
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            bail!(
                "source {source}: url_env {:?} must name an environment variable",
                self.url_env
            );
        }
        if self.batch_rows == 0 {
            bail!("source {source}: batch_rows must be at least 1");
        }
        Ok(())
    }

    /// What is pulled, as recorded with each batch: the table, or the query.
    pub fn origin(&self) -> String {
        match (&self.table, &self.query) {
            (Some(t), _) => t.clone(),
            (_, Some(q)) => q.clone(),
            _ => String::new(),
        }
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> PullConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_pull_needs_one_origin_and_plain_names() {
        let ok = parse(
            "kind='postgres'\nurl_env='PG_URL'\ntable='exchange.settlements'\nwatermark='updated_at'",
        );
        ok.check("health").unwrap();
        assert_eq!(ok.batch_rows, 100_000);
        let both = parse("kind='postgres'\nurl_env='U'\ntable='t'\nquery='SELECT 1'");
        assert!(
            both.check("health")
                .unwrap_err()
                .to_string()
                .contains("both")
        );
        let neither = parse("kind='postgres'\nurl_env='U'");
        assert!(
            neither
                .check("health")
                .unwrap_err()
                .to_string()
                .contains("table or a query")
        );
        let injected = parse("kind='postgres'\nurl_env='U'\ntable='t; DROP TABLE x'");
        assert!(
            injected
                .check("health")
                .unwrap_err()
                .to_string()
                .contains("not a table name")
        );
        let bad_mark = parse("kind='postgres'\nurl_env='U'\ntable='t'\nwatermark='a b'");
        assert!(bad_mark.check("health").is_err());
        assert!(toml::from_str::<PullConfig>("kind='oracle'\nurl_env='U'\ntable='t'").is_err());
    }
}
