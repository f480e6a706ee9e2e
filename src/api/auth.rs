//! Bearer-token authentication and the audit record of every call.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use tokio::sync::Mutex;

use super::AppState;
use super::error::{ApiError, ErrorText};
use crate::access::Principal;
use crate::access::audit::{Entry, Outcome};
use crate::access::tokens::{self, TokenInfo};

/// Tokens are re-read from the lake at most this often, so a revoked token
/// stops working within this time.
const REFRESH: Duration = Duration::from_secs(5);
/// The least time between two reads of the token table.
const MIN_RELOAD: Duration = Duration::from_secs(1);

/// The `api_tokens` table, cached.
#[derive(Default)]
pub struct TokenCache {
    inner: Mutex<Option<(Instant, Vec<TokenInfo>)>>,
}

impl TokenCache {
    async fn principal(
        &self,
        state: &AppState,
        presented: &str,
    ) -> anyhow::Result<Option<Principal>> {
        let asked = Instant::now();
        loop {
            let mut guard = self.inner.lock().await;
            let loaded_at = guard.as_ref().map(|(at, _)| *at);
            let known = guard
                .as_ref()
                .and_then(|(_, list)| tokens::authenticate(list, presented));
            match loaded_at {
                // Fresh enough, and either known or unknown to a list read
                // after the call arrived.
                Some(at) if at.elapsed() <= REFRESH && (known.is_some() || at >= asked) => {
                    return Ok(known);
                }
                // Unknown: perhaps a token created moments ago. Re-read,
                // but never more than once a second, whatever callers
                // present; a caller arriving sooner waits for that second
                // (without holding the lock), so a new token is never
                // refused for a stale cache.
                Some(at) if at.elapsed() <= MIN_RELOAD => {
                    let wait = MIN_RELOAD.saturating_sub(at.elapsed());
                    drop(guard);
                    tokio::time::sleep(wait).await;
                    continue;
                }
                _ => {}
            }
            *guard = Some((Instant::now(), tokens::list(state.lake()).await?));
            return Ok(guard
                .as_ref()
                .and_then(|(_, list)| tokens::authenticate(list, presented)));
        }
    }
}

/// Rows a handler returned, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Rows(pub usize);

fn bearer(request: &Request) -> Result<&str, ApiError> {
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized("missing Authorization: Bearer <token> (safetynet token create)")
        })?;
    header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be 'Bearer <token>'"))
}

/// The caller's address and port, as the audit log records it.
pub fn client_address(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default()
}

/// The audit record of an answered request: who and in what role (`-`
/// when nobody was authenticated), from where, what, the status, the rows the handler
/// reported ([`Rows`]) and the error it gave ([`ErrorText`]). For every
/// HTTP frontend (the API, the console).
pub fn audit_entry(
    response: &Response,
    interface: &'static str,
    who: Option<(&str, &str)>,
    client: String,
    request: String,
    started: Instant,
) -> Entry {
    let status = response.status();
    Entry {
        at: Utc::now(),
        interface,
        user: who.map_or("-", |w| w.0).to_string(),
        role: who.map_or("-", |w| w.1).to_string(),
        client,
        request,
        code: i32::from(status.as_u16()),
        rows: response
            .extensions()
            .get::<Rows>()
            .map_or(0, |r| r.0 as i64),
        outcome: if status.is_success() || status.is_redirection() {
            Outcome::Ok
        } else {
            Outcome::Error
        },
        error: response
            .extensions()
            .get::<ErrorText>()
            .map(|e| e.0.clone()),
        millis: started.elapsed().as_millis() as i64,
    }
}

/// Check the token, run the handler with the caller's [`Principal`], and
/// put the call on record before answering. If the audit log cannot be
/// written, the caller gets 503 instead of the data.
pub async fn authenticate_and_audit(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let client = client_address(&request);
    // The full path: inside the nested router the URI lacks `/api/v1`.
    let uri = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| request.uri().to_string(), |u| u.0.to_string());
    let what = format!("{} {uri}", request.method());
    let principal = match bearer(&request) {
        Ok(token) => match state.tokens.principal(&state, token).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(ApiError::unauthorized(
                "unknown, revoked or malformed token",
            )),
            Err(e) => Err(ApiError::from(e)),
        },
        Err(e) => Err(e),
    };
    let (response, who) = match principal {
        Ok(p) => {
            request.extensions_mut().insert(p.clone());
            (next.run(request).await, Some(p))
        }
        Err(e) => (e.into_response(), None),
    };
    let entry = audit_entry(
        &response,
        "api",
        who.as_ref().map(|p| (p.name.as_str(), p.role.name())),
        client,
        what,
        started,
    );
    match state.audit.record(entry).await {
        Ok(()) => response,
        Err(e) => {
            ApiError::unavailable(format!("{e:#}; the call was not answered")).into_response()
        }
    }
}
