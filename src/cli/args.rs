//! The command line's arguments (clap): every command, its options and
//! their help text. Nothing here runs anything.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::output::Format;
use crate::config::SourceName;

#[derive(Parser)]
#[command(
    name = "safetynet",
    version,
    about = "Departmental data screening for return-to-poverty monitoring (防止返贫监测部门数据筛查)"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Run query stages on these `safetynet worker` processes
    /// (http://host:port, comma-separated), overriding the pipeline file's
    /// [engine] and SAFETYNET_WORKERS. Default: this process alone.
    #[arg(long, global = true, value_delimiter = ',')]
    pub workers: Vec<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Ingest extracts of one source into the lake (导入部门数据).
    Ingest {
        /// Lake location: a directory, or a URL (s3://bucket/prefix, file://…).
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// Source name; the schema is schemas/<NAME>.toml unless --schema is given.
        #[arg(long)]
        source: SourceName,
        /// Schema file to use instead of schemas/<SOURCE>.toml; the lake
        /// records it with the batch, and later stages read it from there.
        #[arg(long)]
        schema: Option<PathBuf>,
        /// Text encoding, overriding the schema: utf-8, gb18030 or gbk.
        #[arg(long)]
        encoding: Option<String>,
        /// Files, directories, globs or URLs (s3://bucket/dir/*.csv).
        #[arg(required_unless_present = "pull")]
        inputs: Vec<String>,
        /// Pull from a department's system instead of files: postgres, mysql or http.
        #[arg(long, value_parser = parse_pull_kind, conflicts_with = "inputs")]
        pull: Option<crate::config::PullKind>,
        /// postgres, mysql: the environment variable holding the connection URL.
        #[arg(long)]
        url_env: Option<String>,
        /// http: the interface's address.
        #[arg(long)]
        url: Option<String>,
        /// http: the environment variable holding the bearer token.
        #[arg(long)]
        token_env: Option<String>,
        /// http: a PEM file of the authorities to trust for https, in place of the system's.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// http: offset or cursor paging.
        #[arg(long, value_parser = parse_paging, default_value = "offset")]
        paging: crate::config::Paging,
        /// http: records per page.
        #[arg(long, default_value_t = 1000)]
        page_size: usize,
        /// http: dotted path to a page's records.
        #[arg(long, default_value = "items")]
        items: String,
        /// http: dotted path to the next page's cursor.
        #[arg(long, default_value = "next_cursor")]
        next_cursor: String,
        /// http: requests per second at most.
        #[arg(long, default_value_t = 5.0)]
        requests_per_second: f64,
        /// The table (or view) to pull, optionally schema.table.
        #[arg(long, conflicts_with = "query")]
        table: Option<String>,
        /// Or a query to pull.
        #[arg(long)]
        query: Option<String>,
        /// A column that grows with new rows: pull only rows above the last batch's.
        #[arg(long)]
        watermark: Option<String>,
        /// Rows per pulled batch.
        #[arg(long, default_value_t = 100_000)]
        batch_rows: usize,
    },
    /// Run SQL against the lake's tables (查询).
    Sql(SqlArgs),
    /// Write synthetic extracts with ground truth (生成模拟数据).
    Generate {
        #[arg(long, default_value_t = 500)]
        households: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// Write the department extracts in this encoding (utf-8 or gb18030).
        #[arg(long, default_value = "utf-8")]
        encoding: String,
        /// Write this source as XLSX instead of CSV (repeatable).
        #[arg(long)]
        xlsx: Vec<String>,
        /// Row count for one extract, e.g. --rows health=1000000 (repeatable).
        #[arg(long, value_parser = parse_rows)]
        rows: Vec<(String, usize)>,
        /// Write only these department extracts (repeatable); the roster is always written.
        #[arg(long)]
        only: Vec<String>,
        /// The world, over the defaults: income_median, income_sigma,
        /// roster_noise, shock_rate, shock_size, line (the economy) and
        /// namesake_share (records about namesakes not on the roster, of
        /// all records; default 0.10) and no_id_share (records whose ID
        /// number is left out, beyond the usual dirt; default 0); how
        /// departments write: birth_share (records with a birth date, every
        /// department) or birth_share.<department>, region (county,
        /// township or village: how finely every department writes the
        /// place), name_dirt (multiplies the share of damaged names) and
        /// weights of the kinds of name dirt (name_homophone,
        /// name_lookalike, name_traditional, name_dropped, name_spaces,
        /// name_separator); as key=value,key=value (e.g.
        /// income_median=10000,namesake_share=0.25,region=county).
        #[arg(long, default_value = "")]
        world: String,
    },
    /// Link department records to roster people (关联比对).
    Link {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// Link only this source (default: every ingested department source).
        #[arg(long)]
        source: Option<SourceName>,
        /// Re-estimate the model even when one is stored.
        #[arg(long)]
        train: bool,
        #[arg(long, default_value = "pipelines/linkage.toml")]
        settings: PathBuf,
        /// Schema files, for a source the lake recorded none for (each
        /// ingest records its schema in the lake, which wins).
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
    },
    /// Show why a record linked: candidates and a waterfall of weights (关联解释).
    Explain {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        #[arg(long)]
        source: SourceName,
        /// The record's key (e.g. a settlement number).
        record_key: String,
        /// Candidates to show.
        #[arg(long, default_value_t = 3)]
        candidates: usize,
        #[arg(long, default_value = "pipelines/linkage.toml")]
        settings: PathBuf,
        /// Schema files, for a source the lake recorded none for (each
        /// ingest records its schema in the lake, which wins).
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The clerical review loop (人工复核).
    Review {
        #[command(subcommand)]
        action: ReviewAction,
    },
    /// Measure links against a truth file (评估关联质量).
    Eval {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        #[arg(long)]
        source: SourceName,
        /// CSV: record key, true roster ID number (empty if not on the roster)[, dirt].
        /// For a source linked against another source, the second column is
        /// headed true_registry_key and holds the registry record's key.
        #[arg(long)]
        truth: PathBuf,
        /// Schema files, for a source the lake recorded none for (each
        /// ingest records its schema in the lake, which wins).
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Raise early warnings from the rules (预警).
    Warn {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// The date the run looks from (default: today).
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// assessment (a household is warned when its estimated income
        /// crosses the line) or every-rule (every rule hit is a task).
        #[arg(long, default_value = "assessment", value_parser = parse_mode)]
        mode: crate::config::WarnMode,
        #[arg(long, default_value = "pipelines/rules")]
        rules: PathBuf,
        /// Directory of household assessment components.
        #[arg(long, default_value = "pipelines/assessment")]
        assessment: PathBuf,
        #[arg(long, default_value = "pipelines/thresholds.csv")]
        thresholds: PathBuf,
        #[arg(long, default_value = "pipelines/population_groups.csv")]
        population_groups: PathBuf,
        /// Schema files, for a source the lake recorded none for (each
        /// ingest records its schema in the lake, which wins).
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
    },
    /// Measure warnings against what households' years really were (评估预警质量):
    /// precision, recall, households warned and visits per month, in both
    /// modes, decided on the same lake without writing anything.
    EvalWarnings {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// CSV: household_id, period, per_capita_before, per_capita_after,
        /// status (newly_at_risk, already_below, not_at_risk), cause, records[, observable].
        #[arg(long)]
        truth: PathBuf,
        /// The date to decide as of (default: today).
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        #[arg(long, default_value = "pipelines/rules")]
        rules: PathBuf,
        #[arg(long, default_value = "pipelines/assessment")]
        assessment: PathBuf,
        #[arg(long, default_value = "pipelines/thresholds.csv")]
        thresholds: PathBuf,
        #[arg(long, default_value = "pipelines/population_groups.csv")]
        population_groups: PathBuf,
        /// Schema files, for a source the lake recorded none for (each
        /// ingest records its schema in the lake, which wins).
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Also write a CSV of every household newly at risk or warned, with
        /// the truth beside the assessment's estimate (hit, miss, false alarm).
        #[arg(long)]
        households: Option<PathBuf>,
    },
    /// Record what staff found for a warning (核实结果).
    Verify {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// The warning's id (W…).
        warning_id: String,
        /// included (纳入监测), not_included (不纳入), risk_eliminated (风险消除) or closed.
        #[arg(long)]
        outcome: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Who visited or decided.
        #[arg(long, default_value = "staff")]
        by: String,
        #[arg(long)]
        visited: Option<chrono::NaiveDate>,
    },
    /// Run a pipeline file: every stage of the job (运行流水线).
    Run {
        pipeline: PathBuf,
        /// Lake location, overriding the pipeline file's.
        #[arg(long)]
        lake: Option<String>,
        /// The date the warning stage looks from (default: today).
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// Seconds to wait when another run holds the lake (default: exit at once).
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// The service: the pipeline on its schedule (Asia/Shanghai), catching
    /// up a run missed while it was down, the HTTP API and push delivery
    /// (定时运行与接口服务).
    Serve {
        pipeline: PathBuf,
        #[arg(long)]
        lake: Option<String>,
        /// Address for the HTTP API, overriding the pipeline's [api] listen.
        #[arg(long)]
        listen: Option<String>,
        /// Address for the PostgreSQL endpoint, overriding the pipeline's [sql] listen.
        #[arg(long)]
        sql_listen: Option<String>,
    },
    /// Serve as a worker of the distributed engine: run the query stages a
    /// coordinator (any command given --workers) sends here (分布式计算节点).
    /// On SIGTERM or Ctrl-C it prints the bytes it sent and received.
    Worker {
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: std::net::SocketAddr,
    },
    /// Accounts of the PostgreSQL endpoint (SQL 用户).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Push warning changes to the monitoring system: one pass (推送预警).
    Deliver {
        /// Pipeline file whose [delivery] section names the endpoint.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Lake location (default: the pipeline's).
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: Option<String>,
        /// Endpoint URL, overriding (or instead of) the pipeline's.
        #[arg(long)]
        url: Option<String>,
        /// Keep retrying failed items whose next try falls within this many seconds.
        #[arg(long, default_value_t = 0)]
        retry_within: u64,
        /// Make dead-letter and rejected items pending again before the pass.
        #[arg(long)]
        requeue: bool,
        /// Only show where delivery stands.
        #[arg(long)]
        status: bool,
    },
    /// API tokens for the monitoring system and other callers (访问令牌).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// List recent runs and their stages (运行记录).
    Runs {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// How many runs.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
}

#[derive(Subcommand)]
pub enum ReviewAction {
    /// Write the records in the review band, record and candidate side by side.
    Export {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// Only this source (default: every linked source).
        #[arg(long)]
        source: Option<SourceName>,
        /// CSV to write.
        #[arg(long, default_value = "review.csv")]
        out: PathBuf,
        #[arg(long, default_value = "pipelines/linkage.toml")]
        settings: PathBuf,
        /// Schema files, for a source the lake recorded none for (each
        /// ingest records its schema in the lake, which wins).
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
    },
    /// Store the decisions filled into an exported file.
    Import {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Issue a token; it is shown once, only its hash is stored.
    Create {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// Who or what uses it, e.g. "县监测平台".
        #[arg(long)]
        name: String,
        /// reader (read, masked), verifier (read and post visits, masked) or admin (raw values).
        #[arg(long, default_value = "reader")]
        role: String,
        /// Limit to an administrative code prefix (province 2, prefecture 4,
        /// county 6, township 9 or village 12 digits).
        #[arg(long)]
        region: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
    },
    /// Revoke a token by its id; it stops working within seconds.
    Revoke {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        token_id: String,
    },
}

#[derive(Subcommand)]
pub enum UserAction {
    /// Add (or replace) a user; the password is read from the first line of
    /// standard input and only its salted SCRAM hash is written.
    Add {
        /// The users file, e.g. pipelines/users.toml.
        #[arg(long)]
        users: PathBuf,
        #[arg(long)]
        name: String,
        /// admin (raw values, audit log), analyst, verifier or reader (masked).
        #[arg(long, default_value = "analyst")]
        role: String,
        /// Limit to an administrative code prefix.
        #[arg(long)]
        region: Option<String>,
    },
}

/// Options of `safetynet sql`.
#[derive(clap::Args)]
pub struct SqlArgs {
    #[arg(long, env = "SAFETYNET_LAKE")]
    pub lake: String,
    /// The statement to run.
    #[arg(short = 'c', long = "command", conflicts_with = "file")]
    pub command: Option<String>,
    /// A file of statements separated by semicolons.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// The role to query as: admin (raw values), analyst or reader (names
    /// and ID numbers masked).
    #[arg(long, default_value = "admin")]
    pub role: String,
    /// Only rows of this administrative code prefix.
    #[arg(long)]
    pub region: Option<String>,
    /// Write the result to a .csv or .parquet file (admin and analyst).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "schemas")]
    pub schemas: PathBuf,
}

/// `--rows health=1000000`.
fn parse_rows(text: &str) -> Result<(String, usize), String> {
    let (source, n) = text.split_once('=').ok_or("expected SOURCE=N")?;
    let n = n.parse().map_err(|_| format!("'{n}' is not a row count"))?;
    Ok((source.to_string(), n))
}

/// `--mode assessment|every-rule`.
fn parse_mode(text: &str) -> Result<crate::config::WarnMode, String> {
    crate::config::WarnMode::parse(text)
        .ok_or_else(|| format!("'{text}' is not a mode: assessment or every-rule"))
}

fn parse_pull_kind(text: &str) -> Result<crate::config::PullKind, String> {
    match text {
        "postgres" | "postgresql" => Ok(crate::config::PullKind::Postgres),
        "mysql" | "mariadb" => Ok(crate::config::PullKind::Mysql),
        "http" => Ok(crate::config::PullKind::Http),
        _ => Err(format!(
            "'{text}' is not a pull kind: postgres, mysql or http"
        )),
    }
}

fn parse_paging(text: &str) -> Result<crate::config::Paging, String> {
    match text {
        "offset" => Ok(crate::config::Paging::Offset),
        "cursor" => Ok(crate::config::Paging::Cursor),
        _ => Err(format!("'{text}' is not a paging: offset or cursor")),
    }
}
