//! The household assessment (户情研判): what each household's year looks
//! like from every department's records together, as SQL.
//!
//! Assessment components are SQL files in `pipelines/assessment/`, each with
//! a header (`id`, `title`, `effect`, `risk_type`, `source`, `basis`) and a
//! query returning `household_id`, `person_id`, `record_key`, `event_date`,
//! `amount` (yuan, for the household) and `detail`:
//!
//! - `effect: subtract` — income lost or rigid spending: self-paid medical
//!   costs, wages lost after a job loss, the income of a member who died or
//!   became severely disabled;
//! - `effect: add` — relief received (低保, 特困, 临时救助);
//! - `effect: failure` — a 三保障 or drinking-water duty that failed, which
//!   needs no income test (a compulsory-age child who left school).
//!
//! For every household the estimate is the roster's per-capita income,
//! less what was lost and plus what was received, per head. The decision
//! (`decisions_sql`), with every number from the thresholds table:
//!
//! - a failure makes an early warning;
//! - a roster income already below the line, in a household that is not a
//!   monitoring object, makes a `roster_below_line` warning — not mixed
//!   with early warnings;
//! - a household above the line on the roster, with something lost this
//!   period, whose estimate falls below the line or within
//!   `assessment_margin_share` of it, makes an early warning.
//!
//! Each decision keeps its steps (roster income, each component, the line)
//! as JSON, so a warning shows how its estimate was reached.

use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use super::rules::{SqlFile, with_dates};
use crate::lake::query::sql_text;
use crate::lake::tables::ROSTER_HOUSEHOLD;

/// What a component does to the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Income lost, or rigid spending.
    Subtract,
    /// Income received.
    Add,
    /// A duty failed: a warning whatever the income.
    Failure,
}

impl Effect {
    fn parse(text: &str) -> Option<Effect> {
        match text {
            "subtract" => Some(Effect::Subtract),
            "add" => Some(Effect::Add),
            "failure" => Some(Effect::Failure),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Effect::Subtract => "subtract",
            Effect::Add => "add",
            Effect::Failure => "failure",
        }
    }
}

/// One assessment component.
#[derive(Debug, Clone)]
pub struct Component {
    /// Unique id.
    pub id: String,
    /// What it counts, for people (a step of the estimate).
    pub title: String,
    /// Subtract, add, or failure.
    pub effect: Effect,
    /// The cause it stands for, on the national list.
    pub risk_type: String,
    /// The department source whose linked records it reads.
    pub source: crate::config::SourceName,
    /// The query.
    pub sql: String,
    /// The file.
    pub file: String,
}

impl Component {
    /// Parse a component file.
    pub fn parse(text: &str, file: &str) -> Result<Component> {
        let f = SqlFile::parse(text, file)?;
        let effect = f.get("effect")?;
        let Some(effect) = Effect::parse(&effect) else {
            bail!("{file}: effect '{effect}' must be subtract, add or failure");
        };
        Ok(Component {
            id: f.get("id")?,
            title: f.get("title")?,
            effect,
            risk_type: f.risk_type()?,
            source: f.source()?,
            sql: f.sql,
            file: file.to_string(),
        })
    }
}

/// Every component in a directory, sorted by file name; ids must be unique.
pub fn load_dir(dir: &Path) -> Result<Vec<Component>> {
    let mut components: Vec<Component> = Vec::new();
    for (file, text) in super::rules::sql_files(dir, "assessment components")? {
        let c = Component::parse(&text, &file)?;
        if components.iter().any(|o| o.id == c.id) {
            bail!("{file}: component id '{}' is used twice", c.id);
        }
        components.push(c);
    }
    Ok(components)
}

/// The items of every component whose source is linked, as one query:
/// component, effect, risk_type, title, source, household_id, person_id,
/// record_key, event_date, amount, detail.
pub async fn items_sql(
    ctx: &SessionContext,
    components: &[&Component],
    as_of: NaiveDate,
) -> Result<String> {
    let mut parts = Vec::new();
    for c in components {
        let query = with_dates(&c.sql, as_of);
        let planned = ctx
            .sql(&query)
            .await
            .with_context(|| format!("assessment component {} ({})", c.id, c.file))?;
        for need in [
            "household_id",
            "record_key",
            "event_date",
            "amount",
            "detail",
        ] {
            if planned.schema().field_with_unqualified_name(need).is_err() {
                bail!(
                    "assessment component {} ({}) returns no '{need}' column",
                    c.id,
                    c.file
                );
            }
        }
        let person = if planned
            .schema()
            .field_with_unqualified_name("person_id")
            .is_ok()
        {
            "CAST(person_id AS VARCHAR)"
        } else {
            "CAST(NULL AS VARCHAR)"
        };
        parts.push(format!(
            "SELECT {id} AS component, {effect} AS effect, {risk} AS risk_type, {title} AS title, \
             {source} AS source, CAST(household_id AS VARCHAR) AS household_id, {person} AS person_id, \
             CAST(record_key AS VARCHAR) AS record_key, CAST(event_date AS DATE) AS event_date, \
             CAST(amount AS DOUBLE) AS amount, coalesce(CAST(detail AS VARCHAR), '') AS detail \
             FROM ({query}) WHERE household_id IS NOT NULL",
            id = sql_text(&c.id),
            effect = sql_text(c.effect.as_str()),
            risk = sql_text(&c.risk_type),
            title = sql_text(&c.title),
            source = sql_text(&c.source),
        ));
    }
    if parts.is_empty() {
        // No linked source yet: an empty relation of the same shape.
        return Ok(
            "SELECT CAST(NULL AS VARCHAR) AS component, CAST(NULL AS VARCHAR) AS effect, \
                   CAST(NULL AS VARCHAR) AS risk_type, CAST(NULL AS VARCHAR) AS title, \
                   CAST(NULL AS VARCHAR) AS source, CAST(NULL AS VARCHAR) AS household_id, \
                   CAST(NULL AS VARCHAR) AS person_id, CAST(NULL AS VARCHAR) AS record_key, \
                   CAST(NULL AS DATE) AS event_date, CAST(NULL AS DOUBLE) AS amount, \
                   CAST(NULL AS VARCHAR) AS detail WHERE false"
                .into(),
        );
    }
    Ok(parts.join("\nUNION ALL\n"))
}

/// A number as JSON text (`null` when NULL).
fn json_number(expr: &str) -> String {
    format!("coalesce(CAST(round({expr}, 2) AS VARCHAR), 'null')")
}

/// One row per household that the assessment warns about, from the view
/// `assessment_items` (see [`items_sql`]) and the roster: household_id,
/// kind, risk_type (the main cause), rank, severity, estimate_per_capita,
/// assessment (the steps, as JSON).
///
/// Money is summed as decimals: a sum of floating-point numbers depends on
/// the order the rows arrive in, which differs between partitions and
/// between workers, and a last-cent difference shows in the text a clerk
/// reads.
pub fn decisions_sql() -> String {
    format!(
        "WITH
roster AS (
  SELECT h.household_id, h.village_code,
    CAST(h.household_size AS DOUBLE) AS size,
    coalesce(CAST(h.per_capita_income AS DOUBLE),
             CAST(h.annual_income AS DOUBLE) / nullif(CAST(h.household_size AS DOUBLE), 0)) AS roster_pc,
    coalesce(g.monitoring_object, false) AS monitoring_object,
    line.value AS line, coalesce(margin.value, 0.0) AS margin
  FROM {ROSTER_HOUSEHOLD} h
  LEFT JOIN population_groups g ON g.category = h.category
  JOIN household_thresholds line ON line.household_id = h.household_id AND line.parameter = 'monitoring_income_line'
  LEFT JOIN household_thresholds margin ON margin.household_id = h.household_id AND margin.parameter = 'assessment_margin_share'
  WHERE h.household_size > 0
),
by_component AS (
  SELECT *, CAST(exact AS DOUBLE) AS total FROM (
    SELECT household_id, component, effect, risk_type, title,
      sum(CAST(coalesce(amount, 0.0) AS DECIMAL(38, 6))) AS exact, count(*) AS n
    FROM assessment_items GROUP BY household_id, component, effect, risk_type, title)
),
totals AS (
  SELECT household_id,
    coalesce(CAST(sum(CASE WHEN effect = 'subtract' THEN exact END) AS DOUBLE), 0.0) AS lost,
    coalesce(CAST(sum(CASE WHEN effect = 'add' THEN exact END) AS DOUBLE), 0.0) AS received,
    max(CASE WHEN effect = 'failure' THEN 1 ELSE 0 END) AS failed
  FROM by_component GROUP BY household_id
),
causes AS (
  SELECT household_id, risk_type FROM (
    SELECT household_id, risk_type, row_number() OVER (PARTITION BY household_id
      ORDER BY CASE WHEN effect = 'failure' THEN 0 ELSE 1 END, total DESC, risk_type) AS n
    FROM by_component WHERE effect <> 'add'
  ) WHERE n = 1
),
judged AS (
  SELECT r.*, coalesce(t.lost, 0.0) AS lost, coalesce(t.received, 0.0) AS received,
    coalesce(t.failed, 0) AS failed, c.risk_type AS cause,
    r.roster_pc - (coalesce(t.lost, 0.0) - coalesce(t.received, 0.0)) / r.size AS estimate_pc
  FROM roster r LEFT JOIN totals t ON t.household_id = r.household_id
  LEFT JOIN causes c ON c.household_id = r.household_id
),
decided AS (
  SELECT *, CASE
      WHEN failed = 1 THEN 'early_warning'
      WHEN roster_pc IS NOT NULL AND roster_pc < line AND NOT monitoring_object THEN 'roster_below_line'
      WHEN roster_pc IS NOT NULL AND roster_pc >= line AND lost > 0 AND estimate_pc < line * (1.0 + margin)
        THEN 'early_warning'
    END AS kind
  FROM judged
),
steps AS (
  SELECT d.household_id, 1 AS step_order, '' AS component,
    '{{\"step\":\"名册人均纯收入 roster per-capita income\",\"per_capita\":' || {roster} || ',\"running\":' || {roster} || '}}' AS step_json
  FROM decided d WHERE d.kind IS NOT NULL
  UNION ALL
  SELECT b.household_id, CASE b.effect WHEN 'subtract' THEN 2 WHEN 'add' THEN 3 ELSE 4 END AS step_order, b.component,
    '{{\"step\":' || sn_json(b.title) || ',\"component\":' || sn_json(b.component) || ',\"effect\":' || sn_json(b.effect)
      || ',\"records\":' || CAST(b.n AS VARCHAR)
      || CASE WHEN b.effect = 'failure' THEN ''
         ELSE ',\"total\":' || {total} || ',\"per_capita\":' || {per_capita} END
      || '}}' AS step_json
  FROM by_component b JOIN decided d ON d.household_id = b.household_id WHERE d.kind IS NOT NULL
  UNION ALL
  SELECT d.household_id, 5 AS step_order, '' AS component,
    '{{\"step\":\"估算人均纯收入与监测标准 estimate against the monitoring line\",\"estimate\":' || {estimate}
      || ',\"line\":' || {line} || ',\"margin_share\":' || {margin} || ',\"threshold\":' || {threshold}
      || ',\"below\":' || CASE WHEN d.estimate_pc < d.line * (1.0 + d.margin) THEN 'true' ELSE 'false' END || '}}'
  FROM decided d WHERE d.kind IS NOT NULL
)
SELECT d.household_id, d.kind,
  coalesce(d.cause, '其他') AS risk_type,
  CASE
    WHEN d.failed = 1 THEN 2.0 + greatest(0.0, (d.line * (1.0 + d.margin) - coalesce(d.estimate_pc, d.line)) / d.line)
    WHEN d.kind = 'roster_below_line' THEN (d.line - d.roster_pc) / d.line
    ELSE (d.line * (1.0 + d.margin) - d.estimate_pc) / d.line
  END AS rank,
  CASE
    WHEN d.failed = 1 OR d.estimate_pc < d.line * 0.8 THEN 'high'
    ELSE 'medium'
  END AS severity,
  d.estimate_pc AS estimate_per_capita,
  '[' || s.steps || ']' AS assessment
FROM decided d
JOIN (SELECT household_id, string_agg(step_json, ',' ORDER BY step_order, component) AS steps
      FROM steps GROUP BY household_id) s ON s.household_id = d.household_id
WHERE d.kind IS NOT NULL",
        roster = json_number("d.roster_pc"),
        total = json_number("b.total"),
        per_capita = json_number(
            "CASE WHEN b.effect = 'subtract' THEN -b.total ELSE b.total END / d.size"
        ),
        estimate = json_number("d.estimate_pc"),
        line = json_number("d.line"),
        margin = json_number("d.margin"),
        threshold = json_number("d.line * (1.0 + d.margin)"),
    )
}
