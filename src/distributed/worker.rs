//! `safetynet worker`: a process that runs the plan stages a coordinator
//! sends it (datafusion-distributed's `Worker`, a gRPC service).
//!
//! A worker knows what a coordinator's plans use beyond DataFusion's own:
//! every safetynet scalar function and aggregate, registered beside the
//! built-in ones, and the lake's object stores (local files, and `s3://`
//! buckets reached with the same `AWS_*` environment as the coordinator).
//! It holds no state between queries and never writes to the lake.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::common::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion_distributed::{Worker, WorkerQueryContext};
use futures::StreamExt;
use object_store::ObjectStore;
use tonic::transport::server::TcpIncoming;
use url::Url;

use super::wire::Traffic;

/// Serve as a worker on `listen` until `shutdown` completes (the CLI
/// passes SIGTERM or Ctrl-C), then print the bytes it sent and received
/// ([`wire`]).
pub async fn serve(
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(LakeStores::default()))
        .build_arc()?;
    let worker = Worker::from_session_builder(session_for_task)
        .with_runtime_env(runtime)
        .with_version(env!("CARGO_PKG_VERSION"));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    // Tests and scripts wait for this line to know the worker is up.
    println!("worker listening on http://{bound}");
    tracing::info!(%bound, "worker listening");
    let traffic = Arc::new(Traffic::default());
    let counted = {
        let traffic = Arc::clone(&traffic);
        TcpIncoming::from(listener)
            .map(move |accepted| accepted.map(|stream| traffic.count(stream)))
    };
    tonic::transport::Server::builder()
        .add_service(worker.into_worker_server())
        .serve_with_incoming_shutdown(counted, shutdown)
        .await
        .with_context(|| format!("worker on {bound} stopped"))?;
    let totals = traffic.totals();
    tracing::info!(%bound, sent = totals.sent, received = totals.received, "worker stopped");
    // Scripts that measure a run read this line; a closed stdout must not
    // turn a clean stop into a failure.
    let _ = writeln!(
        std::io::stdout(),
        "worker on http://{bound} stopped: {totals}"
    );
    Ok(())
}

/// The session one task runs in: DataFusion's defaults, as the worker
/// prepared them, plus every safetynet function.
pub(crate) async fn session_for_task(
    ctx: WorkerQueryContext,
) -> Result<SessionState, DataFusionError> {
    let mut state = ctx.builder.build();
    crate::functions::register_in(&mut state)?;
    Ok(state)
}

/// The object stores plans name: DataFusion's (local files) and, on first
/// use, an S3 store for each bucket, configured from the environment as the
/// coordinator's lake is.
#[derive(Debug, Default)]
struct LakeStores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for LakeStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn get_store(&self, url: &Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        if !matches!(url.scheme(), "s3" | "s3a") {
            return self.known.get_store(url);
        }
        let (store, _) = crate::lake::store_for_url(url)
            .map_err(|e| DataFusionError::External(format!("{e:#}").into()))?;
        self.known.register_store(url, store.clone());
        Ok(store)
    }
}
