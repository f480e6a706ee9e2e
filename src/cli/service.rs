//! The long-running service and its companions: `serve` (schedule, HTTP
//! API, push delivery), `deliver` (one pass) and `token` (API tokens).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::{output, run_stages, today};
use crate::access::{Role, tokens};
use crate::config::Pipeline;
use crate::deliver::{DeliveryConfig, DeliveryReport};
use crate::lake::Lake;
use crate::pipeline::lock::RunLock;

/// How often `serve` looks for outbox items to push.
const DELIVERY_POLL: Duration = Duration::from_secs(10);

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

pub fn user(action: UserAction) -> Result<ExitCode> {
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
            crate::sql_endpoint::users::add(
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

pub async fn token(action: TokenAction) -> Result<ExitCode> {
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

pub fn print_delivery_report(r: &DeliveryReport) {
    println!(
        "delivery 推送: {} delivered, {} to retry, {} rejected, {} dead-lettered, {} waiting",
        r.delivered, r.retried, r.rejected, r.dead, r.waiting
    );
    for e in r.errors.iter().take(5) {
        println!("  {e}");
    }
}

pub async fn deliver(
    pipeline: Option<PathBuf>,
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
            .filter(|i| i.state.name() != "delivered")
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
    print_delivery_report(&report);
    Ok(if report.rejected + report.dead > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The service: the scheduler, the HTTP API and the delivery loop, until
/// SIGTERM or Ctrl-C; a running stage finishes first.
pub async fn serve(
    pipeline: &Path,
    lake: Option<String>,
    listen: Option<String>,
    sql_listen: Option<String>,
) -> Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};

    let pipeline = Pipeline::load(pipeline)?;
    let schedule = crate::serve::schedule::Schedule::parse(&pipeline.schedule)?;
    let lake = Lake::open(&lake.unwrap_or_else(|| pipeline.lake_location())).await?;
    let address = listen.unwrap_or_else(|| pipeline.api.listen.clone());
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address} for the HTTP API"))?;
    let sql = match &pipeline.sql {
        Some(config) => Some(
            crate::sql_endpoint::bind(
                config,
                |p| pipeline.resolve(p),
                lake.clone(),
                pipeline.schemas_dir(),
                sql_listen,
            )
            .await?,
        ),
        None if sql_listen.is_some() => {
            bail!("--sql-listen needs a [sql] section in the pipeline file")
        }
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (stopped_tx, stopped_rx) = tokio::sync::watch::channel(false);
    {
        let stop = stop.clone();
        let mut term = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("shutdown requested");
            stop.store(true, Ordering::SeqCst);
            let _ = stopped_tx.send(true);
        });
    }
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let state = crate::api::AppState::new(lake.clone(), pipeline.schemas_dir());
    let api = tokio::spawn(crate::api::serve(
        listener,
        state,
        stopped(stopped_rx.clone()),
    ));
    let sql = sql.map(|(listener, shared)| {
        tokio::spawn(crate::sql_endpoint::serve(
            listener,
            shared,
            stopped(stopped_rx.clone()),
        ))
    });

    let delivery = pipeline.delivery.clone().map(|config| {
        let (lake, rx) = (lake.clone(), stopped_rx.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = crate::deliver::pass(&lake, &config, Duration::ZERO).await {
                    tracing::error!("delivery pass failed: {e:#}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(DELIVERY_POLL) => {}
                    _ = stopped(rx.clone()) => break,
                }
            }
        })
    });

    let last_run = last_run_start(&lake, &pipeline.name).await?;
    let mut due_now = schedule.missed(last_run, chrono::Utc::now());
    if let Some(due) = due_now {
        tracing::info!(scheduled = %due.with_timezone(&crate::serve::schedule::china()), "catching up a missed run");
    }
    while !stop.load(Ordering::SeqCst) {
        if due_now.take().is_none() {
            let next = schedule.next_after(chrono::Utc::now());
            match next {
                Some(next) => {
                    tracing::info!(next = %next.with_timezone(&crate::serve::schedule::china()), "waiting for the next scheduled run")
                }
                None => tracing::info!("no schedule: serving the API only"),
            }
            let wait = next.map_or(Duration::MAX, |n| {
                (n - chrono::Utc::now()).to_std().unwrap_or_default()
            });
            tokio::select! {
                _ = tokio::time::sleep(wait.min(Duration::from_secs(365 * 86400))) => {}
                _ = stopped(stopped_rx.clone()) => break,
            }
            if next.is_none() {
                continue;
            }
        }
        let holder = format!("safetynet serve {}", pipeline.name);
        match RunLock::acquire(&lake, &holder, Duration::from_secs(3600)).await {
            Ok(lock) => {
                if let Err(e) = run_stages(&pipeline, &lake, today(), &stop).await {
                    tracing::error!("run failed: {e:#}");
                }
                lock.release().await?;
            }
            Err(e) => tracing::error!("scheduled run skipped: {e:#}"),
        }
    }
    if let Some(d) = delivery {
        let _ = d.await;
    }
    api.await??;
    if let Some(sql) = sql {
        sql.await??;
    }
    tracing::info!("service stopped");
    Ok(ExitCode::SUCCESS)
}
/// When the last run of this pipeline started, from the `runs` table.
pub async fn last_run_start(
    lake: &Lake,
    pipeline: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    let ctx = lake.session().await?;
    if !ctx.table_exist(crate::pipeline::runs::RUNS)? {
        return Ok(None);
    }
    let micros = crate::lake::query::scalar_i64(
        &ctx,
        &format!(
            "SELECT CAST(max(started_at) AS BIGINT) FROM runs WHERE pipeline = '{}'",
            pipeline.replace('\'', "''")
        ),
    )
    .await?;
    Ok((micros > 0)
        .then(|| chrono::DateTime::from_timestamp_micros(micros))
        .flatten())
}
