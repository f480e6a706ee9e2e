//! The OpenAPI 3.0 document of the API, served at `/api/v1/openapi.json`.
//! The test suite walks it, calling every operation with good and bad
//! input, so it cannot drift from the handlers unnoticed.

use axum::Json;
use serde_json::{Value, json};

use super::deliveries::ITEM_STATES;
use super::warnings::{kinds, severities, statuses, visit_outcomes};
use crate::warn::rules::RISK_TYPES;

fn error_responses() -> Value {
    let error = json!({"description": "see error.message", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "400": error, "401": error, "403": error, "404": error,
        "503": {"description": "the run lock or the audit log is busy or unavailable; retry later", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    })
}

fn ok(description: &str, schema: Value) -> Value {
    let mut responses = error_responses();
    responses["200"] =
        json!({"description": description, "content": {"application/json": {"schema": schema}}});
    responses
}

fn path_param(name: &str, description: &str, pattern: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string", "pattern": pattern}})
}

/// The OpenAPI 3 document describing `/api/v1`.
pub fn document_value() -> Value {
    let warning = json!({
        "type": "object",
        "properties": {
            "warning_id": {"type": "string", "description": "stable for household × risk type × period"},
            "household_id": {"type": "string"},
            "county_code": {"type": "string", "nullable": true},
            "township_code": {"type": "string", "nullable": true},
            "village_code": {"type": "string", "nullable": true},
            "kind": {"type": "string", "enum": kinds()},
            "risk_type": {"type": "string", "enum": RISK_TYPES},
            "severity": {"type": "string", "enum": severities()},
            "score": {"type": "number"},
            "estimate_per_capita": {"type": "number", "nullable": true, "description": "the assessment's per-capita income estimate (yuan)"},
            "period": {"type": "string"},
            "rules": {"type": "array", "items": {"type": "string"}},
            "records": {"type": "integer"},
            "status": {"type": "string", "enum": statuses()},
            "outcome": {"type": "string", "nullable": true},
            "first_seen": {"type": "string", "format": "date"},
            "last_seen": {"type": "string", "format": "date"},
            "updated_at": {"type": "string", "format": "date-time", "nullable": true},
            "evidence": {"type": "array", "items": {"$ref": "#/components/schemas/Evidence"}},
            "new_evidence": {"type": "array", "items": {"$ref": "#/components/schemas/Evidence"}}
        }
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "safetynet monitoring API (防止返贫监测预警接口)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Early warnings raised from departmental data, for the monitoring system. Every /api/v1 call but this document needs a bearer token from `safetynet token create`; a token is limited to a region (administrative code prefix) and a role (reader, verifier, admin). Names and ID numbers are masked for roles other than admin. Every call is written to the audit_log table."
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/warnings": {"get": {
                "operationId": "listWarnings",
                "summary": "List warnings, newest changes filterable by `since`, in warning_id order with a cursor",
                "parameters": [
                    {"name": "region", "in": "query", "description": "administrative code prefix (2–12 digits); must lie inside the token's region", "schema": {"type": "string", "pattern": "^[0-9]{2,12}$"}},
                    {"name": "kind", "in": "query", "description": "early_warning (the household's assessment crossed the line), roster_below_line (the roster's own income is below the line, not monitored), clue (every-rule mode)", "schema": {"type": "string", "enum": kinds()}},
                    {"name": "risk_type", "in": "query", "schema": {"type": "string", "enum": RISK_TYPES}},
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": statuses()}},
                    {"name": "severity", "in": "query", "schema": {"type": "string", "enum": severities()}},
                    {"name": "since", "in": "query", "description": "only warnings changed at or after this date (China time) or RFC 3339 time", "schema": {"type": "string", "format": "date-time"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                    {"name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": {"type": "string"}}
                ],
                "responses": ok("a page of warnings", json!({"type": "object", "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Warning"}},
                    "next_cursor": {"type": "string", "nullable": true}}}))
            }},
            "/warnings/{warning_id}": {"get": {
                "operationId": "getWarning",
                "summary": "One warning with its evidence, its events and its delivery state",
                "parameters": [path_param("warning_id", "W and 16 hex digits", "^W[0-9a-f]{16}$")],
                "responses": ok("the warning", json!({"$ref": "#/components/schemas/Warning"}))
            }},
            "/warnings/{warning_id}/verification": {"post": {
                "operationId": "postVerification",
                "summary": "Report the result of a household visit (needs role verifier or admin)",
                "parameters": [path_param("warning_id", "W and 16 hex digits", "^W[0-9a-f]{16}$")],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Verification"}}}},
                "responses": ok("the warning after the verification", json!({"$ref": "#/components/schemas/Warning"}))
            }},
            "/households/{household_id}/timeline": {"get": {
                "operationId": "householdTimeline",
                "summary": "A household's roster entry, members, linked department records and warnings, in date order",
                "parameters": [path_param("household_id", "household number on the roster", "^[0-9A-Za-z_-]{1,64}$")],
                "responses": ok("the timeline", json!({"type": "object", "properties": {
                    "household": {"type": "object"},
                    "members": {"type": "array", "items": {"type": "object"}},
                    "records": {"type": "array", "items": {"type": "object"}},
                    "warnings": {"type": "array", "items": {"$ref": "#/components/schemas/Warning"}},
                    "events": {"type": "array", "items": {"type": "object"}}}}))
            }},
            "/deliveries": {"get": {
                "operationId": "listDeliveries",
                "summary": "Push delivery state: counts, lag and items, dead-letter included (admin tokens only)",
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"type": "string", "enum": ITEM_STATES}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}
                ],
                "responses": ok("delivery state", json!({"type": "object"}))
            }},
            "/logins/locks": {"get": {
                "operationId": "listLoginLocks",
                "summary": "User names and addresses locked after repeated failed SQL logins (admin tokens only)",
                "responses": ok("the locks", json!({"type": "object", "properties": {
                    "locks": {"type": "array", "items": {"type": "object", "properties": {
                        "key": {"type": "string"}, "failures": {"type": "integer"}, "seconds_left": {"type": "integer"}}}}}}))
            }},
            "/logins/locks/{key}": {"delete": {
                "operationId": "liftLoginLock",
                "summary": "Forget the failed logins of a user name or address, lifting its lock (admin tokens only)",
                "parameters": [path_param("key", "user:<name>, address:<ip> or a user name", "^[\\w.:@-]{1,128}$")],
                "responses": ok("lifted", json!({"type": "object", "properties": {
                    "lifted": {"type": "string"}, "was_locked": {"type": "boolean"}}}))
            }}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Evidence": {"type": "object", "properties": {
                    "rule": {"type": "string"}, "source": {"type": "string"}, "record_key": {"type": "string"},
                    "person_id": {"type": "string", "nullable": true}, "event_date": {"type": "string", "nullable": true},
                    "amount": {"type": "number", "nullable": true}, "detail": {"type": "string"}, "severity": {"type": "string"}}},
                "Warning": warning,
                "Verification": {"type": "object", "additionalProperties": false,
                    "required": ["visited_on", "outcome", "visited_by"],
                    "properties": {
                        "visited_on": {"type": "string", "format": "date"},
                        "outcome": {"type": "string", "enum": visit_outcomes()},
                        "reason": {"type": "string"},
                        "visited_by": {"type": "string", "minLength": 1}}}
            }
        }
    })
}

/// GET /api/v1/openapi.json
pub async fn document() -> Json<Value> {
    Json(document_value())
}
