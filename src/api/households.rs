//! `/api/v1/households/{household_id}/timeline`: the household as the
//! roster has it, its members, every department record linked to it (with
//! the link's status and probability), and its warnings with their history,
//! in date order. Names and ID numbers are masked unless the role allows
//! raw values.

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
use crate::access::Principal;
use crate::config::SourceSchema;
use crate::config::schema::Role as FieldRole;
use crate::identity::mask;
use crate::lake::query::{rows_of, sql_text};
use crate::lake::tables::{ROSTER_HOUSEHOLD, ROSTER_PERSON, staged};
use crate::link::link_table;
use crate::warn::store::WARNINGS;

/// Bookkeeping columns left out of the timeline.
const HIDDEN: &[&str] = &["batch_id", "roster_version"];

/// A row as a JSON object, masking the named name and ID columns.
fn object(
    row: BTreeMap<String, String>,
    names: &[String],
    ids: &[String],
    raw: bool,
) -> Map<String, Value> {
    row.into_iter()
        .filter(|(k, _)| !HIDDEN.contains(&k.as_str()))
        .map(|(k, v)| {
            let v = if raw {
                v
            } else if names.contains(&k) {
                mask::name(&v)
            } else if ids.contains(&k) {
                mask::id_number(&v)
            } else {
                v
            };
            (k, Value::from(v))
        })
        .collect()
}

/// A field's lake column and its `_raw` twin.
fn columns_with_role(schema: &SourceSchema, role: FieldRole) -> Vec<String> {
    schema
        .fields
        .iter()
        .filter(|f| f.role == Some(role))
        .flat_map(|f| [f.name.clone(), format!("{}_raw", f.name)])
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
    let household_id = params::household_id(&household_id)?;
    let id = sql_text(&household_id);
    let ctx = state.lake.session().await?;
    if !ctx.table_exist(ROSTER_HOUSEHOLD)? {
        return Err(ApiError::not_found("no roster has been ingested yet"));
    }
    let batches = ctx
        .sql(&format!(
            "SELECT * FROM {ROSTER_HOUSEHOLD} WHERE household_id = {id}"
        ))
        .await?
        .collect()
        .await?;
    let household = rows_of(&batches)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("no household {household_id} on the roster")))?;
    let codes = ["county_code", "township_code", "village_code"]
        .map(|k| household.get(k).map(String::as_str));
    if !p.sees_region(&codes) {
        return Err(ApiError::forbidden(format!(
            "household {household_id} is outside this token's region"
        )));
    }
    let raw_values = p.raw_values();
    let batches = ctx
        .sql(&format!(
            "SELECT * FROM {ROSTER_PERSON} WHERE household_id = {id} ORDER BY member_id"
        ))
        .await?
        .collect()
        .await?;
    let members: Vec<Value> = rows_of(&batches)?
        .into_iter()
        .map(|r| {
            Value::Object(object(
                r,
                &["name".into()],
                &["id_number".into()],
                raw_values,
            ))
        })
        .collect();

    // Department records linked to the household, every source.
    let mut records: Vec<(String, Value)> = Vec::new();
    for source in crate::link::linkable_sources(&state.lake, &state.schemas_dir).await? {
        if !ctx.table_exist(link_table(&source).as_str())? {
            continue;
        }
        let schema = SourceSchema::load(&state.schemas_dir.join(format!("{source}.toml")))?;
        let Some(key) = schema.field_with_role(FieldRole::RecordKey) else {
            continue;
        };
        let date = schema
            .field_with_role(FieldRole::EventDate)
            .map(|f| f.name.clone());
        let names = columns_with_role(&schema, FieldRole::PersonName);
        let ids = columns_with_role(&schema, FieldRole::IdNumber);
        let batches = ctx
            .sql(&format!(
                "SELECT s.*, l.person_id AS linked_person_id, l.status AS link_status,
                        l.match_probability AS link_probability
                 FROM {link} l JOIN {staged} s ON s.{key} = l.{key}
                 WHERE l.household_id = {id}",
                link = link_table(&source),
                staged = staged(&source),
                key = key.name,
            ))
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
            let record_key = row.get(&key.name).cloned();
            let fields = object(row, &names, &ids, raw_values);
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
        let batches = ctx
            .sql(&format!(
                "SELECT warning_id, household_id, county_code, township_code, village_code, risk_type, severity, score,
                        period, rules, records, status, outcome, CAST(first_seen AS VARCHAR) AS first_seen,
                        CAST(last_seen AS VARCHAR) AS last_seen, evidence, new_evidence
                 FROM {WARNINGS} WHERE household_id = {id} ORDER BY first_seen, warning_id"
            ))
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
    let mut response = Json(json!({
        "household": object(household, &[], &[], true),
        "members": members,
        "records": records.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        "warnings": warnings,
        "events": events,
    }))
    .into_response();
    response.extensions_mut().insert(Rows(n));
    Ok(response)
}
