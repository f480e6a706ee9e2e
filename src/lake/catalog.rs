//! Registering the lake's tables in one DataFusion session.

use std::num::NonZeroUsize;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::catalog::TableProvider;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{JoinType, SessionConfig, SessionContext, col, lit};
use deltalake::delta_datafusion::planner::DeltaPlanner;
use futures::future::try_join_all;

use super::Lake;
use super::tables::BATCHES;

/// Memory DataFusion may use before it spills to disk: half of the
/// machine's memory (4 GB when it cannot be read), or
/// SAFETYNET_MEMORY_LIMIT_MB. Hash joins cannot spill in DataFusion 55, so
/// the warning rules at province scale (millions of linked records joined
/// to millions of households) need more than a fixed 4 GB.
fn memory_limit_bytes() -> Result<usize> {
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
    let checks = listing.common_prefixes.iter().map(|dir| async move {
        let name = dir.filename().unwrap_or_default().to_string();
        Ok::<_, anyhow::Error>(lake.table_exists(&name).await?.then_some(name))
    });
    let mut names: Vec<String> = try_join_all(checks).await?.into_iter().flatten().collect();
    names.sort();
    Ok(names)
}

/// The session every command uses: every table, or only `only` when given.
pub async fn session(lake: &Lake, only: Option<&[&str]>) -> Result<SessionContext> {
    session_with_memory(lake, only, memory_limit_bytes()?).await
}

/// As [`session`], with its own memory limit (a SQL connection's).
pub async fn session_with_memory(
    lake: &Lake,
    only: Option<&[&str]>,
    memory_limit: usize,
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
    // delta-rs's planner lets a query's plan be the input of a Delta write.
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_query_planner(DeltaPlanner::new())
        .build();
    let ctx = SessionContext::new_with_state(state);
    crate::functions::register_all(&ctx);

    let mut names = table_names(lake).await?;
    if let Some(only) = only {
        names.retain(|n| only.contains(&n.as_str()));
    }
    // Open every table's log at once: sessions are built by every command.
    let tables = try_join_all(names.iter().map(|n| lake.table(n))).await?;
    let batches = match lake.table(BATCHES).await? {
        Some(table) => {
            table.update_datafusion_session(&ctx.state())?;
            Some(table.table_provider().await?)
        }
        None => None,
    };
    for (name, table) in names.into_iter().zip(tables) {
        let Some(table) = table else {
            continue;
        };
        table.update_datafusion_session(&ctx.state())?;
        let provider = table.table_provider().await?;
        let provider = match batch_source(&name) {
            Some(source) => committed_view(&ctx, provider, batches.clone(), source)?,
            None => provider,
        };
        ctx.register_table(name.as_str(), provider)
            .with_context(|| format!("cannot register table {name}"))?;
    }
    Ok(ctx)
}

/// For `staged_x` / `quarantine_x`, the source `x` whose batches gate them.
fn batch_source(table: &str) -> Option<&str> {
    table
        .strip_prefix("staged_")
        .or_else(|| table.strip_prefix("quarantine_"))
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
