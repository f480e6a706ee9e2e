//! How often warnings send staff to a household really at risk, against
//! what each household's year was (`truth_households.csv`, written by the
//! generator or by a county from its own visits):
//!
//! - **precision**: warned households that were newly at risk, over warned
//!   households that were not already below the line before the year;
//! - **recall**: newly-at-risk households that were warned, over those with
//!   any department record in the period;
//! - the **bound** on recall: newly-at-risk households whose shock left a
//!   record at all (an unregistered job loss cannot be found from data);
//! - the share of households warned, and visits per 100 households per
//!   month;
//! - a **reference** that knows every recorded shock exactly (the truth's
//!   loss) but, like any method reading the extracts, knows the household's
//!   base only from the roster income, and decides with the same line and
//!   margin: how far a better estimate of the shocks alone could go. The
//!   rest is the roster income's own error.
//!
//! Both modes are decided on the same lake, as of the same date, without
//! writing anything; the warnings stored in the lake (with village
//! capacity applied) are shown beside them when there are any.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::status::Mode;
use super::{WarnConfig, decide};
use crate::lake::Lake;
use crate::lake::query::scalar_i64;
use crate::lake::tables::{ROSTER_HOUSEHOLD, WARNINGS};

/// The figures of one way of warning.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Scores {
    /// What was measured: a mode, or the stored warnings.
    pub name: String,
    /// Households warned.
    pub households_warned: i64,
    /// Tasks (warnings): in every-rule mode a household can have several.
    pub tasks: i64,
    /// Warned households that were newly at risk.
    pub true_positives: i64,
    /// Warned households not already below the line before the year.
    pub warned_not_already_below: i64,
    /// true_positives / warned_not_already_below.
    pub precision: f64,
    /// Newly-at-risk households with a record that were warned, over all of those.
    pub recall: f64,
    /// Households warned, over all households.
    pub share_warned: f64,
    /// Tasks per 100 households per month of the period.
    pub visits_per_100_per_month: f64,
    /// (risk type, tasks, precision) by the warning's risk type.
    pub by_risk_type: Vec<(String, i64, f64)>,
    /// (cause, newly-at-risk households, recall) by the truth's cause.
    pub by_cause: Vec<(String, i64, f64)>,
}

/// The roster-below-line warnings: households the roster already puts
/// under the line and that are not monitored. They are not predictions of
/// a new risk, so they are scored apart.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RosterBelow {
    /// Such warnings.
    pub warnings: i64,
    /// Of them, households truly below the line before the year.
    pub truly_below: i64,
    /// Of them, households the year pushed below (newly at risk).
    pub newly_at_risk: i64,
}

/// Every figure, beside the truth's own counts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WarningEvaluation {
    /// The date decided as of.
    pub as_of: String,
    /// Households in the truth.
    pub households: i64,
    /// Of them, newly at risk.
    pub newly_at_risk: i64,
    /// Of those, with any department record in the period (recall's denominator).
    pub newly_at_risk_with_records: i64,
    /// Of those, whose shock left a record: the bound on recall.
    pub recall_bound: f64,
    /// Already below the line before the year.
    pub already_below: i64,
    /// Months of the period counted for visits per month.
    pub months: i64,
    /// One per way of warning: precision and recall of early warnings
    /// (every-rule mode: every task), visits of every task.
    pub modes: Vec<Scores>,
    /// The assessment's roster-below-line warnings, scored apart.
    pub roster_below_line: RosterBelow,
}

/// The name of the reference row in [`WarningEvaluation::modes`].
pub const REFERENCE: &str = "reference: true shocks, roster income";

/// The reference's warnings (see the module comment): a household the
/// roster puts at or above the line is warned when its roster income less
/// the truth's recorded loss falls under the line × (1 + margin), or when
/// the truth has it newly at risk with an income still above the line (a
/// 三保障 failure, which a record shows without an income test). A shock
/// that left no record is not known to it either.
fn reference_tasks_sql() -> String {
    format!(
        "
  WITH roster AS (
    SELECT h.household_id,
      coalesce(CAST(h.per_capita_income AS DOUBLE),
               CAST(h.annual_income AS DOUBLE) / nullif(CAST(h.household_size AS DOUBLE), 0)) AS roster_pc,
      line.value AS line, coalesce(margin.value, 0.0) AS margin
    FROM {ROSTER_HOUSEHOLD} h
    JOIN household_thresholds line ON line.household_id = h.household_id AND line.parameter = 'monitoring_income_line'
    LEFT JOIN household_thresholds margin ON margin.household_id = h.household_id AND margin.parameter = 'assessment_margin_share'
    WHERE h.household_size > 0)
  SELECT r.household_id, 'reference' AS risk_type, 'early_warning' AS kind
  FROM roster r JOIN truth t ON t.household_id = r.household_id
  WHERE r.roster_pc >= r.line AND t.records > 0 AND t.observable
    AND (r.roster_pc - coalesce(t.per_capita_before - t.per_capita_after, 0.0) < r.line * (1.0 + r.margin)
         OR (t.status = 'newly_at_risk' AND t.per_capita_after >= r.line))"
    )
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Register `truth` from the CSV: household_id, period, per_capita_before,
/// per_capita_after, status, cause, records, observable.
fn register_truth(ctx: &SessionContext, path: &Path) -> Result<()> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read household truth {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let index = |name: &str| -> Result<usize> {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .with_context(|| format!("{}: no column {name}", path.display()))
    };
    let (id, status, cause, records) = (
        index("household_id")?,
        index("status")?,
        index("cause")?,
        index("records")?,
    );
    let observable = index("observable").ok();
    let (before, after) = (
        index("per_capita_before").ok(),
        index("per_capita_after").ok(),
    );
    let amount = |row: &csv::StringRecord, i: Option<usize>| -> Option<f64> {
        i.and_then(|i| row.get(i))
            .and_then(|v| v.trim().parse().ok())
    };
    let (mut ids, mut statuses, mut causes, mut counts, mut seen) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut befores, mut afters) = (vec![], vec![]);
    for (n, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: line {}", path.display(), n + 2))?;
        let s = row[status].trim().to_string();
        if !["newly_at_risk", "already_below", "not_at_risk"].contains(&s.as_str()) {
            bail!(
                "{}: line {}: status '{s}' must be newly_at_risk, already_below or not_at_risk",
                path.display(),
                n + 2
            );
        }
        ids.push(row[id].trim().to_string());
        statuses.push(s);
        causes.push(row[cause].trim().to_string());
        counts.push(row[records].trim().parse::<i64>().with_context(|| {
            format!(
                "{}: line {}: records is not a number",
                path.display(),
                n + 2
            )
        })?);
        seen.push(observable.is_none_or(|i| row.get(i).is_some_and(|v| v.trim() == "1")));
        befores.push(amount(&row, before));
        afters.push(amount(&row, after));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("household_id", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("cause", DataType::Utf8, false),
        Field::new("records", DataType::Int64, false),
        Field::new("observable", DataType::Boolean, false),
        Field::new("per_capita_before", DataType::Float64, true),
        Field::new("per_capita_after", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(statuses)),
            Arc::new(StringArray::from(causes)),
            Arc::new(Int64Array::from(counts)),
            Arc::new(BooleanArray::from(seen)),
            Arc::new(Float64Array::from(befores)),
            Arc::new(Float64Array::from(afters)),
        ],
    )?;
    let _ = ctx.deregister_table("truth");
    ctx.register_table(
        "truth",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(())
}

/// Score the warnings of the relation `tasks` (household_id, risk_type,
/// kind): precision and recall of those that predict a new risk (every
/// kind but roster_below_line), visits of them all.
async fn score(
    ctx: &SessionContext,
    name: &str,
    tasks: &str,
    households: i64,
    months: i64,
) -> Result<Scores> {
    let _ = ctx.deregister_table("all_tasks");
    let _ = ctx.deregister_table("tasks");
    ctx.register_table(
        "all_tasks",
        ctx.sql(tasks).await?.cache().await?.into_view(),
    )?;
    ctx.register_table(
        "tasks",
        ctx.sql("SELECT * FROM all_tasks WHERE kind <> 'roster_below_line'")
            .await?
            .into_view(),
    )?;
    let n = |sql: String| async move { scalar_i64(ctx, &sql).await };
    let warned = "SELECT DISTINCT household_id FROM tasks";
    let households_warned = n(format!("SELECT count(*) FROM ({warned})")).await?;
    let tasks_n = n("SELECT count(*) FROM all_tasks".to_string()).await?;
    let tp = n(format!(
        "SELECT count(*) FROM ({warned}) w JOIN truth t ON t.household_id = w.household_id WHERE t.status = 'newly_at_risk'"
    ))
    .await?;
    let not_below = n(format!(
        "SELECT count(*) FROM ({warned}) w LEFT JOIN truth t ON t.household_id = w.household_id WHERE coalesce(t.status, '') <> 'already_below'"
    ))
    .await?;
    let found = n(format!(
        "SELECT count(*) FROM truth t JOIN ({warned}) w ON w.household_id = t.household_id
         WHERE t.status = 'newly_at_risk' AND t.records > 0"
    ))
    .await?;
    let denominator =
        n("SELECT count(*) FROM truth WHERE status = 'newly_at_risk' AND records > 0".to_string())
            .await?;
    let mut by_risk_type = Vec::new();
    let rows = ctx
        .sql(
            "SELECT k.risk_type, count(*) AS n,
               sum(CASE WHEN t.status = 'newly_at_risk' THEN 1 ELSE 0 END) AS hits,
               sum(CASE WHEN coalesce(t.status, '') <> 'already_below' THEN 1 ELSE 0 END) AS judged
             FROM tasks k LEFT JOIN truth t ON t.household_id = k.household_id
             GROUP BY k.risk_type ORDER BY n DESC, k.risk_type",
        )
        .await?
        .collect()
        .await?;
    for r in crate::lake::query::rows_of(&rows)? {
        let v = |k: &str| r.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        by_risk_type.push((
            r.get("risk_type").cloned().unwrap_or_default(),
            v("n"),
            ratio(v("hits"), v("judged")),
        ));
    }
    let mut by_cause = Vec::new();
    let rows = ctx
        .sql(&format!(
            "SELECT t.cause, count(*) AS n, sum(CASE WHEN w.household_id IS NULL THEN 0 ELSE 1 END) AS found
             FROM truth t LEFT JOIN ({warned}) w ON w.household_id = t.household_id
             WHERE t.status = 'newly_at_risk' AND t.records > 0
             GROUP BY t.cause ORDER BY n DESC, t.cause"
        ))
        .await?
        .collect()
        .await?;
    for r in crate::lake::query::rows_of(&rows)? {
        let v = |k: &str| r.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        by_cause.push((
            r.get("cause").cloned().unwrap_or_default(),
            v("n"),
            ratio(v("found"), v("n")),
        ));
    }
    Ok(Scores {
        name: name.to_string(),
        households_warned,
        tasks: tasks_n,
        true_positives: tp,
        warned_not_already_below: not_below,
        precision: ratio(tp, not_below),
        recall: ratio(found, denominator),
        share_warned: ratio(households_warned, households),
        visits_per_100_per_month: ratio(tasks_n * 100, households) / months.max(1) as f64,
        by_risk_type,
        by_cause,
    })
}

/// Evaluate both modes (and the stored warnings) against `truth`.
pub async fn evaluate(
    lake: &Lake,
    config: &WarnConfig,
    truth: &Path,
    as_of: NaiveDate,
    households_out: Option<&Path>,
) -> Result<WarningEvaluation> {
    let months = i64::from(as_of.month());
    let mut out = WarningEvaluation {
        as_of: as_of.to_string(),
        months,
        ..Default::default()
    };
    for mode in [Mode::Assessment, Mode::EveryRule] {
        let config = WarnConfig {
            mode,
            ..config.clone()
        };
        let (ctx, _) = decide(lake, &config, as_of).await?;
        register_truth(&ctx, truth)?;
        if out.households == 0 {
            let n = |sql: &'static str| scalar_i64(&ctx, sql);
            out.households = n("SELECT count(*) FROM truth").await?;
            out.newly_at_risk =
                n("SELECT count(*) FROM truth WHERE status = 'newly_at_risk'").await?;
            out.newly_at_risk_with_records =
                n("SELECT count(*) FROM truth WHERE status = 'newly_at_risk' AND records > 0")
                    .await?;
            let observable =
                n("SELECT count(*) FROM truth WHERE status = 'newly_at_risk' AND records > 0 AND observable").await?;
            out.recall_bound = ratio(observable, out.newly_at_risk_with_records);
            out.already_below =
                n("SELECT count(*) FROM truth WHERE status = 'already_below'").await?;
        }
        out.modes.push(
            score(
                &ctx,
                mode.as_str(),
                "SELECT household_id, risk_type, kind FROM fresh_warnings",
                out.households,
                months,
            )
            .await?,
        );
        if mode == Mode::Assessment {
            if let Some(path) = households_out {
                write_households(&ctx, path).await?;
            }
            if has_incomes(&ctx).await? {
                let reference = score(
                    &ctx,
                    REFERENCE,
                    &reference_tasks_sql(),
                    out.households,
                    months,
                )
                .await?;
                out.modes.push(reference);
            }
            let n = |sql: &'static str| scalar_i64(&ctx, sql);
            out.roster_below_line = RosterBelow {
                warnings: n("SELECT count(*) FROM fresh_warnings WHERE kind = 'roster_below_line'").await?,
                truly_below: n("SELECT count(*) FROM fresh_warnings f JOIN truth t ON t.household_id = f.household_id
                                WHERE f.kind = 'roster_below_line' AND t.status = 'already_below'").await?,
                newly_at_risk: n("SELECT count(*) FROM fresh_warnings f JOIN truth t ON t.household_id = f.household_id
                                  WHERE f.kind = 'roster_below_line' AND t.status = 'newly_at_risk'").await?,
            };
        }
    }
    let ctx = lake.session_with(&[super::store::WARNINGS]).await?;
    if ctx.table_exist(super::store::WARNINGS)?
        && ctx
            .table(super::store::WARNINGS)
            .await?
            .schema()
            .field_with_unqualified_name("kind")
            .is_ok()
    {
        register_truth(&ctx, truth)?;
        out.modes.push(
            score(
                &ctx,
                "stored (tasks, queued left out)",
                &format!(
                    "SELECT household_id, risk_type, kind FROM {WARNINGS} WHERE status <> 'queued'"
                ),
                out.households,
                months,
            )
            .await?,
        );
    }
    Ok(out)
}

/// Whether the truth carries incomes before and after the year, which the
/// reference needs.
async fn has_incomes(ctx: &SessionContext) -> Result<bool> {
    let n = scalar_i64(
        ctx,
        "SELECT count(*) FROM truth WHERE per_capita_before IS NOT NULL AND per_capita_after IS NOT NULL",
    )
    .await?;
    Ok(n > 0)
}

/// The columns of the per-household listing, in order.
const HOUSEHOLD_COLUMNS: &[&str] = &[
    "household_id",
    "status",
    "cause",
    "observable",
    "per_capita_before",
    "per_capita_after",
    "roster_per_capita",
    "estimate_per_capita",
    "components",
    "kind",
    "risk_type",
    "outcome",
];

/// Every household that was newly at risk or was warned, with the truth
/// beside the assessment's estimate: where the misses and the false
/// alarms come from. `outcome` is hit, miss, false_alarm or
/// already_below.
async fn write_households(ctx: &SessionContext, path: &Path) -> Result<()> {
    let sql = format!(
        "WITH items AS (
        SELECT household_id,
          -- Summed as decimals, as the assessment sums money: the same
          -- figure whatever order the rows arrive in.
          CAST(sum(CAST(CASE WHEN effect = 'subtract' THEN coalesce(amount, 0.0) WHEN effect = 'add' THEN -coalesce(amount, 0.0) ELSE 0.0 END AS DECIMAL(38, 6))) AS DOUBLE) AS net_loss,
          string_agg(component || ' ' || CAST(round(coalesce(amount, 0.0), 0) AS VARCHAR), '; ' ORDER BY component) AS components
        FROM assessment_items GROUP BY household_id),
      warned AS (
        SELECT household_id, min(kind) AS kind, min(risk_type) AS risk_type
        FROM fresh_warnings GROUP BY household_id),
      roster AS (
        SELECT household_id,
          coalesce(CAST(per_capita_income AS DOUBLE),
                   CAST(annual_income AS DOUBLE) / nullif(CAST(household_size AS DOUBLE), 0)) AS roster_pc,
          CAST(household_size AS DOUBLE) AS size
        FROM {ROSTER_HOUSEHOLD})
      SELECT t.household_id, t.status, t.cause, t.observable,
        round(t.per_capita_before, 0) AS per_capita_before,
        round(t.per_capita_after, 0) AS per_capita_after,
        round(r.roster_pc, 0) AS roster_per_capita,
        round(r.roster_pc - coalesce(i.net_loss, 0.0) / r.size, 0) AS estimate_per_capita,
        coalesce(i.components, '') AS components,
        coalesce(w.kind, '') AS kind, coalesce(w.risk_type, '') AS risk_type,
        CASE
          WHEN t.status = 'newly_at_risk' AND w.kind IS NOT NULL AND w.kind <> 'roster_below_line' THEN 'hit'
          WHEN t.status = 'newly_at_risk' THEN 'miss'
          WHEN t.status = 'already_below' THEN 'already_below'
          ELSE 'false_alarm'
        END AS outcome
      FROM truth t
      LEFT JOIN warned w ON w.household_id = t.household_id
      LEFT JOIN items i ON i.household_id = t.household_id
      LEFT JOIN roster r ON r.household_id = t.household_id
      WHERE (t.status = 'newly_at_risk' AND t.records > 0) OR w.kind IS NOT NULL
      ORDER BY outcome, t.household_id"
    );
    let rows = crate::lake::query::rows_of(&ctx.sql(&sql).await?.collect().await?)?;
    let mut out =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    out.write_record(HOUSEHOLD_COLUMNS)?;
    for r in &rows {
        out.write_record(
            HOUSEHOLD_COLUMNS
                .iter()
                .map(|c| r.get(*c).map(String::as_str).unwrap_or("")),
        )?;
    }
    out.flush()?;
    Ok(())
}
