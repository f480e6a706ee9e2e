//! `/healthz` and `/metrics` (Prometheus text format). Metrics are read from
//! the lake at scrape time — runs, rows, warnings, delivery — plus this
//! process's request counts. They hold counts only, no personal data, so
//! they need no token.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use datafusion::prelude::SessionContext;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::lake::query::rows_of;
use crate::lake::tables::BATCHES;
use crate::pipeline::runs::RUNS;
use crate::warn::store::WARNINGS;

/// Requests answered by this process, by status code.
#[derive(Default)]
pub struct Counters {
    by_status: Mutex<BTreeMap<u16, u64>>,
}

/// Middleware counting every answer by its HTTP status, for `/metrics`.
pub async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if let Ok(mut map) = state.counters.by_status.lock() {
        *map.entry(response.status().as_u16()).or_default() += 1;
    }
    response
}

/// GET /healthz: 200 when the lake can be listed, with the service's load
/// (open SQL connections and API requests against their limits, callers
/// refused so far). It runs on the service's own runtime, not the query
/// runtime, so it answers while queries are at work.
pub async fn healthz(State(state): State<AppState>) -> ApiResult<Response> {
    let load = state.access.limits().load();
    match state.lake().table_names().await {
        Ok(tables) => Ok(axum::Json(json!({
            "status": if load.saturated { "saturated" } else { "ok" },
            "tables": tables.len(),
            "load": load,
        }))
        .into_response()),
        Err(e) => Err(ApiError::unavailable(format!("lake not reachable: {e:#}"))),
    }
}

async fn rows(
    ctx: &SessionContext,
    table: &str,
    sql: &str,
) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
    if !ctx.table_exist(table)? {
        return Ok(Vec::new());
    }
    rows_of(&ctx.sql(sql).await?.collect().await?)
}

/// A column of a row, empty when null.
fn v<'a>(row: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    row.get(key).map_or("", String::as_str)
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// GET /metrics
pub async fn prometheus(State(state): State<AppState>) -> ApiResult<Response> {
    let ctx = state
        .lake()
        .session_with(&[RUNS, BATCHES, WARNINGS])
        .await?;
    let mut out = String::new();

    metric(
        &mut out,
        "safetynet_run_stages_total",
        "counter",
        "Run stages recorded in the runs table, by stage and status.",
    );
    for r in rows(&ctx, RUNS, &format!("SELECT stage, status, count(*) AS n FROM {RUNS} GROUP BY stage, status ORDER BY stage, status")).await? {
        let _ = writeln!(out, "safetynet_run_stages_total{{stage=\"{}\",status=\"{}\"}} {}", label(v(&r, "stage")), label(v(&r, "status")), v(&r, "n"));
    }
    metric(
        &mut out,
        "safetynet_last_run_start_seconds",
        "gauge",
        "Start of the most recent run, Unix time.",
    );
    for r in rows(
        &ctx,
        RUNS,
        &format!(
            "SELECT CAST(max(CAST(started_at AS BIGINT)) / 1000000 AS BIGINT) AS t FROM {RUNS}"
        ),
    )
    .await?
    {
        let _ = writeln!(
            out,
            "safetynet_last_run_start_seconds {}",
            r.get("t").map_or("0", String::as_str)
        );
    }

    metric(
        &mut out,
        "safetynet_rows_total",
        "counter",
        "Input rows ingested, by source and outcome.",
    );
    for r in rows(&ctx, BATCHES, &format!("SELECT source, sum(rows_staged) AS staged, sum(rows_quarantined) AS quarantined FROM {BATCHES} GROUP BY source ORDER BY source")).await? {
        for outcome in ["staged", "quarantined"] {
            let _ = writeln!(out, "safetynet_rows_total{{source=\"{}\",outcome=\"{outcome}\"}} {}", label(v(&r, "source")), r.get(outcome).map_or("0", String::as_str));
        }
    }

    metric(
        &mut out,
        "safetynet_warnings",
        "gauge",
        "Warnings in the warnings table, by status and severity.",
    );
    for r in rows(&ctx, WARNINGS, &format!("SELECT status, severity, count(*) AS n FROM {WARNINGS} GROUP BY status, severity ORDER BY status, severity")).await? {
        let _ = writeln!(out, "safetynet_warnings{{status=\"{}\",severity=\"{}\"}} {}", label(v(&r, "status")), label(v(&r, "severity")), v(&r, "n"));
    }

    let (delivery, _) = crate::deliver::status(state.lake()).await?;
    metric(
        &mut out,
        "safetynet_delivery_items",
        "gauge",
        "Outbox items by delivery state (dead = dead-letter).",
    );
    for (s, n) in [
        ("pending", delivery.pending),
        ("delivered", delivery.delivered),
        ("rejected", delivery.rejected),
        ("dead", delivery.dead),
    ] {
        let _ = writeln!(out, "safetynet_delivery_items{{state=\"{s}\"}} {n}");
    }
    metric(
        &mut out,
        "safetynet_delivery_lag_seconds",
        "gauge",
        "Age of the oldest undelivered outbox item (0 when none).",
    );
    let _ = writeln!(
        out,
        "safetynet_delivery_lag_seconds {:.3}",
        delivery.lag_seconds
    );
    metric(
        &mut out,
        "safetynet_delivery_errors_total",
        "counter",
        "Failed delivery attempts (retried, rejected or dead).",
    );
    let _ = writeln!(
        out,
        "safetynet_delivery_errors_total {}",
        delivery.failed_attempts
    );

    let load = state.access.limits().load();
    for (name, help, value) in [
        (
            "safetynet_sql_connections",
            "Open SQL connections.",
            load.sql_connections,
        ),
        (
            "safetynet_sql_connection_limit",
            "SQL connections allowed at once.",
            load.sql_connection_limit,
        ),
        (
            "safetynet_api_requests_in_flight",
            "API requests being served.",
            load.api_requests,
        ),
        (
            "safetynet_api_request_limit",
            "API requests served at once.",
            load.api_request_limit,
        ),
    ] {
        metric(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    metric(
        &mut out,
        "safetynet_refused_for_capacity_total",
        "counter",
        "SQL connections and API requests refused because the service was at its limit.",
    );
    let _ = writeln!(out, "safetynet_refused_for_capacity_total {}", load.refused);

    metric(
        &mut out,
        "safetynet_http_requests_total",
        "counter",
        "HTTP requests answered by this process, by status code.",
    );
    if let Ok(map) = state.counters.by_status.lock() {
        for (code, n) in map.iter() {
            let _ = writeln!(out, "safetynet_http_requests_total{{code=\"{code}\"}} {n}");
        }
    }
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response())
}
