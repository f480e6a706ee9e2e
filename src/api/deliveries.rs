//! `/api/v1/deliveries`: where push delivery stands — counts by state, the
//! delivery lag, and the items themselves (dead-letter included), newest
//! first. Delivery spans all regions and its payloads carry every warning's
//! evidence, so only admin tokens may read it.

use axum::Extension;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::auth::Rows;
use super::error::{ApiError, ApiResult};
use super::params;
use crate::access::{Principal, Role};
use crate::deliver::outbox::{Item, State as ItemState};

/// The states a delivery item can be in, as `?state=` takes them.
pub const ITEM_STATES: &[&str] = &["pending", "delivered", "rejected", "dead"];

/// One delivery item as the API returns it.
pub fn item_json(i: &Item) -> Value {
    json!({
        "idempotency_key": i.idempotency_key,
        "warning_id": i.warning_id,
        "event": i.event,
        "created_at": i.created.to_rfc3339(),
        "state": i.state.name(),
        "next_attempt_at": match i.state { ItemState::Pending { next } => next.map(|t| t.to_rfc3339()), _ => None },
        "attempts": i.attempts,
        "last_attempt_at": i.last_attempt.map(|t| t.to_rfc3339()),
        "last_error": i.last_error,
    })
}

/// GET /api/v1/deliveries
pub async fn list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = params::query(raw.as_deref(), &["state", "limit"])?;
    if p.role != Role::Admin {
        return Err(ApiError::forbidden(
            "delivery status covers every region and warning; it needs an admin token",
        ));
    }
    let wanted = q
        .get("state")
        .map(|s| params::one_of("state", s, ITEM_STATES))
        .transpose()?;
    let limit = params::limit(q.get("limit"), 100, 1000)?;
    let (summary, items) = crate::deliver::status(state.lake()).await?;
    let items: Vec<Value> = items
        .iter()
        .rev()
        .filter(|i| wanted.as_deref().is_none_or(|w| w == i.state.name()))
        .take(limit)
        .map(item_json)
        .collect();
    let n = items.len();
    let mut response = Json(json!({"summary": summary, "items": items})).into_response();
    response.extensions_mut().insert(Rows(n));
    Ok(response)
}
