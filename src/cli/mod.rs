//! The command line: `args` defines the commands, this module dispatches
//! each to the library, `report` prints what the library returns,
//! `progress` draws spinners, `shell` is the interactive SQL shell. The
//! work itself is done below (`pipeline`, the stages, `serve`).
//!
//! Exit codes: 0 success; 1 failure; 2 bad arguments (clap); and, for the
//! failures a script can act on (`crate::error`), 64 bad input, 66 no such
//! thing, 69 lake unavailable, 75 busy (another run holds the lake), 77
//! not allowed, 78 bad configuration.

mod args;
mod output;
mod progress;
mod report;
mod shell;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::access::{Role, tokens};
use crate::config::{DeliveryConfig, Pipeline, SourceName, SourceSchema};
use crate::distributed::{self, Engine};
use crate::error::Error;
use crate::ingest::{FileOutcome, IngestOptions};
use crate::lake::Lake;
use crate::pipeline::{Feed, RunOptions, ingest_with_progress};
use args::{Cli, Command, LogFormat, ReviewAction, TokenAction, UserAction};
use output::Format;
use progress::Spinners;

/// The `safetynet` program.
pub fn main() -> ExitCode {
    // Everything this process creates — lake files, raw extracts, the
    // audit log, exports — is readable by its own user only (0600 files,
    // 0700 directories).
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // Twice as many workers as cores: DataFusion runs a query's partitions
    // as tasks that can hold a worker for seconds without yielding; with
    // only one worker per core, a command could not notice Ctrl-C or a
    // timeout while a heavy query ran.
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
    let chosen = match cli.workers.is_empty() {
        true => Ok(()),
        false => Engine::with_workers(&cli.workers)
            .context("in --workers")
            .and_then(distributed::choose),
    };
    if let Err(e) = chosen {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            match distributed::unreachable_worker(&e) {
                Some(line) => {
                    tracing::debug!("{e:#}");
                    eprintln!("error: {line}");
                    eprintln!("{}", distributed::UNREACHABLE_WORKER_HINT);
                }
                None => eprintln!("error: {e:#}"),
            }
            match Error::find(&e) {
                Some(typed) => {
                    if matches!(typed, Error::LockHeld { .. }) {
                        eprintln!("try again later, or pass --wait SECONDS");
                    }
                    ExitCode::from(typed.exit_code())
                }
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SAFETYNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("safetynet=info,warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a scheduled run's log file should
        // read as plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
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
            pull,
            url_env,
            url,
            token_env,
            ca_file,
            paging,
            page_size,
            items,
            next_cursor,
            requests_per_second,
            table,
            query,
            watermark,
            batch_rows,
        } => {
            let schema_path = schema
                .unwrap_or_else(|| crate::lake::schemas::file_in(Path::new("schemas"), &source));
            let schema = SourceSchema::load(&schema_path)?;
            if schema.name != source {
                bail!(
                    "--source {source} but {} describes '{}'",
                    schema_path.display(),
                    schema.name
                );
            }
            let pull = pull.map(|kind| crate::config::PullConfig {
                kind,
                url_env,
                url,
                token_env,
                ca_file,
                paging,
                items,
                next_cursor,
                page_size,
                requests_per_second,
                retries: crate::config::pull::default_retries(),
                timeout_seconds: crate::config::pull::default_timeout_seconds(),
                table,
                query,
                watermark,
                batch_rows,
            });
            if let Some(pull) = &pull {
                pull.check(&source)?;
            }
            let feed = match &pull {
                Some(pull) => Feed::Pull(pull),
                None => Feed::Files(&inputs),
            };
            let lake = Lake::open(&lake).await?;
            let spinners = Spinners::default();
            let outcomes = ingest_with_progress(
                &lake,
                Arc::new(schema),
                feed,
                &IngestOptions { encoding },
                &spinners,
            )
            .await;
            spinners.finish();
            let outcomes = outcomes?;
            report::print_ingest_summary(&outcomes);
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
            world,
        } => {
            let (economy, habits) = crate::generate::year::Economy::parse(&world)?;
            let options = crate::generate::Options {
                economy,
                habits,
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
            report::print_link_reports(&reports);
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
            } else {
                report::print_explanation(&e);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Review { action } => review(action).await,
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
            } else {
                report::print_evaluation(&e);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Warn {
            lake,
            as_of,
            mode,
            rules,
            assessment,
            thresholds,
            population_groups,
            schemas,
        } => {
            let lake = Lake::open(&lake).await?;
            let config = crate::warn::WarnConfig {
                mode,
                rules_dir: rules,
                assessment_dir: assessment,
                thresholds,
                population_groups,
                schemas_dir: schemas,
            };
            let as_of = as_of.unwrap_or_else(crate::identity::china_today);
            let warned = crate::warn::run(&lake, &config, as_of).await?;
            report::print_warn_report(&warned);
            report::print_top_warnings(&crate::pipeline::top_warnings(&lake, 5).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::EvalWarnings {
            lake,
            truth,
            as_of,
            rules,
            assessment,
            thresholds,
            population_groups,
            schemas,
            format,
            households,
        } => {
            let lake = Lake::open(&lake).await?;
            let config = crate::warn::WarnConfig {
                mode: Default::default(),
                rules_dir: rules,
                assessment_dir: assessment,
                thresholds,
                population_groups,
                schemas_dir: schemas,
            };
            let as_of = as_of.unwrap_or_else(crate::identity::china_today);
            let e =
                crate::warn::eval::evaluate(&lake, &config, &truth, as_of, households.as_deref())
                    .await?;
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                report::print_warning_evaluation(&e);
            }
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
            let w = crate::pipeline::verify(&lake, &v, "safetynet verify", Duration::from_secs(60))
                .await?;
            println!("{} is now {} ({})", w.warning_id, w.status, w.outcome);
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            pipeline,
            lake,
            as_of,
            wait,
        } => {
            let pipeline = Pipeline::load(&pipeline)?;
            choose_engine_of(&pipeline)?;
            let location = lake.unwrap_or_else(|| pipeline.lake_location());
            let lake = Lake::open(&location).await?;
            let spinners = Spinners::default();
            let options = RunOptions {
                as_of: as_of.unwrap_or_else(crate::identity::china_today),
                wait: Duration::from_secs(wait),
                holder: format!("safetynet run {}", pipeline.name),
                stop: Arc::new(AtomicBool::new(false)),
                progress: &spinners,
            };
            let run = crate::pipeline::run(&pipeline, &lake, &options).await;
            spinners.finish();
            let run = run?;
            if let Some(failure) = run.failure {
                report::print_ingest_summary(&run.ingest);
                if !run.links.is_empty() {
                    report::print_link_reports(&run.links);
                }
                return Err(failure.error);
            }
            let overview = crate::pipeline::overview(&lake).await?;
            let top = crate::pipeline::top_warnings(&lake, 5).await?;
            report::print_run(&run, Some(&overview), &top);
            for o in &run.ingest {
                if let Err(e) = &o.result {
                    eprintln!("error: {e:#}");
                }
            }
            println!("run {} finished", run.run_id);
            Ok(exit_code(&run.ingest))
        }
        Command::Serve {
            pipeline,
            lake,
            listen,
            sql_listen,
        } => {
            let pipeline = Pipeline::load(&pipeline)?;
            choose_engine_of(&pipeline)?;
            let service = crate::serve::Service::build(
                pipeline,
                crate::serve::ServiceOptions {
                    lake,
                    listen,
                    sql_listen,
                },
            )
            .await?;
            service.run_until_stopped(shutdown_signal()?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User { action } => user(action),
        Command::Deliver {
            pipeline,
            lake,
            url,
            retry_within,
            requeue,
            status,
        } => deliver(pipeline, lake, url, retry_within, requeue, status).await,
        Command::Token { action } => token(action).await,
        Command::Worker { listen } => {
            crate::distributed::worker::serve(listen, shutdown_signal()?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs { lake, limit } => {
            let lake = Lake::open(&lake).await?;
            match crate::pipeline::runs::recent(&lake, limit).await? {
                Some(batches) => output::print_batches(&batches, Format::Table)?,
                None => println!("no runs recorded in this lake yet"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The pipeline file's `[engine]`, unless `--workers` chose already.
fn choose_engine_of(pipeline: &Pipeline) -> Result<()> {
    if distributed::chosen().is_some() || pipeline.engine.workers.is_empty() {
        return Ok(());
    }
    let engine = Engine::with_workers(&pipeline.engine.workers).with_context(|| {
        format!(
            "in [engine] workers of the pipeline file in {}",
            pipeline.base_dir.display()
        )
    })?;
    distributed::choose(engine)
}

/// SIGTERM or Ctrl-C.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    })
}

async fn review(action: ReviewAction) -> Result<ExitCode> {
    match action {
        ReviewAction::Export {
            lake,
            source,
            out,
            settings,
            schemas,
        } => {
            let (lake, settings, sources) =
                open_for_linking(&lake, &settings, &schemas, source).await?;
            let n = crate::link::review::export(&lake, &schemas, &settings, &sources, &out).await?;
            println!(
                "{n} records to review written to {} (fill in 'decision': match/是 or no_match/否)",
                out.display()
            );
        }
        ReviewAction::Import { lake, file } => {
            let lake = Lake::open(&lake).await?;
            let r = crate::link::review::import(&lake, &file).await?;
            println!(
                "stored {} match and {} no-match decisions ({} rows left undecided); they apply from the next `safetynet link`",
                r.matches, r.non_matches, r.undecided
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn user(action: UserAction) -> Result<ExitCode> {
    match action {
        UserAction::Add {
            users,
            name,
            role,
            region,
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            crate::access::users::add(
                &users,
                &name,
                Role::parse(&role)?,
                region.as_deref(),
                password.trim_end_matches(['\r', '\n']),
            )?;
            println!("user {name} ({role}) written to {}", users.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token(action: TokenAction) -> Result<ExitCode> {
    match action {
        TokenAction::Create {
            lake,
            name,
            role,
            region,
        } => {
            let lake = Lake::open(&lake).await?;
            let (token, info) =
                tokens::create(&lake, &name, Role::parse(&role)?, region.as_deref()).await?;
            eprintln!(
                "token {} for '{}' (role {}, region {}) — shown once, store it now:",
                info.token_id,
                info.name,
                info.role,
                info.region.as_deref().unwrap_or("all")
            );
            println!("{token}");
        }
        TokenAction::List { lake } => {
            let lake = Lake::open(&lake).await?;
            let mut t = output::table(vec![
                "id",
                "name 名称",
                "role 角色",
                "region 区划",
                "created 创建",
                "revoked 已撤销",
            ]);
            for i in tokens::list(&lake).await? {
                t.add_row(vec![
                    i.token_id,
                    i.name,
                    i.role,
                    i.region.unwrap_or_else(|| "all".into()),
                    i.created_at,
                    if i.revoked { "yes" } else { "" }.into(),
                ]);
            }
            println!("{t}");
        }
        TokenAction::Revoke { lake, token_id } => {
            let lake = Lake::open(&lake).await?;
            tokens::revoke(&lake, &token_id).await?;
            println!("token {token_id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn deliver(
    pipeline: Option<std::path::PathBuf>,
    lake: Option<String>,
    url: Option<String>,
    retry_within: u64,
    requeue: bool,
    status: bool,
) -> Result<ExitCode> {
    let pipeline = pipeline.as_deref().map(Pipeline::load).transpose()?;
    let location = lake
        .or_else(|| pipeline.as_ref().map(Pipeline::lake_location))
        .context("give --lake or --pipeline")?;
    let lake = Lake::open(&location).await?;
    if status {
        let (s, items) = crate::deliver::status(&lake).await?;
        println!("{}", serde_json::to_string_pretty(&s)?);
        for i in items
            .iter()
            .filter(|i| i.state.name() != crate::deliver::outbox::DELIVERED)
            .take(20)
        {
            println!(
                "{} {} {} attempts={} {}",
                i.idempotency_key,
                i.warning_id,
                i.state.name(),
                i.attempts,
                i.last_error.as_deref().unwrap_or("")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut config: DeliveryConfig =
        match (pipeline.as_ref().and_then(|p| p.delivery.clone()), &url) {
            (Some(c), _) => c,
            (None, Some(u)) => toml::from_str(&format!("url = {}", toml::Value::from(u.as_str())))?,
            (None, None) => bail!(
                "no delivery target: the pipeline has no [delivery] section and no --url was given"
            ),
        };
    if let Some(u) = url {
        config.url = u;
    }
    if requeue {
        println!(
            "{} item(s) made pending again",
            crate::deliver::requeue(&lake).await?
        );
    }
    let report = crate::deliver::pass(&lake, &config, Duration::from_secs(retry_within)).await?;
    report::print_delivery_report(&report);
    Ok(if report.rejected + report.dead > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The lake, linkage settings and the sources to work on (one, or every
/// ingested department source).
async fn open_for_linking(
    lake: &str,
    settings: &Path,
    schemas: &Path,
    source: Option<SourceName>,
) -> Result<(Lake, crate::link::settings::SettingsFile, Vec<SourceName>)> {
    let lake = Lake::open(lake).await?;
    let settings = crate::link::settings::SettingsFile::load(settings)?;
    let sources = match source {
        Some(s) => vec![s],
        None => crate::link::linkable_sources(&lake, schemas, &settings).await?,
    };
    if sources.is_empty() {
        bail!("no department source has been ingested yet");
    }
    Ok((lake, settings, sources))
}

fn exit_code(outcomes: &[FileOutcome]) -> ExitCode {
    if outcomes.iter().any(|o| o.result.is_err()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
