//! At most `[api] max_requests` calls at once; the next is refused at
//! once with 503 and `Retry-After`, never queued. Calls run on the
//! service's query runtime, so `/healthz` and the accept loop keep their
//! own threads however busy the queries are.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// Take a request slot and run the call on the query runtime.
pub async fn within_capacity(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(slot) = state.access.limits().api_request() else {
        return ApiError::unavailable(format!(
            "the service is at its limit of {} requests at once; retry in a second (服务繁忙，请稍后重试)",
            state.access.limits().api_requests
        ))
        .with_retry_after(1)
        .into_response();
    };
    let call = state.queries.spawn(async move {
        let response = next.run(request).await;
        drop(slot);
        response
    });
    match call.await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!("API call did not finish: {e}");
            ApiError::internal().into_response()
        }
    }
}
