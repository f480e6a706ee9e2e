//! `/api/v1/logins/locks`: user names and addresses locked after repeated
//! failed logins (`access::logins`), for admins to see and lift.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::auth::Rows;
use super::error::{ApiError, ApiResult};
use crate::access::{Principal, Role};

fn admin_only(p: &Principal) -> ApiResult<()> {
    if p.role != Role::Admin {
        return Err(ApiError::forbidden("login locks are for admin tokens"));
    }
    Ok(())
}

/// GET /api/v1/logins/locks
pub async fn list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Response> {
    admin_only(&p)?;
    let locks = state.access.logins().locks();
    let n = locks.len();
    let mut response = Json(json!({ "locks": locks })).into_response();
    response.extensions_mut().insert(Rows(n));
    Ok(response)
}

/// DELETE /api/v1/logins/locks/{key}: `user:<name>`, `address:<ip>` or a
/// user name.
pub async fn lift(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    admin_only(&p)?;
    if !state.access.logins().unlock(&key) {
        return Err(ApiError::not_found(format!(
            "no failed logins counted for {key}"
        )));
    }
    tracing::info!(key = %key, by = %p.name, "login lock lifted");
    Ok(Json(json!({ "lifted": key })).into_response())
}
