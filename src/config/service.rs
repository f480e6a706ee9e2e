//! The `[api]` and `[sql]` sections of a pipeline file: the HTTP API and
//! the PostgreSQL endpoint of `safetynet serve`.

use serde::Deserialize;

/// The HTTP API of `safetynet serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; `serve --listen` overrides it.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Requests served at once; above it a caller gets 503 with
    /// Retry-After.
    #[serde(default = "default_api_requests")]
    pub max_requests: usize,
}

fn default_api_requests() -> usize {
    64
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_listen(),
            max_requests: default_api_requests(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

/// The `[sql]` section of a pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// Address to listen on, e.g. "127.0.0.1:5432"; `serve --sql-listen` overrides.
    pub listen: String,
    /// Users file (relative to the pipeline file), see `safetynet user add`.
    pub users: String,
    /// PEM certificate chain and private key; when set, only TLS connections
    /// are accepted, and a file that cannot be loaded stops start-up.
    #[serde(default)]
    pub tls_cert: Option<String>,
    /// The private key for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<String>,
    /// Time a statement may take to deliver its rows.
    #[serde(default = "default_timeout")]
    pub statement_timeout_seconds: f64,
    /// Memory a connection's queries may use before spilling or failing.
    #[serde(default = "default_memory")]
    pub memory_limit_mb: usize,
    /// Connections open at once; above it a client is refused with 53300
    /// (too many connections).
    #[serde(default = "default_sql_connections")]
    pub max_connections: usize,
}

fn default_sql_connections() -> usize {
    32
}

fn default_timeout() -> f64 {
    300.0
}

fn default_memory() -> usize {
    2048
}

/// The `[access]` section of a pipeline file: how much roles without raw
/// values see, in the SQL endpoint, the API and the console alike.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// `year` (default) or `month`.
    #[serde(default)]
    pub birth_date_precision: BirthDatePrecision,
}

/// How much of a birth date roles without raw values see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BirthDatePrecision {
    /// The year only: the date becomes 1 January of its year.
    #[default]
    Year,
    /// Year and month: the date becomes the first of its month.
    Month,
}
