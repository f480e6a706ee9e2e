//! Running the lake's queries on several machines, with
//! datafusion-distributed (the choice and its reasons: docs/distributed.md).
//!
//! The engine is chosen once per process: `--workers` on the command line,
//! else `[engine] workers` in the pipeline file, else `SAFETYNET_WORKERS`.
//! No workers means the local engine, the default. With workers, every
//! session this process builds ([`crate::lake::catalog::new_context`])
//! plans its queries with the distributed planner, which sends stages to
//! the workers; the head of each plan, and every Delta commit, stays on
//! this process (the coordinator). The lake's tables are then read as the
//! Parquet files of their snapshot, the scan the workers can run
//! ([`crate::lake::files`]).
//!
//! Workers are `safetynet worker` processes ([`worker`]).

mod per_query;
pub mod wire;
pub mod worker;
pub mod writes;

pub use per_query::LocalOnlyTable;

use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use datafusion::common::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion_distributed::{DistributedExt, SessionStateBuilderExt, WorkerResolver};
use url::Url;

/// The variable that lists the workers.
pub const WORKERS_VARIABLE: &str = "SAFETYNET_WORKERS";

/// Where queries run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// In this process only: the default.
    Local,
    /// Stages on these workers, the head of each plan here.
    Distributed {
        /// The workers' addresses.
        workers: Vec<Url>,
        /// Parquet bytes one worker task scans, from
        /// `SAFETYNET_BYTES_PER_TASK`; `None` keeps the engine's 16 MiB.
        bytes_per_task: Option<usize>,
    },
}

impl Engine {
    /// The engine for a list of worker addresses (`http://host:port`,
    /// separated by commas; `host:port` means `http://host:port`). An empty
    /// list is the local engine.
    pub fn with_workers<S: AsRef<str>>(workers: &[S]) -> Result<Engine> {
        let workers = workers
            .iter()
            .flat_map(|w| w.as_ref().split(','))
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(worker_url)
            .collect::<Result<Vec<_>>>()?;
        Ok(if workers.is_empty() {
            Engine::Local
        } else {
            Engine::Distributed {
                workers,
                bytes_per_task: bytes_per_task_from_env()?,
            }
        })
    }

    /// From `SAFETYNET_WORKERS`.
    pub fn from_env() -> Result<Engine> {
        let listed = std::env::var(WORKERS_VARIABLE).unwrap_or_default();
        Engine::with_workers(&[listed]).with_context(|| format!("in {WORKERS_VARIABLE}"))
    }

    /// Whether queries go to workers.
    pub fn is_distributed(&self) -> bool {
        matches!(self, Engine::Distributed { .. })
    }
}

/// A worker's address as a URL, checked.
fn worker_url(address: &str) -> Result<Url> {
    let text = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let url = Url::parse(&text).with_context(|| format!("bad worker address '{address}'"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("bad worker address '{address}': give http://host:port");
    }
    if url.port_or_known_default().is_none() {
        bail!("bad worker address '{address}': give the port, as http://host:port");
    }
    Ok(url)
}

static ENGINE: OnceLock<Engine> = OnceLock::new();

/// Choose this process's engine, before its first session. Choosing the
/// same engine again is allowed; another one is refused, as sessions
/// already built would disagree with later ones.
pub fn choose(engine: Engine) -> Result<()> {
    let chosen = ENGINE.get_or_init(|| engine.clone());
    if *chosen != engine {
        bail!("the engine was already chosen ({chosen:?}); cannot switch to {engine:?}");
    }
    Ok(())
}

/// The engine chosen so far, if any.
pub fn chosen() -> Option<Engine> {
    ENGINE.get().cloned()
}

/// This process's engine: the one chosen, else `SAFETYNET_WORKERS`'s.
pub fn current() -> Result<Engine> {
    if let Some(engine) = ENGINE.get() {
        return Ok(engine.clone());
    }
    let engine = Engine::from_env()?;
    Ok(ENGINE.get_or_init(|| engine).clone())
}

/// The variable that sets how many bytes of Parquet one worker task
/// scans (default 16 MiB, the engine's). Smaller spreads small tables over
/// more tasks; the tests set 1 so that even a small lake reaches the
/// workers.
pub const BYTES_PER_TASK_VARIABLE: &str = "SAFETYNET_BYTES_PER_TASK";

/// `SAFETYNET_BYTES_PER_TASK`, checked: a positive number of bytes.
fn bytes_per_task_from_env() -> Result<Option<usize>> {
    let Ok(value) = std::env::var(BYTES_PER_TASK_VARIABLE) else {
        return Ok(None);
    };
    let bytes = value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|b| *b > 0)
        .with_context(|| {
            format!("{BYTES_PER_TASK_VARIABLE} must be a number of bytes, not '{value}'")
        })?;
    Ok(Some(bytes))
}

/// `builder` planning for `engine`: unchanged for the local engine; for
/// workers, the distributed planner (which wraps the query planner set
/// before it, so Delta writes still plan) and the worker list. A query
/// that reads one of `local_only` is planned with the query planner set
/// before, on this process ([`per_query`]).
pub fn plan_for(
    mut builder: SessionStateBuilder,
    engine: &Engine,
    local_only: Vec<LocalOnlyTable>,
) -> Result<SessionStateBuilder> {
    let Engine::Distributed {
        workers,
        bytes_per_task,
    } = engine
    else {
        return Ok(builder);
    };
    let local = builder.query_planner().clone();
    let builder = builder
        .with_distributed_worker_resolver(Workers(workers.clone()))
        .with_distributed_planner();
    let mut builder = match bytes_per_task {
        Some(bytes) => builder.with_distributed_file_scan_config_bytes_per_partition(*bytes)?,
        None => builder,
    };
    if local_only.is_empty() {
        return Ok(builder);
    }
    let (Some(local), Some(distributed)) = (local, builder.query_planner().clone()) else {
        bail!("a session with workers needs its local query planner set first");
    };
    Ok(
        builder.with_query_planner(std::sync::Arc::new(per_query::PerQuery {
            local,
            distributed,
            tables: local_only,
        })),
    )
}

/// The fixed list of workers the coordinator sends stages to.
#[derive(Clone)]
struct Workers(Vec<Url>);

impl WorkerResolver for Workers {
    fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
        Ok(self.0.clone())
    }
}

/// How datafusion-distributed names a worker it could not reach.
const WORKER_UNREACHED: &str = "Distributed DataFusion worker on '";

/// When `error` is a worker that could not be reached, one line for the
/// user: what was being done, which worker, why; the engine's own error
/// repeats the transport failure once per task that met it.
pub fn unreachable_worker(error: &anyhow::Error) -> Option<String> {
    let full = format!("{error:#}");
    let after = &full[full.find(WORKER_UNREACHED)? + WORKER_UNREACHED.len()..];
    let url = &after[..after.find('\'')?];
    let reason = if full.contains("Connection refused") {
        "connection refused: it is not running"
    } else {
        "the connection broke: it stopped or the network failed"
    };
    let doing: Vec<String> = error
        .chain()
        .map(ToString::to_string)
        .take_while(|m| !m.contains("tonic::") && !m.contains(WORKER_UNREACHED))
        .collect();
    let mut line = doing.join(": ");
    if !line.is_empty() {
        line.push_str(": ");
    }
    line.push_str(&format!("the worker at {url} cannot be reached ({reason})"));
    Some(line)
}

/// What to do about an unreachable worker.
pub const UNREACHABLE_WORKER_HINT: &str = "hint: start that worker again, or leave it out of --workers \
    or SAFETYNET_WORKERS, then rerun: tables committed so far are kept, and the rerun completes \
    the rest (工作节点无法连接：请重启该节点或将其移出工作节点列表后重新运行)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_workers_is_the_local_engine() {
        assert_eq!(Engine::with_workers::<&str>(&[]).unwrap(), Engine::Local);
        assert_eq!(Engine::with_workers(&[" , "]).unwrap(), Engine::Local);
    }

    #[test]
    fn workers_are_listed_by_commas_or_repeats() {
        let engine =
            Engine::with_workers(&["127.0.0.1:7001, http://10.0.0.2:7002", "h3:7003"]).unwrap();
        let Engine::Distributed { workers, .. } = engine else {
            panic!("distributed")
        };
        let urls: Vec<String> = workers.iter().map(Url::to_string).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:7001/",
                "http://10.0.0.2:7002/",
                "http://h3:7003/"
            ]
        );
    }

    #[test]
    fn an_unreachable_worker_is_told_in_one_line() {
        let engine = DataFusionError::Execution(format!(
            "{WORKER_UNREACHED}http://127.0.0.1:7722/': transport error: \
             tonic::transport::Error(Transport, ConnectError(\"tcp connect error\", \
             Os {{ code: 111, message: \"Connection refused\" }}))"
        ));
        let error = anyhow::Error::new(engine)
            .context("computing r")
            .context("stage link failed");
        assert_eq!(
            unreachable_worker(&error).unwrap(),
            "stage link failed: computing r: the worker at http://127.0.0.1:7722/ cannot be \
             reached (connection refused: it is not running)"
        );
        let other = anyhow::anyhow!("tonic::transport::Error").context("computing r");
        assert_eq!(unreachable_worker(&other), None, "no worker named");
    }

    #[test]
    fn a_bad_worker_address_is_refused_by_name() {
        for bad in ["ftp://h:1", "http://", "not a url:x"] {
            let err = Engine::with_workers(&[bad]).unwrap_err();
            assert!(
                format!("{err:#}").contains("bad worker address"),
                "{bad}: {err:#}"
            );
        }
    }
}
