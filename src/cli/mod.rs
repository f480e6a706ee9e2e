//! Command-line interface: argument parsing and output only; the work is
//! done by the library modules.

pub mod output;
mod service;
mod shell;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{Pipeline, SourceSchema};
use crate::ingest::{self, FileOutcome, IngestOptions};
use crate::lake::Lake;
use crate::pipeline::lock::RunLock;
use output::Format;

#[derive(Parser)]
#[command(
    name = "safetynet",
    version,
    about = "Departmental data screening for return-to-poverty monitoring (防止返贫监测部门数据筛查)"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest extracts of one source into the lake (导入部门数据).
    Ingest {
        /// Lake location: a directory, or a URL (s3://bucket/prefix, file://…).
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// Source name; the schema is schemas/<NAME>.toml unless --schema is given.
        #[arg(long)]
        source: String,
        /// Schema file to use instead of schemas/<SOURCE>.toml.
        #[arg(long)]
        schema: Option<PathBuf>,
        /// Text encoding, overriding the schema: utf-8, gb18030 or gbk.
        #[arg(long)]
        encoding: Option<String>,
        /// Files, directories, globs or URLs (s3://bucket/dir/*.csv).
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// Run SQL against the lake's tables (查询).
    Sql(shell::SqlArgs),
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
    },
    /// Link department records to roster people (关联比对).
    Link {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// Link only this source (default: every ingested department source).
        #[arg(long)]
        source: Option<String>,
        /// Re-estimate the model even when one is stored.
        #[arg(long)]
        train: bool,
        #[arg(long, default_value = "pipelines/linkage.toml")]
        settings: PathBuf,
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
    },
    /// Show why a record linked: candidates and a waterfall of weights (关联解释).
    Explain {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        #[arg(long)]
        source: String,
        /// The record's key (e.g. a settlement number).
        record_key: String,
        /// Candidates to show.
        #[arg(long, default_value_t = 3)]
        candidates: usize,
        #[arg(long, default_value = "pipelines/linkage.toml")]
        settings: PathBuf,
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
        source: String,
        /// CSV: record key, true roster ID number (empty if not on the roster)[, dirt].
        #[arg(long)]
        truth: PathBuf,
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
        #[arg(long, default_value = "pipelines/rules")]
        rules: PathBuf,
        #[arg(long, default_value = "pipelines/thresholds.csv")]
        thresholds: PathBuf,
        #[arg(long, default_value = "pipelines/population_groups.csv")]
        population_groups: PathBuf,
        #[arg(long, default_value = "schemas")]
        schemas: PathBuf,
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
    /// Accounts of the PostgreSQL endpoint (SQL 用户).
    User {
        #[command(subcommand)]
        action: service::UserAction,
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
        action: service::TokenAction,
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
enum ReviewAction {
    /// Write the records in the review band, record and candidate side by side.
    Export {
        #[arg(long, env = "SAFETYNET_LAKE")]
        lake: String,
        /// Only this source (default: every linked source).
        #[arg(long)]
        source: Option<String>,
        /// CSV to write.
        #[arg(long, default_value = "review.csv")]
        out: PathBuf,
        #[arg(long, default_value = "pipelines/linkage.toml")]
        settings: PathBuf,
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // Twice as many workers as cores: DataFusion runs a query's partitions
    // as tasks that can hold a worker for seconds without yielding; with
    // only one worker per core, `serve` could not answer health checks or
    // fire a statement timeout or a cancel while a heavy query ran.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads((cores * 2).max(4))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SAFETYNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("safetynet=info,warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).compact().init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Ingest {
            lake,
            source,
            schema,
            encoding,
            inputs,
        } => {
            let schema_path =
                schema.unwrap_or_else(|| PathBuf::from(format!("schemas/{source}.toml")));
            let schema = SourceSchema::load(&schema_path)?;
            if schema.name != source {
                anyhow::bail!(
                    "--source {source} but {} describes '{}'",
                    schema_path.display(),
                    schema.name
                );
            }
            let lake = Lake::open(&lake).await?;
            let outcomes = ingest_with_progress(
                &lake,
                Arc::new(schema),
                &inputs,
                &IngestOptions { encoding },
            )
            .await?;
            print_ingest_summary(&outcomes);
            Ok(exit_code(&outcomes))
        }
        Command::Sql(args) => shell::sql(args).await,
        Command::Generate {
            households,
            seed,
            out,
            encoding,
            xlsx,
            rows,
            only,
        } => {
            let options = crate::generate::Options {
                households,
                seed,
                encoding,
                xlsx_sources: xlsx,
                rows: rows.into_iter().collect(),
                only,
            };
            let summary = crate::generate::write(&out, &options)?;
            let mut t = output::table(vec!["file 文件", "rows 行数"]);
            for (file, rows) in summary {
                t.add_row(vec![file, rows.to_string()]);
            }
            println!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Link {
            lake,
            source,
            train,
            settings,
            schemas,
        } => {
            let (lake, settings, sources) =
                open_for_linking(&lake, &settings, &schemas, source).await?;
            let mut reports = Vec::new();
            for source in sources {
                tracing::info!(source = %source, "linking");
                reports.push(
                    crate::link::link_source(&lake, &schemas, &settings, &source, train).await?,
                );
            }
            print_link_reports(&reports);
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain {
            lake,
            source,
            record_key,
            candidates,
            settings,
            schemas,
            format,
        } => {
            let lake = Lake::open(&lake).await?;
            let settings = crate::link::settings::SettingsFile::load(&settings)?;
            let e = crate::link::explain::explain(
                &lake,
                &schemas,
                &settings,
                &source,
                &record_key,
                candidates,
            )
            .await?;
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&e)?);
                return Ok(ExitCode::SUCCESS);
            }
            print_explanation(&e);
            Ok(ExitCode::SUCCESS)
        }
        Command::Review { action } => match action {
            ReviewAction::Export {
                lake,
                source,
                out,
                settings,
                schemas,
            } => {
                let (lake, settings, sources) =
                    open_for_linking(&lake, &settings, &schemas, source).await?;
                let n =
                    crate::link::review::export(&lake, &schemas, &settings, &sources, &out).await?;
                println!(
                    "{n} records to review written to {} (fill in 'decision': match/是 or no_match/否)",
                    out.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            ReviewAction::Import { lake, file } => {
                let lake = Lake::open(&lake).await?;
                let r = crate::link::review::import(&lake, &file).await?;
                println!(
                    "stored {} match and {} no-match decisions ({} rows left undecided); they apply from the next `safetynet link`",
                    r.matches, r.non_matches, r.undecided
                );
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::Eval {
            lake,
            source,
            truth,
            schemas,
            format,
        } => {
            let lake = Lake::open(&lake).await?;
            let e = crate::link::eval::evaluate(&lake, &schemas, &source, &truth).await?;
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&e)?);
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = output::table(vec![
                "method 方法",
                "links 关联",
                "correct 正确",
                "precision 精确率",
                "recall 召回率",
                "F1",
            ]);
            for (name, s) in [
                ("safetynet", &e.linker),
                ("exact ID join 身份证号精确匹配", &e.exact_id_baseline),
            ] {
                t.add_row(vec![
                    name.to_string(),
                    s.links.to_string(),
                    s.correct.to_string(),
                    format!("{:.4}", s.precision),
                    format!("{:.4}", s.recall),
                    format!("{:.4}", s.f1),
                ]);
            }
            println!(
                "{} records, {} true matches, {} in review",
                e.records, e.linker.true_matches, e.review
            );
            println!("{t}");
            println!(
                "true matches known only by name and region (no ID, no birth date): {:.2}%",
                e.name_and_region_only_share * 100.0
            );
            if !e.recall_by_dirt.is_empty() {
                let mut d = output::table(vec!["dirt 脏数据类型", "records 记录", "recall 召回率"]);
                for (kind, n, recall) in &e.recall_by_dirt {
                    d.add_row(vec![kind.clone(), n.to_string(), format!("{recall:.4}")]);
                }
                println!("{d}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Warn {
            lake,
            as_of,
            rules,
            thresholds,
            population_groups,
            schemas,
        } => {
            let lake = Lake::open(&lake).await?;
            let config = crate::warn::WarnConfig {
                rules_dir: rules,
                thresholds,
                population_groups,
                schemas_dir: schemas,
            };
            let as_of = as_of.unwrap_or_else(today);
            let report = crate::warn::run(&lake, &config, as_of).await?;
            print_warn_report(&report);
            crate::pipeline::print_top_warnings(&lake, 5).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            lake,
            warning_id,
            outcome,
            reason,
            by,
            visited,
        } => {
            let lake = Lake::open(&lake).await?;
            let v = crate::warn::Verification {
                warning_id,
                outcome,
                reason,
                by,
                visited,
            };
            // Runs rewrite warnings too: hold the run lock while recording.
            let lock = RunLock::acquire(
                &lake,
                "safetynet verify",
                std::time::Duration::from_secs(60),
            )
            .await?;
            let w = crate::warn::verify(&lake, &v).await;
            lock.release().await?;
            let w = w?;
            println!(
                "{} is now {} ({})",
                w.warning_id,
                w.status,
                w.outcome.unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            pipeline,
            lake,
            as_of,
            wait,
        } => {
            let pipeline = Pipeline::load(&pipeline)?;
            let location = lake.unwrap_or_else(|| pipeline.lake_location());
            let lake = Lake::open(&location).await?;
            let holder = format!("safetynet run {}", pipeline.name);
            let lock =
                RunLock::acquire(&lake, &holder, std::time::Duration::from_secs(wait)).await?;
            lock.test_pause().await;
            let stop = std::sync::atomic::AtomicBool::new(false);
            let result = run_stages(&pipeline, &lake, as_of.unwrap_or_else(today), &stop).await;
            lock.release().await?;
            result
        }
        Command::Serve {
            pipeline,
            lake,
            listen,
            sql_listen,
        } => service::serve(&pipeline, lake, listen, sql_listen).await,
        Command::User { action } => service::user(action),
        Command::Deliver {
            pipeline,
            lake,
            url,
            retry_within,
            requeue,
            status,
        } => service::deliver(pipeline, lake, url, retry_within, requeue, status).await,
        Command::Token { action } => service::token(action).await,
        Command::Runs { lake, limit } => {
            let lake = Lake::open(&lake).await?;
            let ctx = lake.session().await?;
            if !ctx.table_exist(crate::pipeline::runs::RUNS)? {
                println!("no runs recorded in this lake yet");
                return Ok(ExitCode::SUCCESS);
            }
            let sql = format!(
                "SELECT run_id, pipeline, stage, status, started_at, \
                        CAST(round(CAST(CAST(finished_at AS BIGINT) - CAST(started_at AS BIGINT) AS DOUBLE) / 1e6, 2) AS VARCHAR) AS seconds, \
                        rows_in, rows_out, quarantined, linked, review, unlinked, \
                        warnings_raised AS raised, warnings_reopened AS reopened, error \
                 FROM runs WHERE run_id IN (SELECT DISTINCT run_id FROM runs ORDER BY run_id DESC LIMIT {limit}) \
                 ORDER BY run_id DESC, started_at"
            );
            let batches = ctx.sql(&sql).await?.collect().await?;
            output::print_batches(&batches, Format::Table)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The stages of one run, each recorded in `runs`. A failed stage is
/// recorded with its error and ends the run; the next run redoes whatever
/// is not done (ingest skips files already in, link relinks sources whose
/// links are older than their data, warn changes only what changed).
pub(crate) async fn run_stages(
    pipeline: &Pipeline,
    lake: &Lake,
    as_of: chrono::NaiveDate,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<ExitCode> {
    let stopping = |after: &str| {
        let asked = stop.load(std::sync::atomic::Ordering::SeqCst);
        if asked {
            tracing::warn!("shutting down after stage {after}; the next run continues from here");
        }
        asked
    };
    use crate::pipeline::runs::{RunLog, StageCounts};
    let log = RunLog::new(lake, &pipeline.name);
    tracing::info!(run = %log.run_id, "run started");

    // Ingest.
    let started = chrono::Utc::now();
    let mut outcomes = Vec::new();
    let ingest: Result<()> = async {
        for source in crate::pipeline::ordered_sources(pipeline) {
            let schema = pipeline.schema_for(source)?;
            let inputs: Vec<String> = source.inputs.iter().map(|i| pipeline.resolve(i)).collect();
            let options = IngestOptions {
                encoding: source.encoding.clone(),
            };
            outcomes.extend(ingest_with_progress(lake, Arc::new(schema), &inputs, &options).await?);
        }
        Ok(())
    }
    .await;
    let mut counts = StageCounts::default();
    for r in outcomes.iter().filter_map(|o| o.result.as_ref().ok()) {
        counts.rows_in += r.rows_read as i64;
        counts.rows_out += r.rows_staged as i64;
        counts.quarantined += r.rows_quarantined as i64;
    }
    let refused: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.result
                .as_ref()
                .err()
                .map(|e| format!("{}: {e:#}", o.file))
        })
        .collect();
    let error = ingest
        .as_ref()
        .err()
        .map(|e| format!("{e:#}"))
        .or((!refused.is_empty()).then(|| refused.join("; ")));
    log.record("ingest", started, &counts, error).await?;
    print_ingest_summary(&outcomes);
    ingest.map_err(|e| e.context("stage ingest failed"))?;
    if stopping("ingest") {
        return Ok(exit_code(&outcomes));
    }

    // Link the sources whose links are older than their data.
    let started = chrono::Utc::now();
    let mut reports = Vec::new();
    let link: Result<()> = async {
        let settings = crate::link::settings::SettingsFile::load(&pipeline.linkage_path())?;
        let schemas = pipeline.schemas_dir();
        for source in crate::link::linkable_sources(lake, &schemas).await? {
            if crate::link::needs_linking(lake, &source).await? {
                tracing::info!(source = %source, "linking");
                let bar = stage_spinner(format!("linking 关联 {source}"));
                let report =
                    crate::link::link_source(lake, &schemas, &settings, &source, false).await;
                bar.finish_and_clear();
                reports.push(report?);
            }
        }
        Ok(())
    }
    .await;
    crate::failpoint::hit("run:after-link");
    let mut counts = StageCounts::default();
    for r in &reports {
        counts.rows_in += r.records;
        counts.linked += r.linked;
        counts.review += r.review;
        counts.unlinked += r.unlinked;
    }
    log.record(
        "link",
        started,
        &counts,
        link.as_ref().err().map(|e| format!("{e:#}")),
    )
    .await?;
    if !reports.is_empty() {
        print_link_reports(&reports);
    }
    link.map_err(|e| e.context("stage link failed"))?;
    if stopping("link") {
        return Ok(exit_code(&outcomes));
    }

    // Warn.
    let started = chrono::Utc::now();
    tracing::info!(as_of = %as_of, "raising warnings");
    let bar = stage_spinner("warning rules 预警规则".into());
    let warn = crate::warn::run(lake, &pipeline.warn_config(), as_of).await;
    bar.finish_and_clear();
    let counts = warn.as_ref().map_or_else(
        |_| StageCounts::default(),
        |w| StageCounts {
            raised: w.raised as i64,
            reopened: w.reopened as i64,
            updated: w.updated as i64,
            rows_out: (w.raised + w.reopened + w.updated) as i64,
            ..Default::default()
        },
    );
    log.record(
        "warn",
        started,
        &counts,
        warn.as_ref().err().map(|e| format!("{e:#}")),
    )
    .await?;
    let warn = warn.map_err(|e| e.context("stage warn failed"))?;
    if stopping("warn") {
        return Ok(exit_code(&outcomes));
    }

    // Deliver, when the pipeline names a monitoring endpoint. Items that
    // fail stay in the outbox for the next pass (serve retries them).
    let mut delivery = None;
    if let Some(config) = &pipeline.delivery {
        let started = chrono::Utc::now();
        let bar = stage_spinner("delivering 推送".into());
        let result = crate::deliver::pass(lake, config, std::time::Duration::ZERO).await;
        bar.finish_and_clear();
        let counts = StageCounts {
            delivered: result.as_ref().map_or(0, |r| r.delivered as i64),
            ..Default::default()
        };
        let error = match &result {
            Err(e) => Some(format!("{e:#}")),
            Ok(r) if r.rejected + r.dead > 0 => Some(format!(
                "{} item(s) rejected, {} dead-lettered: {}",
                r.rejected,
                r.dead,
                r.errors.join("; ")
            )),
            Ok(_) => None,
        };
        log.record("deliver", started, &counts, error).await?;
        delivery = Some(result.map_err(|e| e.context("stage deliver failed"))?);
    }

    crate::pipeline::print_overview(lake).await?;
    print_warn_report(&warn);
    crate::pipeline::print_top_warnings(lake, 5).await?;
    if let Some(r) = &delivery {
        service::print_delivery_report(r);
    }
    println!("run {} finished", log.run_id);
    Ok(exit_code(&outcomes))
}

/// The lake, linkage settings and the sources to work on (one, or every
/// ingested department source).
async fn open_for_linking(
    lake: &str,
    settings: &std::path::Path,
    schemas: &std::path::Path,
    source: Option<String>,
) -> Result<(Lake, crate::link::settings::SettingsFile, Vec<String>)> {
    let lake = Lake::open(lake).await?;
    let settings = crate::link::settings::SettingsFile::load(settings)?;
    let sources = match source {
        Some(s) => vec![s],
        None => crate::link::linkable_sources(&lake, schemas).await?,
    };
    if sources.is_empty() {
        anyhow::bail!("no department source has been ingested yet");
    }
    Ok((lake, settings, sources))
}

/// Today in China (Asia/Shanghai is UTC+8 all year).
pub(crate) fn today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

fn print_warn_report(r: &crate::warn::WarnReport) {
    let mut t = output::table(vec![
        "rule 规则",
        "title 名称",
        "risk 风险类型",
        "records 记录",
        "households 户",
        "pending review 待复核",
    ]);
    for s in &r.rules {
        t.add_row(vec![
            s.rule.clone(),
            s.title.clone(),
            s.risk_type.clone(),
            s.note.clone().unwrap_or_else(|| s.records.to_string()),
            s.households.to_string(),
            s.pending_review.to_string(),
        ]);
    }
    println!("warnings as of 预警基准日 {}\n{t}", r.as_of);
    println!(
        "raised 新增 {} · updated 更新 {} · reopened 重新打开 {} · unchanged 未变 {} · suppressed (already monitored) 已在监测中 {}",
        r.raised, r.updated, r.reopened, r.unchanged, r.suppressed
    );
    if !r.open_by_county.is_empty() {
        let mut by_county: std::collections::BTreeMap<&str, (i64, Vec<String>)> =
            Default::default();
        for (county, risk, n) in &r.open_by_county {
            let entry = by_county.entry(county.as_str()).or_default();
            entry.0 += n;
            entry.1.push(format!("{risk} {n}"));
        }
        let mut c = output::table(vec![
            "county 县",
            "open warnings 待处理预警",
            "by risk 按风险类型",
        ]);
        for (county, (total, risks)) in by_county {
            c.add_row(vec![
                county.to_string(),
                total.to_string(),
                risks.join(" · "),
            ]);
        }
        println!("{c}");
    }
}

fn print_link_reports(reports: &[crate::link::LinkReport]) {
    let mut t = output::table(vec![
        "source 来源",
        "records 记录",
        "pairs 候选对",
        "linked 关联",
        "review 待核",
        "unlinked 未关联",
        "model 模型",
        "seconds 秒",
    ]);
    for r in reports {
        t.add_row(vec![
            r.source.clone(),
            r.records.to_string(),
            r.candidate_pairs.to_string(),
            r.linked.to_string(),
            r.review.to_string(),
            r.unlinked.to_string(),
            format!(
                "v{}{}",
                r.model_version,
                if r.trained { " (trained)" } else { "" }
            ),
            format!("{:.2}", r.seconds),
        ]);
    }
    println!("{t}");
}

fn print_explanation(e: &crate::link::explain::Explanation) {
    let value = |m: &std::collections::BTreeMap<String, String>, k: &str| {
        m.get(k).cloned().unwrap_or_default()
    };
    println!(
        "{} {}: name {} · ID {} · born {} · {} · region {}",
        e.source,
        e.record_key,
        value(&e.record, "name"),
        value(&e.record, "id_number"),
        value(&e.record, "birth_date"),
        value(&e.record, "gender"),
        value(&e.record, "region_code"),
    );
    match (&e.status, &e.linked_person) {
        (Some(s), Some(p)) => println!("status 状态: {s} → {p} (model v{})", e.model_version),
        (Some(s), None) => println!("status 状态: {s} (model v{})", e.model_version),
        _ => println!("not linked yet (model v{})", e.model_version),
    }
    if e.candidates.is_empty() {
        println!("no candidates: no blocking rule pairs this record with anyone on the roster");
    }
    for (i, c) in e.candidates.iter().enumerate() {
        println!(
            "\ncandidate {} 候选: {} (household {}) — {} · {} · {} · {} · {}",
            i + 1,
            c.person_id,
            c.household_id,
            value(&c.values, "name"),
            value(&c.values, "id_number"),
            value(&c.values, "birth_date"),
            value(&c.values, "gender"),
            value(&c.values, "region_code"),
        );
        let mut t = output::table(vec![
            "step 步骤",
            "level 比对结果",
            "weight 权重",
            "total 累计",
        ]);
        for s in &c.waterfall {
            t.add_row(vec![
                s.comparison.clone(),
                s.level.clone(),
                format!("{:+.2}", s.weight),
                format!("{:.2}", s.cumulative),
            ]);
        }
        t.add_row(vec![
            "match probability 匹配概率".to_string(),
            c.review_decision
                .clone()
                .map(|d| format!("clerk: {d}"))
                .unwrap_or_default(),
            String::new(),
            format!("{:.6}", c.match_probability),
        ]);
        println!("{t}");
    }
}

fn parse_rows(text: &str) -> Result<(String, usize), String> {
    let (source, n) = text.split_once('=').ok_or("expected SOURCE=N")?;
    let n = n.parse().map_err(|_| format!("'{n}' is not a row count"))?;
    Ok((source.to_string(), n))
}

fn exit_code(outcomes: &[FileOutcome]) -> ExitCode {
    if outcomes.iter().any(|o| o.result.is_err()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A spinner with the stage's name and elapsed time for work that reports
/// no row counts (linking, rules). indicatif draws it only on a terminal;
/// elsewhere the stage's log lines tell the story.
fn stage_spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("static template"),
    );
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Ingest with a progress spinner on a terminal (hidden otherwise) and a log
/// line per file.
async fn ingest_with_progress(
    lake: &Lake,
    schema: Arc<SourceSchema>,
    inputs: &[String],
    options: &IngestOptions,
) -> Result<Vec<FileOutcome>> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} {human_pos} rows ({per_sec}) {elapsed}")
            .expect("static template"),
    );
    let source = schema.name.clone();
    let on_file = |name: &str| {
        tracing::info!(source = %source, file = %name, "ingesting");
        bar.set_prefix(name.to_string());
        bar.set_position(0);
    };
    let progress = |rows: u64| bar.set_position(rows);
    let outcomes = ingest::ingest_source(lake, schema, inputs, options, &on_file, &progress).await;
    bar.finish_and_clear();
    outcomes
}

fn print_ingest_summary(outcomes: &[FileOutcome]) {
    let mut t = output::table(vec![
        "file 文件",
        "read 读取",
        "staged 入库",
        "quarantined 隔离",
        "seconds 秒",
        "outcome 结果",
    ]);
    for o in outcomes {
        match &o.result {
            Ok(r) => t.add_row(vec![
                r.file.clone(),
                r.rows_read.to_string(),
                r.rows_staged.to_string(),
                r.rows_quarantined.to_string(),
                format!("{:.2}", r.seconds),
                r.outcome.clone(),
            ]),
            Err(e) => t.add_row(vec![
                o.file.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("refused 拒绝: {e:#}"),
            ]),
        };
    }
    println!("{t}");
    for o in outcomes {
        if let Err(e) = &o.result {
            eprintln!("error: {e:#}");
        }
    }
}
