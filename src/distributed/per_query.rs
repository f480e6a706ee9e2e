//! Where each query runs when some of the lake's tables can only be read
//! on this process: those that need the Delta reader, which workers cannot
//! run ([`crate::lake::files`]). A query that reads such a table is planned
//! here, and the log says which table and why; every other query of the
//! same session still goes to the workers. One partitioned table in a lake
//! therefore does not keep the linking and warning queries off the workers.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;

/// A table the workers cannot read.
#[derive(Debug, Clone)]
pub struct LocalOnlyTable {
    /// Its name in the session.
    pub name: String,
    /// Its version, so the log says it once per version.
    pub version: Option<u64>,
    /// Why workers cannot read it.
    pub why: String,
    /// Its scan as registered: a query's plan names the table by this.
    pub provider: Arc<dyn TableProvider>,
}

/// Plans with `local` a query that reads one of `tables`, else with
/// `distributed`.
#[derive(Debug)]
pub(super) struct PerQuery {
    pub(super) local: Arc<dyn QueryPlanner + Send + Sync>,
    pub(super) distributed: Arc<dyn QueryPlanner + Send + Sync>,
    pub(super) tables: Vec<LocalOnlyTable>,
}

impl PerQuery {
    /// The first of the tables that `plan` (or a subquery of it) scans.
    /// Views are already inlined into the plan the planner is given, so a
    /// table read through one (`staged_*` reads `batches`) is found too.
    fn local_only_table_in(&self, plan: &LogicalPlan) -> Option<&LocalOnlyTable> {
        let mut found = None;
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Ok(provider) = source_as_provider(&scan.source)
                && let Some(table) = self
                    .tables
                    .iter()
                    .find(|t| std::ptr::addr_eq(Arc::as_ptr(&t.provider), Arc::as_ptr(&provider)))
            {
                found = Some(table);
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        found
    }
}

#[async_trait]
impl QueryPlanner for PerQuery {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        match self.local_only_table_in(plan) {
            Some(table) => {
                if first_time(table) {
                    tracing::warn!(
                        "table {} cannot be read by workers ({}): queries over it run on this \
                         process, not on the workers",
                        table.name,
                        table.why
                    );
                }
                self.local.create_physical_plan(plan, session).await
            }
            None => self.distributed.create_physical_plan(plan, session).await,
        }
    }
}

/// True the first time this process plans a query over `table` at its
/// version: a service plans many queries, and its log should say so once
/// per version of the table, not per query.
fn first_time(table: &LocalOnlyTable) -> bool {
    static SEEN: Mutex<BTreeSet<(String, Option<u64>)>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    seen.insert((table.name.clone(), table.version))
}
