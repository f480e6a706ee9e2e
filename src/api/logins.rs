//! `/api/v1/logins/locks`: user names and addresses locked after repeated
//! failed logins (`access::logins`), for admins to see and lift.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::auth::Rows;
use super::error::{ApiError, ApiResult};
use super::params;
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
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    params::query(raw.as_deref(), &[])?;
    admin_only(&p)?;
    let locks = state.access.logins().locks();
    let n = locks.len();
    let mut response = Json(json!({ "locks": locks })).into_response();
    response.extensions_mut().insert(Rows(n));
    Ok(response)
}

/// A lock key: `user:<name>`, `address:<ip>` or a bare user name; no
/// quotes, separators or control characters, at most 128 characters.
fn lock_key(key: &str) -> ApiResult<&str> {
    let ok = !key.is_empty()
        && key.chars().count() <= 128
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || "_-.:@".contains(c));
    if !ok {
        return Err(ApiError::bad_request(format!(
            "'{}' is not a lock key (user:<name>, address:<ip> or a user name)",
            key.chars().take(40).collect::<String>()
        )));
    }
    Ok(key)
}

/// DELETE /api/v1/logins/locks/{key}: forget the failed logins counted for
/// `user:<name>`, `address:<ip>` or a user name. Idempotent: lifting what
/// is not locked answers `was_locked: false`.
pub async fn lift(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    params::query(raw.as_deref(), &[])?;
    admin_only(&p)?;
    let key = lock_key(&key)?;
    let was_locked = state.access.logins().unlock(key);
    if was_locked {
        tracing::info!(key = %key, by = %p.name, "login lock lifted");
    }
    Ok(Json(json!({ "lifted": key, "was_locked": was_locked })).into_response())
}
