//! The review budget as a hard limit.
//!
//! With `target_precision`, the calibrated patterns send records to review
//! only within `review_budget` ([`super::calibrate::Calibration::decide`]).
//! Two kinds of review are outside that estimate: records whose pattern
//! was too rare in the labelled sample to calibrate (the thresholds decide
//! them), and records whose ID number is in doubt. In a small source they
//! can fill the clerks' queue past the budget on their own. When they do,
//! the queue keeps the most probable records up to the budget and the rest
//! stay unlinked; the run summary says how many.

use anyhow::Result;
use datafusion::prelude::SessionContext;

use crate::lake::query::{scalar_i64, sql_ident};

/// A decided relation with its reviews held to the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Capped {
    /// The query reading the decisions with the reviews past the budget
    /// turned into unlinked records (no person, no household).
    pub sql: String,
    /// How many reviews that turned.
    pub left_unlinked: i64,
}

/// When `decided` (a registered relation with the columns of
/// [`super::plan::decision_sql`], its record key named `key`) has more
/// than `budget` records in review, the query that keeps the `budget`
/// most probable of them in review (ties: the smaller key) and leaves the
/// others unlinked. None when the reviews are within the budget.
pub async fn cap_reviews(
    ctx: &SessionContext,
    decided: &str,
    key: &str,
    budget: i64,
) -> Result<Option<Capped>> {
    let budget = budget.max(0);
    let reviews = scalar_i64(
        ctx,
        &format!("SELECT count(*) FROM {decided} WHERE status = 'review'"),
    )
    .await?;
    if reviews <= budget {
        return Ok(None);
    }
    let key = format!("CAST(d.{} AS VARCHAR)", sql_ident(key));
    // The first review past the budget, in the queue's order: it and every
    // review after it are left unlinked.
    let cut = format!(
        "SELECT d.match_probability AS cut_probability, {key} AS cut_key FROM {decided} d \
         WHERE d.status = 'review' ORDER BY d.match_probability DESC, {key} ASC LIMIT 1 OFFSET {budget}"
    );
    let past_budget = format!(
        "(d.status = 'review' AND (d.match_probability < c.cut_probability \
         OR (d.match_probability = c.cut_probability AND {key} >= c.cut_key)))"
    );
    let schema = ctx.table(decided).await?.schema().clone();
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let name = sql_ident(f.name());
            match f.name().as_str() {
                "status" => {
                    format!("CASE WHEN {past_budget} THEN 'unlinked' ELSE d.status END AS status")
                }
                "person_id" | "household_id" => {
                    format!("CASE WHEN {past_budget} THEN NULL ELSE d.{name} END AS {name}")
                }
                _ => format!("d.{name}"),
            }
        })
        .collect();
    Ok(Some(Capped {
        sql: format!(
            "SELECT {} FROM {decided} d CROSS JOIN ({cut}) c",
            columns.join(", ")
        ),
        left_unlinked: reviews - budget,
    }))
}

#[cfg(test)]
mod tests {
    //! The cap on a small decided relation, as a clerk would count it.

    use super::*;
    use crate::lake::query::rows_of;

    async fn decided(rows: &str) -> SessionContext {
        let ctx = SessionContext::new();
        ctx.sql(&format!(
            "CREATE VIEW decided AS SELECT * FROM (VALUES {rows}) AS t(\"记录号\", person_id, household_id, match_probability, status)"
        ))
        .await
        .unwrap();
        ctx
    }

    async fn statuses(ctx: &SessionContext, sql: &str) -> Vec<(String, String, String)> {
        let batches = ctx
            .sql(&format!("SELECT * FROM ({sql}) ORDER BY \"记录号\""))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        rows_of(&batches)
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r["记录号"].clone(),
                    r["status"].clone(),
                    r.get("person_id").cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    const ROWS: &str = "('a', 'p1', 'h1', 0.99, 'linked'), ('b', 'p2', 'h2', 0.7, 'review'), \
        ('c', 'p3', 'h3', 0.9, 'review'), ('d', 'p4', 'h4', 0.7, 'review'), \
        ('e', NULL, NULL, 0.1, 'unlinked')";

    #[tokio::test]
    async fn within_the_budget_nothing_changes() {
        let ctx = decided(ROWS).await;
        assert_eq!(
            cap_reviews(&ctx, "decided", "记录号", 3).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn past_the_budget_the_least_probable_reviews_stay_unlinked() {
        let ctx = decided(ROWS).await;
        let capped = cap_reviews(&ctx, "decided", "记录号", 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(capped.left_unlinked, 1);
        let rows = statuses(&ctx, &capped.sql).await;
        let status: Vec<_> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
        // c (0.9) first, then b and d tie at 0.7: the smaller key keeps its place.
        assert_eq!(
            status,
            [
                ("a", "linked"),
                ("b", "review"),
                ("c", "review"),
                ("d", "unlinked"),
                ("e", "unlinked")
            ]
        );
        assert!(
            rows[3].2.is_empty(),
            "an unlinked record names no one: {rows:?}"
        );
        assert_eq!(rows[0].2, "p1", "links are untouched");
    }

    #[tokio::test]
    async fn a_budget_of_nothing_empties_the_queue_and_keeps_every_row() {
        let ctx = decided(ROWS).await;
        let capped = cap_reviews(&ctx, "decided", "记录号", 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(capped.left_unlinked, 3);
        let rows = statuses(&ctx, &capped.sql).await;
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().all(|r| r.1 != "review"), "{rows:?}");
    }
}
