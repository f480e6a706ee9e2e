//! Sessions over the lake: [`new_context`] is the one place a DataFusion
//! `SessionContext` is built; [`session`] opens the lake's tables into one
//! (every command does this once); [`SharedTables`] opens them once for a
//! long-running service and builds any number of sessions from that one
//! snapshot without touching storage, refreshing the tables whose version
//! changed.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use datafusion::catalog::TableProvider;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{JoinType, SessionConfig, SessionContext, col, lit};
use deltalake::DeltaTable;
use deltalake::delta_datafusion::planner::DeltaPlanner;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};

use super::Lake;
use super::files::{self, Scan};
use super::tables::BATCHES;
use crate::distributed;

/// Tables opened at once: each open lists the table's log, and on a local
/// disk every listing holds a thread of the runtime's blocking pool. Many
/// sessions opening every table at once is what once exhausted that pool
/// and froze the service.
const OPEN_AT_ONCE: usize = 4;

/// Memory DataFusion may use before it spills to disk: half of the
/// machine's memory (4 GB when it cannot be read), or
/// SAFETYNET_MEMORY_LIMIT_MB. Hash joins cannot spill in DataFusion 55, so
/// the warning rules at province scale (millions of linked records joined
/// to millions of households) need more than a fixed 4 GB.
pub fn memory_limit_bytes() -> Result<usize> {
    const MB: usize = 1024 * 1024;
    match std::env::var("SAFETYNET_MEMORY_LIMIT_MB") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(mb) if mb > 0 => Ok(mb * MB),
            _ => {
                anyhow::bail!("SAFETYNET_MEMORY_LIMIT_MB must be a number of megabytes, not '{v}'")
            }
        },
        Err(_) => Ok(half_of_memory().unwrap_or(4096 * MB)),
    }
}

/// Half of MemTotal from /proc/meminfo (Linux), at least 1 GB.
fn half_of_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kb * 1024 / 2).max(1024 * 1024 * 1024))
}

/// Directories under the root that hold a `_delta_log`.
pub async fn table_names(lake: &Lake) -> Result<Vec<String>> {
    let listing = lake
        .store
        .list_with_delimiter(Some(&lake.prefix))
        .await
        .with_context(|| format!("cannot list lake {}", lake.root))?;
    let checks: Vec<BoxFuture<'_, Result<Option<String>>>> = listing
        .common_prefixes
        .iter()
        .map(|dir| {
            let name = dir.filename().unwrap_or_default().to_string();
            async move { Ok(lake.table_exists(&name).await?.then_some(name)) }.boxed()
        })
        .collect();
    let mut names: Vec<String> = futures::stream::iter(checks)
        .buffer_unordered(OPEN_AT_ONCE)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    names.sort();
    Ok(names)
}

/// A new, empty session with `memory_limit` bytes before spilling, every
/// safetynet function registered, and delta-rs's planner (so a query's plan
/// can be the input of a Delta write). Every session of the program is
/// made here, planning for this process's engine ([`distributed`]).
pub fn new_context(memory_limit: usize) -> Result<SessionContext> {
    new_context_for(memory_limit, &distributed::current()?, Vec::new())
}

/// As [`new_context`], planning for `engine`; a query that reads one of
/// `local_only` is planned on this process.
fn new_context_for(
    memory_limit: usize,
    engine: &distributed::Engine,
    local_only: Vec<distributed::LocalOnlyTable>,
) -> Result<SessionContext> {
    // Greedy, as DataFusion's default: a fair pool (spilling operators
    // share what the others leave) made a 100,000-household link twice as
    // slow by spilling early. The top consumers are named when memory runs
    // out.
    let pool = TrackConsumersPool::new(
        GreedyMemoryPool::new(memory_limit),
        NonZeroUsize::new(5).expect("non-zero"),
    );
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(pool))
        .build_arc()?;
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
    let builder = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime);
    let state = distributed::plan_for(planning_locally(builder), engine, local_only)?.build();
    let ctx = SessionContext::new_with_state(state);
    crate::functions::register_all(&ctx)?;
    Ok(ctx)
}

/// `builder` planning on this process, with delta-rs's planner so that a
/// query's plan can be the input of a Delta write. The distributed
/// planner, when there are workers, wraps this one.
pub fn planning_locally(builder: SessionStateBuilder) -> SessionStateBuilder {
    builder.with_query_planner(DeltaPlanner::new())
}

/// A session over `tables` with `memory_limit` bytes, planning for this
/// process's engine; a query that reads a table only this process can
/// read (it needs the Delta reader, which workers cannot run) runs here,
/// and the log says which table and why.
fn context_over(tables: &BTreeMap<String, Opened>, memory_limit: usize) -> Result<SessionContext> {
    let local_only = tables
        .iter()
        .filter_map(|(name, t)| {
            t.local_only
                .as_ref()
                .map(|why| distributed::LocalOnlyTable {
                    name: name.clone(),
                    version: t.version(),
                    why: why.clone(),
                    provider: t.provider.clone(),
                })
        })
        .collect();
    let ctx = new_context_for(memory_limit, &distributed::current()?, local_only)?;
    register(&ctx, tables)?;
    Ok(ctx)
}

/// One opened table: its log at one version and its scan.
#[derive(Clone)]
struct Opened {
    table: DeltaTable,
    provider: Arc<dyn TableProvider>,
    /// Why the table can only be read on this process, when it cannot be
    /// read by workers ([`files::TableScan::local_only`]).
    local_only: Option<String>,
}

impl Opened {
    /// The table with the `scan` asked for ([`files::provider_for`]).
    async fn new(table: DeltaTable, scan: Scan, distributed: bool) -> Result<Opened> {
        let scan = files::provider_for(&table, scan, distributed).await?;
        Ok(Opened {
            table,
            provider: scan.provider,
            local_only: scan.local_only,
        })
    }

    fn version(&self) -> Option<u64> {
        self.table.version()
    }
}

/// Opening (or refreshing) one table, which may turn out not to exist.
type Opening<'a> = BoxFuture<'a, Result<(String, Option<Opened>)>>;

/// Open the named tables' logs, a few at a time.
async fn open_tables(lake: &Lake, names: Vec<String>) -> Result<BTreeMap<String, Opened>> {
    let engine = distributed::current()?;
    let scan = Scan::for_engine(&engine)?;
    let distributed = engine.is_distributed();
    let opens: Vec<Opening<'_>> = names
        .into_iter()
        .map(|name| {
            async move {
                let table = match lake.table(&name).await? {
                    Some(t) => Some(Opened::new(t, scan, distributed).await?),
                    None => None,
                };
                Ok((name, table))
            }
            .boxed()
        })
        .collect();
    let opened: Vec<(String, Option<Opened>)> = futures::stream::iter(opens)
        .buffer_unordered(OPEN_AT_ONCE)
        .try_collect()
        .await?;
    Ok(opened
        .into_iter()
        .filter_map(|(name, t)| t.map(|t| (name, t)))
        .collect())
}

/// Register `tables` in `ctx`: `staged_*` and `quarantine_*` show
/// committed batches only.
fn register(ctx: &SessionContext, tables: &BTreeMap<String, Opened>) -> Result<()> {
    let batches = tables.get(BATCHES).map(|b| b.provider.clone());
    for (name, opened) in tables {
        opened.table.update_datafusion_session(&ctx.state())?;
        let provider = match batch_source(name) {
            Some(source) => committed_view(ctx, opened.provider.clone(), batches.clone(), &source)?,
            None => opened.provider.clone(),
        };
        ctx.register_table(name.as_str(), provider)
            .with_context(|| format!("cannot register table {name}"))?;
    }
    Ok(())
}

/// The session every command uses: every table, or only `only` when given.
pub async fn session(lake: &Lake, only: Option<&[&str]>) -> Result<SessionContext> {
    session_with_memory(lake, only, memory_limit_bytes()?).await
}

/// As [`session`], with its own memory limit.
pub async fn session_with_memory(
    lake: &Lake,
    only: Option<&[&str]>,
    memory_limit: usize,
) -> Result<SessionContext> {
    let mut names = table_names(lake).await?;
    if let Some(only) = only {
        // `batches` gates the staged and quarantined rows it names.
        let gated = only.iter().any(|o| batch_source(o).is_some());
        names.retain(|n| only.contains(&n.as_str()) || (gated && n == BATCHES));
    }
    let tables = open_tables(lake, names).await?;
    let ctx = context_over(&tables, memory_limit)?;
    if let Some(only) = only
        && !only.contains(&BATCHES)
    {
        let _ = ctx.deregister_table(BATCHES);
    }
    Ok(ctx)
}

/// For `staged_x` / `quarantine_x`, the source `x` whose batches gate them.
fn batch_source(table: &str) -> Option<super::tables::SourceName> {
    super::tables::source_of_staged(table).or_else(|| super::tables::source_of_quarantine(table))
}

/// `table` restricted to rows whose batch has a row in `batches`: rows of a
/// batch whose ingest was interrupted stay invisible until a later run
/// replaces them and commits the batch.
pub fn committed_view(
    ctx: &SessionContext,
    table: Arc<dyn TableProvider>,
    batches: Option<Arc<dyn TableProvider>>,
    source: &str,
) -> Result<Arc<dyn TableProvider>> {
    let rows = ctx.read_table(table)?;
    let view = match batches {
        Some(batches) => {
            let committed = ctx
                .read_table(batches)?
                .filter(col("source").eq(lit(source)))?
                .select(vec![col("batch_id").alias("committed_batch_id")])?;
            rows.join(
                committed,
                JoinType::LeftSemi,
                &["batch_id"],
                &["committed_batch_id"],
                None,
            )?
        }
        None => rows.filter(lit(false))?,
    };
    Ok(view.into_view())
}

/// The lake's tables as of one moment.
pub struct Snapshot {
    taken: Instant,
    tables: BTreeMap<String, Opened>,
}

impl Snapshot {
    /// The tables' names.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// The version of a table in this snapshot (None: not in the lake).
    pub fn version_of(&self, name: &str) -> Option<u64> {
        self.tables.get(name).and_then(Opened::version)
    }

    /// A session over this snapshot with `memory_limit` bytes; no storage
    /// is read until a query runs.
    pub fn session(&self, memory_limit: usize) -> Result<SessionContext> {
        context_over(&self.tables, memory_limit)
    }
}

/// The lake's tables opened once and shared by every session a service
/// builds (each SQL connection, API call and console page). A snapshot
/// younger than `max_age` is handed out as it is; an older one is
/// refreshed by one caller at a time (the others wait for it, they do not
/// open the tables again), reopening only the tables whose version changed.
pub struct SharedTables {
    lake: Lake,
    max_age: Duration,
    current: RwLock<Option<Arc<Snapshot>>>,
    refreshing: tokio::sync::Mutex<()>,
    /// Set by [`SharedTables::invalidate`]: the next caller refreshes.
    stale: std::sync::atomic::AtomicBool,
}

impl SharedTables {
    /// Tables of `lake`, refreshed at most every `max_age`.
    pub fn new(lake: Lake, max_age: Duration) -> SharedTables {
        SharedTables {
            lake,
            max_age,
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            stale: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The lake these tables are of.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    fn fresh(&self) -> Option<Arc<Snapshot>> {
        if self.stale.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        self.current
            .read()
            .ok()?
            .as_ref()
            .filter(|s| s.taken.elapsed() < self.max_age)
            .cloned()
    }

    /// A snapshot no older than `max_age`.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        self.stale.store(false, std::sync::atomic::Ordering::SeqCst);
        let previous = self.current.read().ok().and_then(|c| c.clone());
        let next = Arc::new(self.refresh(previous.as_deref()).await?);
        if let Ok(mut slot) = self.current.write() {
            *slot = Some(next.clone());
        }
        Ok(next)
    }

    /// Reopen what changed since `previous`: new tables are opened, tables
    /// whose log has a newer version are brought up to it, the rest are
    /// kept as they were.
    async fn refresh(&self, previous: Option<&Snapshot>) -> Result<Snapshot> {
        let started = Instant::now();
        let names = table_names(&self.lake).await?;
        let lake = &self.lake;
        let engine = distributed::current()?;
        let scan = Scan::for_engine(&engine)?;
        let distributed = engine.is_distributed();
        let refreshes: Vec<Opening<'_>> = names
            .into_iter()
            .map(|name| {
                async move {
                    let known = previous.and_then(|p| p.tables.get(&name)).cloned();
                    let opened = match known {
                        Some(known) => {
                            let latest =
                                known.table.get_latest_version().await.with_context(|| {
                                    format!("cannot read the log of lake table {name}")
                                })?;
                            if Some(latest) == known.version() {
                                Some(known)
                            } else {
                                let mut table = known.table.clone();
                                table
                                    .update_incremental(None)
                                    .await
                                    .with_context(|| format!("cannot refresh lake table {name}"))?;
                                Some(Opened::new(table, scan, distributed).await?)
                            }
                        }
                        None => match lake.table(&name).await? {
                            Some(t) => Some(Opened::new(t, scan, distributed).await?),
                            None => None,
                        },
                    };
                    Ok((name, opened))
                }
                .boxed()
            })
            .collect();
        let tables: Vec<(String, Option<Opened>)> = futures::stream::iter(refreshes)
            .buffer_unordered(OPEN_AT_ONCE)
            .try_collect()
            .await?;
        let tables: BTreeMap<String, Opened> = tables
            .into_iter()
            .filter_map(|(n, t)| t.map(|t| (n, t)))
            .collect();
        tracing::debug!(
            tables = tables.len(),
            seconds = started.elapsed().as_secs_f64(),
            "lake snapshot refreshed"
        );
        Ok(Snapshot {
            taken: Instant::now(),
            tables,
        })
    }

    /// A session over the current snapshot.
    pub async fn session(&self, memory_limit: usize) -> Result<SessionContext> {
        self.snapshot().await?.session(memory_limit)
    }

    /// Forget the current snapshot: the next caller reads the logs again
    /// (after a write of one's own that must show at once).
    pub fn invalidate(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn one_row(v: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
    }

    async fn count(ctx: &SessionContext, table: &str) -> i64 {
        crate::lake::query::scalar_i64(ctx, &format!("SELECT count(*) FROM {table}"))
            .await
            .unwrap()
    }

    /// Sessions share one snapshot; a commit shows once the snapshot is
    /// older than its age limit, and a new table appears too.
    #[tokio::test]
    async fn shared_tables_refresh_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
        let schema = one_row(0).schema();
        lake.append("t", &schema, vec![one_row(1)]).await.unwrap();
        let shared = SharedTables::new(lake.clone(), Duration::from_millis(200));
        let a = shared.snapshot().await.unwrap();
        let b = shared.snapshot().await.unwrap();
        assert!(Arc::ptr_eq(&a, &b), "a fresh snapshot is shared");
        lake.append("t", &schema, vec![one_row(2)]).await.unwrap();
        lake.append("u", &schema, vec![one_row(3)]).await.unwrap();
        let ctx = shared.session(64 << 20).await.unwrap();
        assert_eq!(count(&ctx, "t").await, 1, "still the shared snapshot");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let ctx = shared.session(64 << 20).await.unwrap();
        assert_eq!(count(&ctx, "t").await, 2);
        assert_eq!(count(&ctx, "u").await, 1);
    }

    /// Many callers at once open the tables once, not once each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).await.unwrap();
        let schema = one_row(0).schema();
        for t in ["a", "b", "c", "d", "e", "f"] {
            lake.append(t, &schema, vec![one_row(1)]).await.unwrap();
        }
        let shared = Arc::new(SharedTables::new(lake, Duration::from_secs(60)));
        let calls: Vec<_> = (0..200)
            .map(|_| {
                let shared = shared.clone();
                tokio::spawn(async move { shared.snapshot().await.unwrap() })
            })
            .collect();
        let mut snapshots = Vec::new();
        for c in calls {
            snapshots.push(c.await.unwrap());
        }
        assert!(snapshots.iter().all(|s| Arc::ptr_eq(s, &snapshots[0])));
        assert_eq!(snapshots[0].table_names().count(), 6);
    }
}
