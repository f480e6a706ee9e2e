//! `safetynet serve`: the long-running service. [`Service::build`] checks
//! the configuration and binds every listener (so tests can start it in
//! process on port 0 and read the addresses); [`Service::run_until_stopped`]
//! runs the pipeline on its schedule (`schedule`), serves the HTTP API
//! (`crate::api`) with the console at `/ui` (`crate::console`) and the
//! PostgreSQL endpoint (`crate::sql_endpoint`), and
//! pushes warning changes (`crate::deliver`) until the shutdown future
//! completes; a running stage finishes first.
//!
//! The service composes the frontends: `api`, `console` and
//! `sql_endpoint` never import it.

pub mod schedule;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::FutureExt;
use futures::future::Shared;

use crate::access::Access;
use crate::config::Pipeline;
use crate::lake::Lake;
use crate::pipeline::{RunOptions, Silent};
use schedule::{Schedule, china};

/// How long the service's shared view of the lake's tables is used before
/// their logs are read again: new runs show within this time.
const SNAPSHOT_AGE: Duration = Duration::from_secs(2);

/// How often the service looks for outbox items to push.
const DELIVERY_POLL: Duration = Duration::from_secs(10);

/// Overrides of the pipeline file's addresses and lake.
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    /// Lake location instead of the pipeline's.
    pub lake: Option<String>,
    /// HTTP API address instead of `[api] listen`.
    pub listen: Option<String>,
    /// PostgreSQL endpoint address instead of `[sql] listen`.
    pub sql_listen: Option<String>,
}

/// A service whose listeners are bound, ready to run.
pub struct Service {
    pipeline: Pipeline,
    lake: Lake,
    access: Access,
    schedule: Schedule,
    api: tokio::net::TcpListener,
    sql: Option<(tokio::net::TcpListener, Arc<crate::sql_endpoint::Shared>)>,
    /// Who may log in to the console: the SQL endpoint's users file.
    users: Option<crate::access::users::Users>,
}

type Stopped = Shared<futures::future::BoxFuture<'static, ()>>;

impl Service {
    /// Check the pipeline, open the lake and bind the listeners. Every
    /// mistake (schedule, users file, TLS files, an address in use) is an
    /// error here, before anything runs.
    pub async fn build(pipeline: Pipeline, options: ServiceOptions) -> Result<Service> {
        let schedule = Schedule::parse(&pipeline.schedule)?;
        let lake = Lake::open(&options.lake.unwrap_or_else(|| pipeline.lake_location())).await?;
        let address = options
            .listen
            .unwrap_or_else(|| pipeline.api.listen.clone());
        let api = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| format!("cannot listen on {address} for the HTTP API"))?;
        let access = Access::new(
            lake.clone(),
            &pipeline.schemas_dir(),
            pipeline.access.clone(),
            SNAPSHOT_AGE,
        )?
        .with_limits(
            pipeline
                .sql
                .as_ref()
                .map_or(crate::access::DEFAULT_SQL_CONNECTIONS, |s| {
                    s.max_connections
                }),
            pipeline.api.max_requests,
        );
        let sql = match &pipeline.sql {
            Some(config) => Some(
                crate::sql_endpoint::bind(
                    config,
                    |p| pipeline.resolve(p),
                    access.clone(),
                    options.sql_listen,
                )
                .await?,
            ),
            None if options.sql_listen.is_some() => {
                bail!("--sql-listen needs a [sql] section in the pipeline file")
            }
            None => None,
        };
        let users = pipeline
            .sql
            .as_ref()
            .map(|config| {
                crate::access::users::Users::load(std::path::Path::new(
                    &pipeline.resolve(&config.users),
                ))
            })
            .transpose()?;
        Ok(Service {
            pipeline,
            lake,
            access,
            schedule,
            api,
            sql,
            users,
        })
    }

    /// Where the HTTP API listens.
    pub fn api_address(&self) -> Result<SocketAddr> {
        Ok(self.api.local_addr()?)
    }

    /// Where the PostgreSQL endpoint listens, when configured.
    pub fn sql_address(&self) -> Result<Option<SocketAddr>> {
        self.sql
            .as_ref()
            .map(|(l, _)| l.local_addr())
            .transpose()
            .map_err(Into::into)
    }

    /// Serve until `shutdown` completes; a running stage finishes first,
    /// then every listener stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Service {
            pipeline,
            lake,
            access,
            schedule,
            api,
            sql,
            users,
        } = self;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped: Stopped = {
            let stop = stop.clone();
            async move {
                shutdown.await;
                tracing::info!("shutdown requested");
                stop.store(true, Ordering::SeqCst);
            }
            .boxed()
            .shared()
        };
        // Listen for the shutdown even while no one else polls it.
        tokio::spawn(stopped.clone());

        // Queries run on a runtime of their own: however many connections
        // and requests are at work, the accept loops and the health checks
        // keep the threads of this one.
        let queries = query_runtime()?;
        let state = crate::api::AppState::new(access).with_queries(queries.handle().clone());
        let console = crate::console::Console::new(state.clone(), users).with_review(
            crate::console::review::ReviewSetup {
                schemas_dir: pipeline.schemas_dir(),
                linkage: pipeline.linkage_path(),
            },
        );
        let app = crate::console::mount(crate::api::router(state), console);
        let api = tokio::spawn(crate::api::serve_router(api, app, stopped.clone()));
        let sql = sql.map(|(listener, shared)| {
            tokio::spawn(crate::sql_endpoint::serve(
                listener,
                shared,
                queries.handle().clone(),
                stopped.clone(),
            ))
        });
        let delivery = pipeline.delivery.clone().map(|config| {
            let (lake, stopped) = (lake.clone(), stopped.clone());
            tokio::spawn(async move {
                loop {
                    if let Err(e) = crate::deliver::pass(&lake, &config, Duration::ZERO).await {
                        tracing::error!("delivery pass failed: {e:#}");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(DELIVERY_POLL) => {}
                        _ = stopped.clone() => break,
                    }
                }
            })
        });

        scheduled_runs(&pipeline, &lake, &schedule, &stop, stopped).await?;

        if let Some(d) = delivery {
            let _ = d.await;
        }
        api.await??;
        if let Some(sql) = sql {
            sql.await??;
        }
        // Connections still open end with the process.
        queries.shutdown_background();
        tracing::info!("service stopped");
        Ok(())
    }
}

/// The runtime that runs queries: one worker per core, twice over, since a
/// query's partitions can hold a worker for seconds without yielding.
fn query_runtime() -> Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads((cores * 2).max(2))
        .thread_name("safetynet-query")
        .enable_all()
        .build()
        .context("cannot start the query runtime")
}

/// Run the pipeline at each scheduled time (catching up a run missed while
/// the service was down) until stopped.
async fn scheduled_runs(
    pipeline: &Pipeline,
    lake: &Lake,
    schedule: &Schedule,
    stop: &Arc<AtomicBool>,
    stopped: Stopped,
) -> Result<()> {
    let last_run = crate::pipeline::runs::last_run_start(lake, &pipeline.name).await?;
    let mut due_now = schedule.missed(last_run, chrono::Utc::now());
    if let Some(due) = due_now {
        tracing::info!(scheduled = %due.with_timezone(&china()), "catching up a missed run");
    }
    while !stop.load(Ordering::SeqCst) {
        if due_now.take().is_none() {
            let next = schedule.next_after(chrono::Utc::now());
            match next {
                Some(next) => {
                    tracing::info!(next = %next.with_timezone(&china()), "waiting for the next scheduled run")
                }
                None => tracing::info!("no schedule: serving the API only"),
            }
            let wait = next.map_or(Duration::MAX, |n| {
                (n - chrono::Utc::now()).to_std().unwrap_or_default()
            });
            tokio::select! {
                _ = tokio::time::sleep(wait.min(Duration::from_secs(365 * 86400))) => {}
                _ = stopped.clone() => break,
            }
            if next.is_none() {
                continue;
            }
        }
        let options = RunOptions {
            as_of: schedule::china_today(),
            wait: Duration::from_secs(3600),
            holder: format!("safetynet serve {}", pipeline.name),
            stop: stop.clone(),
            progress: &Silent,
        };
        match crate::pipeline::run(pipeline, lake, &options).await {
            Ok(report) => match &report.failure {
                Some(f) => tracing::error!("run {} failed: {:#}", report.run_id, f.error),
                None => tracing::info!(run = %report.run_id, "run finished"),
            },
            Err(e) => tracing::error!("scheduled run skipped: {e:#}"),
        }
    }
    Ok(())
}
