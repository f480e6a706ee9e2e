//! The HTTP API of `safetynet serve` (接口), JSON under `/api/v1`:
//!
//! - `warnings`: list (filters, cursor pagination), one with its evidence,
//!   and posting a verification result;
//! - `households`: a household's timeline of records, links and warnings;
//! - `deliveries`: push delivery status, dead-letter included;
//! - `logins`: login locks after repeated failures, listed and lifted by admins;
//! - `metrics`: `/healthz` (with the service's load) and Prometheus `/metrics`;
//! - `openapi`: the OpenAPI document at `/api/v1/openapi.json`.
//!
//! Every `/api/v1` call but the OpenAPI document needs a bearer token
//! (`safetynet token create`), is limited to the token's region and role,
//! and is written to `audit_log` before it is answered. Calls run on the
//! service's query runtime, at most `[api] max_requests` at once (`capacity`);
//! every error, whatever produced it, is JSON (`error`).

pub mod auth;
pub mod capacity;
pub mod deliveries;
pub mod error;
pub mod households;
pub mod logins;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod warnings;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use axum::Router;
use axum::routing::{get, post};

use crate::access::Access;
use crate::access::audit::AuditLog;
use crate::lake::Lake;
use error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The lake as each caller may see it.
    pub access: Access,
    /// Where every call is audited.
    pub audit: AuditLog,
    /// Recently checked tokens, so a request does not read the token table.
    pub tokens: Arc<auth::TokenCache>,
    /// Answers by status, for `/metrics`.
    pub counters: Arc<metrics::Counters>,
    /// The runtime `/api/v1` handlers run on (the service's query runtime;
    /// the current one unless told otherwise).
    pub queries: tokio::runtime::Handle,
}

impl AppState {
    /// The state for `access`'s lake, auditing to it, on the current runtime.
    pub fn new(access: Access) -> AppState {
        AppState {
            audit: AuditLog::start(access.lake().clone()),
            tokens: Arc::new(auth::TokenCache::default()),
            counters: Arc::new(metrics::Counters::default()),
            access,
            queries: tokio::runtime::Handle::current(),
        }
    }

    /// Run `/api/v1` handlers on `queries`.
    pub fn with_queries(mut self, queries: tokio::runtime::Handle) -> AppState {
        self.queries = queries;
        self
    }

    /// The lake itself, for what is not personal data (tokens, delivery
    /// status, counts).
    pub fn lake(&self) -> &Lake {
        self.access.lake()
    }
}

/// The API's routes (`/api/v1`, `/healthz`, `/metrics`, `/openapi.json`) with auth, capacity, auditing and counting.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/warnings", get(warnings::list))
        .route("/warnings/{warning_id}", get(warnings::one))
        .route(
            "/warnings/{warning_id}/verification",
            post(warnings::verify),
        )
        .route(
            "/households/{household_id}/timeline",
            get(households::timeline),
        )
        .route("/deliveries", get(deliveries::list))
        .route("/logins/locks", get(logins::list))
        .route("/logins/locks/{key}", axum::routing::delete(logins::lift))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate_and_audit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            capacity::within_capacity,
        ))
        .route("/openapi.json", get(openapi::document));
    Router::new()
        .nest("/api/v1", v1)
        .route("/healthz", get(metrics::healthz))
        .route("/metrics", get(metrics::prometheus))
        .fallback(|| async { ApiError::not_found("no such endpoint; see /api/v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed for this endpoint; see /api/v1/openapi.json",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}

/// Serve the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_router(listener, router(state), shutdown).await
}

/// Serve `app` (the API's router, with whatever the service nests in it,
/// such as the console) on `listener` until `shutdown` completes.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    tracing::info!(address = %listener.local_addr()?, "HTTP API listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
