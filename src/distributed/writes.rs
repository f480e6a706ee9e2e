//! Delta writes under the distributed engine.
//!
//! delta-rs plans a write's input inside its own write plan. Handed to the
//! distributed planner as it is, that plan stalls once the input is cut
//! into many tasks: the workers wait for stage plans the coordinator never
//! sends (seen as "Worker::execute_task timed-out while waiting for the
//! plan to be set by the coordinator"). So with workers the input runs as
//! its own distributed query, and the write reads that query's stream in a
//! local plan on the coordinator, which commits as before.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{DataFusionError, exec_err};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::provider_as_source;
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use datafusion_distributed::get_distributed_worker_resolver;
use futures::{StreamExt, TryStreamExt};

/// The input plan and session a Delta write of `plan` should use: as they
/// are locally; with workers, a scan of `plan`'s distributed result and a
/// session that plans locally (see the module).
pub fn write_input(ctx: &SessionContext, plan: LogicalPlan) -> Result<(LogicalPlan, SessionState)> {
    // The session's own planning decides, not the process's engine: a
    // session over a table only this process can read plans locally.
    let state = ctx.state();
    if get_distributed_worker_resolver(state.config()).is_err() {
        return Ok((plan, state));
    }
    let result = DataFrame::new(ctx.state(), plan);
    let schema: SchemaRef = Arc::new(result.schema().as_arrow().clone());
    let once = RunOnce {
        schema: schema.clone(),
        query: Mutex::new(Some(result)),
    };
    let table = StreamingTable::try_new(schema, vec![Arc::new(once)])?;
    let input = LogicalPlanBuilder::scan(
        "distributed_result",
        provider_as_source(Arc::new(table)),
        None,
    )?
    .build()?;
    let local =
        crate::lake::catalog::planning_locally(SessionStateBuilder::new_from_existing(ctx.state()))
            .build();
    Ok((input, local))
}

/// A distributed query's result, streamed to the first (and only) reader.
struct RunOnce {
    schema: SchemaRef,
    query: Mutex<Option<DataFrame>>,
}

impl std::fmt::Debug for RunOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("distributed query result")
    }
}

impl PartitionStream for RunOnce {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let query = self.query.lock().ok().and_then(|mut q| q.take());
        let schema = self.schema.clone();
        let batches = futures::stream::once(async move {
            match query {
                Some(query) => query.execute_stream().await,
                None => exec_err!("a distributed write's input was read twice"),
            }
        })
        .try_flatten()
        // The distributed plan may mark a column nullable that the query's
        // own schema (and so the table's) declares NOT NULL; the write
        // compares the two. Relabel each batch with the query's schema,
        // which arrow refuses if a NOT NULL column really holds a null.
        .and_then(move |batch| {
            let relabelled = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                .map_err(DataFusionError::from);
            futures::future::ready(relabelled)
        })
        .boxed();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}
