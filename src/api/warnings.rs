//! `/api/v1/warnings`: list, one warning with its evidence and history, and
//! verification results from household visits.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Rows;
use super::error::{ApiError, ApiResult};
use super::params;
use crate::access::{Principal, Visibility};
use crate::lake::query::{bound, rows_of};
use crate::warn::rules::RISK_TYPES;
use crate::warn::status::{Kind, Outcome, Severity, Status};
use crate::warn::store::{WARNING_EVENTS, WARNINGS};

/// Statuses a warning can be listed by.
pub fn statuses() -> Vec<&'static str> {
    Status::names()
}

/// Severities a warning can be listed by.
pub fn severities() -> Vec<&'static str> {
    Severity::names()
}

/// Kinds a warning can be listed by.
pub fn kinds() -> Vec<&'static str> {
    Kind::names()
}

/// Outcomes a visit can report.
pub fn visit_outcomes() -> Vec<&'static str> {
    Outcome::VISITS.iter().map(|o| o.as_str()).collect()
}

fn micros_to_rfc3339(text: Option<&String>) -> Value {
    text.and_then(|t| t.parse::<i64>().ok())
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map_or(Value::Null, |t| Value::from(t.to_rfc3339()))
}

/// SELECT list shared by the list and the one-warning queries.
fn select(with_evidence: bool) -> String {
    format!(
        "SELECT w.warning_id, w.household_id, w.county_code, w.township_code, w.village_code,
                w.kind, w.risk_type, w.severity, w.score, w.estimate_per_capita, w.period, w.rules, w.records,
                w.status, w.outcome,
                CAST(w.first_seen AS VARCHAR) AS first_seen, CAST(w.last_seen AS VARCHAR) AS last_seen,
                CAST(CAST(u.updated_at AS BIGINT) AS VARCHAR) AS updated_us{}
         FROM {WARNINGS} w
         LEFT JOIN (SELECT warning_id, max(at) AS updated_at FROM {WARNING_EVENTS} GROUP BY warning_id) u
           ON u.warning_id = w.warning_id",
        if with_evidence {
            ", w.evidence, w.new_evidence, w.assessment"
        } else {
            ""
        }
    )
}

/// One warning row as JSON, with numbers as numbers.
pub fn warning_json(row: &BTreeMap<String, String>) -> Value {
    let text = |k: &str| row.get(k).map_or(Value::Null, |v| Value::from(v.clone()));
    let mut out = json!({
        "warning_id": text("warning_id"),
        "household_id": text("household_id"),
        "county_code": text("county_code"),
        "township_code": text("township_code"),
        "village_code": text("village_code"),
        "kind": text("kind"),
        "risk_type": text("risk_type"),
        "severity": text("severity"),
        "score": row.get("score").and_then(|s| s.parse::<f64>().ok()),
        "estimate_per_capita": row.get("estimate_per_capita").and_then(|s| s.parse::<f64>().ok()),
        "period": text("period"),
        "rules": row.get("rules").map(|r| r.split(',').map(str::to_string).collect::<Vec<_>>()),
        "records": row.get("records").and_then(|s| s.parse::<i64>().ok()),
        "status": text("status"),
        "outcome": text("outcome"),
        "first_seen": text("first_seen"),
        "last_seen": text("last_seen"),
        "updated_at": micros_to_rfc3339(row.get("updated_us")),
    });
    for key in ["evidence", "new_evidence", "assessment"] {
        if let Some(v) = row.get(key) {
            out[key] = serde_json::from_str(v).unwrap_or(Value::Null);
        }
    }
    out
}

async fn has_warnings(ctx: &SessionContext) -> ApiResult<bool> {
    Ok(ctx.table_exist(WARNINGS)? && ctx.table_exist(WARNING_EVENTS)?)
}

/// GET /api/v1/warnings
pub async fn list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = params::query(
        raw.as_deref(),
        &[
            "region",
            "kind",
            "risk_type",
            "status",
            "severity",
            "since",
            "limit",
            "cursor",
        ],
    )?;
    // Each filter compares with a bound value ($n), never with pasted text.
    let mut filters: Vec<String> = Vec::new();
    let mut values: Vec<String> = Vec::new();
    let mut filter_on = |test: &str, value: String| {
        values.push(value);
        filters.push(test.replace("$v", &format!("${}", values.len())));
    };
    let requested = q.get("region").map(|r| params::region(r)).transpose()?;
    if let Some(region) = params::effective_region(&p, requested)? {
        filter_on("starts_with(w.village_code, $v)", region);
    }
    if let Some(v) = q.get("kind") {
        filter_on("w.kind = $v", params::one_of("kind", v, &kinds())?);
    }
    if let Some(v) = q.get("risk_type") {
        filter_on(
            "w.risk_type = $v",
            params::one_of("risk_type", v, RISK_TYPES)?,
        );
    }
    if let Some(v) = q.get("status") {
        filter_on("w.status = $v", params::one_of("status", v, &statuses())?);
    }
    if let Some(v) = q.get("severity") {
        filter_on(
            "w.severity = $v",
            params::one_of("severity", v, &severities())?,
        );
    }
    if let Some(v) = q.get("cursor") {
        filter_on("w.warning_id > $v", params::cursor(v)?);
    }
    if let Some(v) = q.get("since") {
        // A number the code made, not text the caller sent.
        let micros = params::since(v)?.timestamp_micros();
        filters.push(format!("CAST(u.updated_at AS BIGINT) >= {micros}"));
    }
    let limit = params::limit(q.get("limit"), 100, 1000)?;

    let ctx = state.access.session(&p, None).await?;
    let mut items: Vec<Value> = Vec::new();
    if has_warnings(&ctx).await? {
        let where_clause = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        let sql = format!(
            "{}{where_clause} ORDER BY w.warning_id LIMIT {}",
            select(false),
            limit + 1
        );
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let batches = bound(&ctx, &sql, &values).await?.collect().await?;
        items = rows_of(&batches)?.iter().map(warning_json).collect();
    }
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items
            .last()
            .and_then(|w| w["warning_id"].as_str())
            .map(|id| hex::encode(id.as_bytes()))
    } else {
        None
    };
    let n = items.len();
    let mut response = Json(json!({"items": items, "next_cursor": next_cursor})).into_response();
    response.extensions_mut().insert(Rows(n));
    Ok(response)
}

/// One warning by id, as the caller may see it: 404 when there is no such
/// warning, 403 when it is outside the caller's region.
pub async fn load_one(
    state: &AppState,
    ctx: &SessionContext,
    p: &Principal,
    warning_id: &str,
) -> ApiResult<BTreeMap<String, String>> {
    if !params::is_warning_id(warning_id) {
        return Err(ApiError::bad_request(format!(
            "'{warning_id}' is not a warning id (W followed by 16 hex digits)"
        )));
    }
    let missing = || ApiError::not_found(format!("no warning {warning_id}"));
    match state.access.warning(p, warning_id).await? {
        Visibility::Missing => return Err(missing()),
        Visibility::OutsideRegion => {
            return Err(ApiError::forbidden(format!(
                "warning {warning_id} is outside this token's region"
            )));
        }
        Visibility::Visible => {}
    }
    if !has_warnings(ctx).await? {
        return Err(missing());
    }
    let sql = format!("{} WHERE w.warning_id = $1", select(true));
    let batches = bound(ctx, &sql, &[warning_id]).await?.collect().await?;
    rows_of(&batches)?.into_iter().next().ok_or_else(missing)
}

/// The state changes of some warnings, oldest first.
pub async fn events_of(ctx: &SessionContext, warning_ids: &[String]) -> ApiResult<Vec<Value>> {
    if warning_ids.is_empty() || !ctx.table_exist(WARNING_EVENTS)? {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = warning_ids.iter().map(String::as_str).collect();
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let batches = bound(
        ctx,
        &format!(
            "SELECT warning_id, event_id, event, CAST(CAST(at AS BIGINT) AS VARCHAR) AS at_us, as_of, detail, actor
             FROM {WARNING_EVENTS} WHERE warning_id IN ({}) ORDER BY CAST(at AS BIGINT), event_id",
            placeholders.join(", ")
        ),
        &ids,
    )
    .await?
    .collect()
    .await?;
    Ok(rows_of(&batches)?
        .iter()
        .map(|r| {
            json!({
                "warning_id": r.get("warning_id"),
                "event_id": r.get("event_id"),
                "event": r.get("event"),
                "at": micros_to_rfc3339(r.get("at_us")),
                "as_of": r.get("as_of"),
                "detail": r.get("detail"),
                "actor": r.get("actor"),
            })
        })
        .collect())
}

/// GET /api/v1/warnings/{warning_id}
pub async fn one(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(warning_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    params::query(raw.as_deref(), &[])?;
    let ctx = state.access.session(&p, None).await?;
    let row = load_one(&state, &ctx, &p, &warning_id).await?;
    let mut out = warning_json(&row);
    out["events"] = Value::from(events_of(&ctx, std::slice::from_ref(&warning_id)).await?);
    let deliveries: Vec<Value> = crate::deliver::outbox::items(&ctx, Some(&warning_id))
        .await?
        .iter()
        .map(super::deliveries::item_json)
        .collect();
    out["deliveries"] = Value::from(deliveries);
    let mut response = Json(out).into_response();
    response.extensions_mut().insert(Rows(1));
    Ok(response)
}

/// The body of a verification result.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationBody {
    /// The day of the household visit (YYYY-MM-DD).
    pub visited_on: String,
    /// included / not_included / risk_eliminated
    pub outcome: String,
    /// Why (free text; may be empty).
    #[serde(default)]
    pub reason: String,
    /// Who visited (name or staff id).
    pub visited_by: String,
}

/// POST /api/v1/warnings/{warning_id}/verification
pub async fn verify(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(warning_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    params::query(raw.as_deref(), &[])?;
    if !p.can_verify() {
        return Err(forbidden_to_verify(&p));
    }
    let body: VerificationBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body must be JSON {{\"visited_on\": \"2026-08-01\", \"outcome\": \"not_included\", \"reason\": \"…\", \"visited_by\": \"…\"}}: {e}"
        ))
    })?;
    let row = record_verification(&state, &p, &warning_id, &body, "token").await?;
    let mut response = Json(warning_json(&row)).into_response();
    response.extensions_mut().insert(Rows(1));
    Ok(response)
}

fn forbidden_to_verify(p: &Principal) -> ApiError {
    ApiError::forbidden(format!(
        "role {} may read but not post verification results",
        p.role.name()
    ))
}

/// Record a household visit's result on a warning `p` may see, and return
/// the warning as it is now. The one way a verification comes in over HTTP:
/// the API and the console both call it; `via` says how `p` logged in
/// (`token`, `console user`), for the warning's history.
pub async fn record_verification(
    state: &AppState,
    p: &Principal,
    warning_id: &str,
    body: &VerificationBody,
    via: &str,
) -> ApiResult<BTreeMap<String, String>> {
    if !p.can_verify() {
        return Err(forbidden_to_verify(p));
    }
    let visited = NaiveDate::parse_from_str(body.visited_on.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "visited_on '{}' must be a date like 2026-08-01",
            body.visited_on
        ))
    })?;
    let today = crate::identity::china_today();
    if visited > today {
        return Err(ApiError::bad_request(format!(
            "visited_on {visited} is in the future"
        )));
    }
    let outcome = params::one_of("outcome", &body.outcome, &visit_outcomes())?;
    if body.visited_by.trim().is_empty() {
        return Err(ApiError::bad_request("visited_by must name who visited"));
    }
    {
        let ctx = state.access.session(p, None).await?;
        load_one(state, &ctx, p, warning_id).await?;
    }
    crate::pipeline::verify(
        state.lake(),
        &crate::warn::Verification {
            warning_id: warning_id.to_string(),
            outcome,
            reason: body.reason.trim().to_string(),
            by: format!("{} ({via} {})", body.visited_by.trim(), p.name),
            visited: Some(visited),
        },
        &format!("{via} verification by {}", p.name),
        std::time::Duration::from_secs(10),
    )
    .await?;
    let ctx = state.access.session_fresh(p).await?;
    load_one(state, &ctx, p, warning_id).await
}
