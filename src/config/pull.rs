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
//!
//! [[source]]
//! name = "education"
//! [source.pull]
//! kind = "http"
//! url = "https://exchange.example.gov.cn/api/dropouts"
//! token_env = "EDU_API_TOKEN"    # sent as Authorization: Bearer …
//! ca_file = "province-ca.pem"    # optional: trust only these authorities for https
//! paging = "cursor"              # or "offset" (the default)
//! items = "data.items"           # where a page's records are (default "items")
//! next_cursor = "data.next"      # cursor paging: where the next page's cursor is
//! ```

use anyhow::{Result, bail};
use serde::Deserialize;

/// The kinds of system a source can be pulled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullKind {
    /// A PostgreSQL database.
    Postgres,
    /// A MySQL or MariaDB database.
    Mysql,
    /// An HTTP interface that pages JSON.
    Http,
}

impl std::fmt::Display for PullKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PullKind::Postgres => "postgres",
            PullKind::Mysql => "mysql",
            PullKind::Http => "http",
        })
    }
}

/// How an HTTP interface pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Paging {
    /// `offset` and `limit` parameters; a short page is the last.
    #[default]
    Offset,
    /// A cursor from each page's body passed to the next; none is the last.
    Cursor,
}

/// How one source is pulled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// What to pull from.
    pub kind: PullKind,
    /// The environment variable holding the connection URL (with its
    /// password): a pipeline file is shared and versioned, secrets are not.
    /// For `postgres`.
    #[serde(default)]
    pub url_env: Option<String>,
    /// The interface's address, for `http` (no secrets in it).
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the bearer token, for `http`.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A PEM file of the certificate authorities to trust for an `https`
    /// interface in place of the system's (a provincial authority);
    /// relative to the pipeline file.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// How the interface pages, for `http`.
    #[serde(default)]
    pub paging: Paging,
    /// Dotted path to a page's array of records (`http`).
    #[serde(default = "default_items")]
    pub items: String,
    /// Dotted path to the next page's cursor (`http`, cursor paging).
    #[serde(default = "default_next_cursor")]
    pub next_cursor: String,
    /// Records asked for per page (`http`).
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Requests per second at most (`http`).
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: f64,
    /// Attempts after the first on 5xx, 429 and timeouts (`http`).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Seconds one request may take (`http`).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
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
fn default_items() -> String {
    "items".into()
}
fn default_next_cursor() -> String {
    "next_cursor".into()
}
fn default_page_size() -> usize {
    1000
}
fn default_requests_per_second() -> f64 {
    5.0
}
/// Attempts per request before an HTTP pull gives up.
pub fn default_retries() -> u32 {
    5
}
/// Seconds an HTTP pull waits for one answer.
pub fn default_timeout_seconds() -> u64 {
    30
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl PullConfig {
    /// Check what serde cannot: what each kind needs, sane names.
    pub fn check(&self, source: &str) -> Result<()> {
        match self.kind {
            PullKind::Postgres | PullKind::Mysql => self.check_database(source),
            PullKind::Http => self.check_http(source),
        }
    }

    fn check_database(&self, source: &str) -> Result<()> {
        match (&self.table, &self.query) {
            (Some(_), Some(_)) => {
                bail!("source {source}: [source.pull] names both a table and a query; give one")
            }
            (None, None) => bail!("source {source}: [source.pull] needs a table or a query"),
            _ => {}
        }
        if self.ca_file.is_some() {
            bail!(
                "source {source}: ca_file is for http pulls; a database URL names its authority \
                 itself (PostgreSQL: sslrootcert=FILE, MySQL: ssl-ca=FILE)"
            );
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
        match &self.url_env {
            Some(name) if is_env_name(name) => {}
            Some(name) => {
                bail!("source {source}: url_env {name:?} must name an environment variable")
            }
            None => bail!(
                "source {source}: a {} pull needs url_env, the environment variable holding the connection URL",
                self.kind
            ),
        }
        if self.batch_rows == 0 {
            bail!("source {source}: batch_rows must be at least 1");
        }
        Ok(())
    }

    fn check_http(&self, source: &str) -> Result<()> {
        let Some(url) = &self.url else {
            bail!("source {source}: an http pull needs url, the interface's address");
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("source {source}: pull url {url:?} must start with http:// or https://");
        }
        if self.table.is_some() || self.query.is_some() || self.watermark.is_some() {
            bail!("source {source}: table, query and watermark are for database pulls, not http");
        }
        if let Some(name) = &self.token_env
            && !is_env_name(name)
        {
            bail!("source {source}: token_env {name:?} must name an environment variable");
        }
        if self.ca_file.is_some() && !url.starts_with("https://") {
            bail!("source {source}: ca_file is for an https:// url; {url:?} is not encrypted");
        }
        if self.page_size == 0 || self.timeout_seconds == 0 {
            bail!("source {source}: page_size and timeout_seconds must be at least 1");
        }
        if self.requests_per_second.is_nan() || self.requests_per_second <= 0.0 {
            bail!("source {source}: requests_per_second must be above 0");
        }
        Ok(())
    }

    /// What is pulled, as recorded with each batch: the table, or the query.
    pub fn origin(&self) -> String {
        match (&self.table, &self.query, &self.url) {
            (Some(t), _, _) => t.clone(),
            (_, Some(q), _) => q.clone(),
            (_, _, Some(u)) => u.clone(),
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
        let no_env = parse("kind='postgres'\ntable='t'");
        assert!(
            no_env
                .check("health")
                .unwrap_err()
                .to_string()
                .contains("url_env")
        );
        let http = parse("kind='http'\nurl='http://127.0.0.1:1/x'\npaging='cursor'");
        http.check("education").unwrap();
        assert_eq!(http.paging, Paging::Cursor);
        let http_table = parse("kind='http'\nurl='http://h/x'\ntable='t'");
        assert!(http_table.check("education").is_err());
        let ftp = parse("kind='http'\nurl='ftp://h/x'");
        assert!(
            ftp.check("education")
                .unwrap_err()
                .to_string()
                .contains("http://")
        );
    }
}
