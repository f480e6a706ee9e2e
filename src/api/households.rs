//! `/api/v1/households/{household_id}/timeline`: the household as the
//! roster has it, its members, every department record linked to it (with
//! the link's status and probability), and its warnings with their history,
//! in date order, read from the caller's own view of the lake
//! (`access`): masked and region-scoped as in the SQL endpoint.

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use super::auth::Rows;
use super::error::{ApiError, ApiResult};
use super::params;
use super::warnings::{events_of, warning_json};
use crate::access::{Principal, Visibility};
use crate::lake::query::{bound, rows_of, sql_ident};
use crate::lake::tables::{
    ROSTER_HOUSEHOLD, ROSTER_PERSON, ROSTER_SOURCE, SourceName, link_table, staged,
};
use crate::warn::store::WARNINGS;

/// Bookkeeping columns left out of the timeline.
const HIDDEN: &[&str] = &["batch_id", "roster_version"];

/// A row as a JSON object (already masked by the caller's view).
fn object(row: BTreeMap<String, String>) -> Map<String, Value> {
    row.into_iter()
        .filter(|(k, _)| !HIDDEN.contains(&k.as_str()))
        .map(|(k, v)| (k, Value::from(v)))
        .collect()
}

/// GET /api/v1/households/{household_id}/timeline
pub async fn timeline(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(household_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    params::query(raw.as_deref(), &[])?;
    let (out, n) = household_timeline(&state, &p, &household_id).await?;
    let mut response = Json(out).into_response();
    response.extensions_mut().insert(Rows(n));
    Ok(response)
}

/// A household's timeline as `p` may see it, and how many rows it holds:
/// `household`, `members`, `records` (date order), `warnings`, `events`.
/// The API's answer and the console's household page.
pub async fn household_timeline(
    state: &AppState,
    p: &Principal,
    household_id: &str,
) -> ApiResult<(Value, usize)> {
    let household_id = params::household_id(household_id)?;
    match state.access.household(p, &household_id).await? {
        Visibility::Missing => {
            return Err(ApiError::not_found(format!(
                "no household {household_id} on the roster"
            )));
        }
        Visibility::OutsideRegion => {
            return Err(ApiError::forbidden(format!(
                "household {household_id} is outside this token's region"
            )));
        }
        Visibility::Visible => {}
    }
    let id: &[&str] = &[&household_id];
    let ctx = state.access.session(p, None).await?;
    let batches = bound(
        &ctx,
        &format!("SELECT * FROM {ROSTER_HOUSEHOLD} WHERE household_id = $1"),
        id,
    )
    .await?
    .collect()
    .await?;
    let household = rows_of(&batches)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("no household {household_id} on the roster")))?;
    let batches = bound(
        &ctx,
        &format!("SELECT * FROM {ROSTER_PERSON} WHERE household_id = $1 ORDER BY member_id"),
        id,
    )
    .await?
    .collect()
    .await?;
    let members: Vec<Value> = rows_of(&batches)?
        .into_iter()
        .map(|r| Value::Object(object(r)))
        .collect();

    // Department records linked to the household, every source.
    let mut records: Vec<(String, Value)> = Vec::new();
    let roles = state.access.columns();
    let sources: Vec<SourceName> = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("public"))
        .map(|s| s.table_names())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| crate::lake::tables::source_of_staged(&t))
        .filter(|s| s != ROSTER_SOURCE)
        .collect();
    for source in sources {
        if !ctx.table_exist(link_table(&source).as_str())? {
            continue;
        }
        let Some(key) = roles.record_key(&source) else {
            continue;
        };
        let date = roles.event_date(&source).map(str::to_string);
        let batches = bound(
            &ctx,
            &format!(
                "SELECT s.*, l.person_id AS linked_person_id, l.status AS link_status,
                        l.match_probability AS link_probability
                 FROM {link} l JOIN {staged} s ON s.{key} = l.{key}
                 WHERE l.household_id = $1",
                link = link_table(&source),
                staged = staged(&source),
                key = sql_ident(key),
            ),
            id,
        )
        .await?
        .collect()
        .await?;
        for mut row in rows_of(&batches)? {
            let link = json!({
                "person_id": row.remove("linked_person_id"),
                "status": row.remove("link_status"),
                "match_probability": row.remove("link_probability").and_then(|v| v.parse::<f64>().ok()),
            });
            let when = date
                .as_ref()
                .and_then(|d| row.get(d).cloned())
                .unwrap_or_default();
            let record_key = row.get(key).cloned();
            let fields = object(row);
            records.push((
                when.clone(),
                json!({
                    "source": source,
                    "record_key": record_key,
                    "date": (!when.is_empty()).then_some(when),
                    "link": link,
                    "fields": fields,
                }),
            ));
        }
    }
    records.sort_by(|a, b| a.0.cmp(&b.0));

    let mut warnings = Vec::new();
    let mut events = Vec::new();
    if ctx.table_exist(WARNINGS)? {
        let batches = bound(
            &ctx,
            &format!(
                "SELECT warning_id, household_id, county_code, township_code, village_code, risk_type, severity, score,
                        period, rules, records, status, outcome, CAST(first_seen AS VARCHAR) AS first_seen,
                        CAST(last_seen AS VARCHAR) AS last_seen, evidence, new_evidence
                 FROM {WARNINGS} WHERE household_id = $1 ORDER BY first_seen, warning_id"
            ),
            id,
        )
        .await?
        .collect()
        .await?;
        let rows = rows_of(&batches)?;
        let ids: Vec<String> = rows
            .iter()
            .filter_map(|r| r.get("warning_id").cloned())
            .collect();
        warnings = rows.iter().map(warning_json).collect();
        events = events_of(&ctx, &ids).await?;
    }
    let n = members.len() + records.len() + warnings.len();
    let out = json!({
        "household": object(household),
        "members": members,
        "records": records.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        "warnings": warnings,
        "events": events,
    });
    Ok((out, n))
}
