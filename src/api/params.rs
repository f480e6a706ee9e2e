//! Checking what callers send. Every value that reaches SQL is first held to
//! a strict pattern (digits, a fixed list, a parsed date, an id shape), so
//! queries can quote it without any chance of injection; anything else is a
//! 400 that says which parameter and why.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::error::{ApiError, ApiResult};
use crate::access::Principal;

/// Query-string parameters, refusing unknown and repeated names.
pub fn query(raw: Option<&str>, allowed: &[&str]) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(ApiError::bad_request(format!(
                "unknown parameter '{name}'; this endpoint takes: {}",
                allowed.join(", ")
            )));
        }
        if out.insert(name.to_string(), value.to_string()).is_some() {
            return Err(ApiError::bad_request(format!(
                "parameter '{name}' is given more than once"
            )));
        }
    }
    Ok(out)
}

/// A value from a fixed list.
pub fn one_of(name: &str, value: &str, allowed: &[&str]) -> ApiResult<String> {
    if allowed.contains(&value) {
        Ok(value.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "{name} '{value}' is not one of: {}",
            allowed.join(", ")
        )))
    }
}

/// A region code prefix: 2 to 12 digits.
pub fn region(value: &str) -> ApiResult<String> {
    if (2..=12).contains(&value.len()) && value.chars().all(|c| c.is_ascii_digit()) {
        Ok(value.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "region '{value}' must be an administrative code prefix of 2 to 12 digits, e.g. 522322"
        )))
    }
}

/// The region to filter on: the requested one, which must lie inside the
/// caller's scope (403 otherwise), or the scope itself.
pub fn effective_region(p: &Principal, requested: Option<String>) -> ApiResult<Option<String>> {
    match (requested, &p.region) {
        (Some(r), Some(scope)) if !r.starts_with(scope.as_str()) => Err(ApiError::forbidden(
            format!("region {r} is outside this token's region {scope}"),
        )),
        (Some(r), _) => Ok(Some(r)),
        (None, scope) => Ok(scope.clone()),
    }
}

/// A date (`2026-08-01`, China time midnight) or an RFC 3339 time.
pub fn since(value: &str) -> ApiResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(crate::identity::china_midnight(d));
    }
    Err(ApiError::bad_request(format!(
        "since '{value}' must be a date (2026-08-01) or an RFC 3339 time (2026-08-01T08:00:00+08:00)"
    )))
}

/// A `limit` query parameter: `default` when absent; a number from 1 to `max`, else 400.
pub fn limit(value: Option<&String>, default: usize, max: usize) -> ApiResult<usize> {
    let Some(v) = value else {
        return Ok(default);
    };
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "limit '{v}' must be a whole number from 1 to {max}"
        ))),
    }
}

/// Warning ids look like `W` and 16 hex digits.
pub fn is_warning_id(value: &str) -> bool {
    value.len() == 17 && value.starts_with('W') && value[1..].chars().all(|c| c.is_ascii_hexdigit())
}

/// Household ids: letters, digits, `-` and `_`, up to 64.
pub fn household_id(value: &str) -> ApiResult<String> {
    if (1..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(value.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "household id '{value}' may hold only letters, digits, '-' and '_' (at most 64)"
        )))
    }
}

/// A page cursor: the last warning id of the previous page, hex-encoded.
pub fn cursor(value: &str) -> ApiResult<String> {
    hex::decode(value)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|id| is_warning_id(id))
        .ok_or_else(|| {
            ApiError::bad_request("cursor is not one this API returned (use next_cursor as given)")
        })
}
