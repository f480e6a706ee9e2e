//! Training: u from random pairs, m by EM over candidate-pair patterns,
//! the prior from deterministic rules.

use anyhow::Result;
use datafusion::prelude::SessionContext;

use super::model::{self, ComparisonParams, Model, Pattern};
use super::plan::level_columns;
use super::settings::Settings;
use crate::lake::query::{bound, first_column_of, rows_of, scalar_i64, strings_of};

async fn level_counts(
    ctx: &SessionContext,
    table: &str,
    settings: &Settings,
) -> Result<Vec<Vec<f64>>> {
    let mut counts = Vec::new();
    for c in &settings.comparisons {
        let levels = c.labels().len();
        let mut row = vec![0.0; levels + 1];
        let sql = format!(
            "SELECT CAST({n}_level AS VARCHAR), CAST(count(*) AS VARCHAR) FROM {table} GROUP BY {n}_level",
            n = c.name
        );
        for batch in ctx.sql(&sql).await?.collect().await? {
            let level = strings_of(batch.column(0))?;
            let count = strings_of(batch.column(1))?;
            for (l, n) in level.into_iter().zip(count) {
                let l: usize = l.unwrap_or_default().parse().unwrap_or(0);
                if l <= levels {
                    row[l] = n.unwrap_or_default().parse().unwrap_or(0.0);
                }
            }
        }
        counts.push(row);
    }
    Ok(counts)
}

/// Level patterns of the candidate pairs (optionally only those meeting a
/// condition over the `<comparison>_level` columns) and their counts.
async fn patterns_where(
    ctx: &SessionContext,
    settings: &Settings,
    condition: Option<&str>,
) -> Result<Vec<Pattern>> {
    let names: Vec<String> = settings
        .comparisons
        .iter()
        .map(|c| format!("{}_level", c.name))
        .collect();
    let filter = condition.map_or(String::new(), |c| format!(" WHERE {c}"));
    let sql = format!(
        "SELECT {cols}, count(*) AS pairs FROM pairs{filter} GROUP BY {cols}",
        cols = names.join(", ")
    );
    let mut patterns = Vec::new();
    for row in rows_of(&ctx.sql(&sql).await?.collect().await?)? {
        let number = |name: &str| {
            row.get(name)
                .map_or("0", String::as_str)
                .parse::<f64>()
                .unwrap_or(0.0)
        };
        let levels = names.iter().map(|n| number(n) as usize).collect();
        patterns.push(Pattern {
            levels,
            count: number("pairs"),
        });
    }
    Ok(patterns)
}

/// Train a model for `source` on its candidate pairs: u from random pairs, m by EM per training session.
pub async fn train_model(
    ctx: &SessionContext,
    source: &str,
    settings: &Settings,
    records: i64,
    registry_size: i64,
) -> Result<Model> {
    // u: level frequencies among random pairs (a deterministic sample).
    let n = settings.u_sample;
    let sample = format!(
        "SELECT {levels} FROM (SELECT * FROM l ORDER BY md5(record_key) LIMIT {n}) l
         CROSS JOIN (SELECT * FROM r ORDER BY md5(record_key) LIMIT {n}) r",
        levels = level_columns(settings)
    );
    let random = ctx.sql(&sample).await?.cache().await?;
    ctx.register_table("random_pairs", random.into_view())?;
    let u = model::u_from_counts(
        settings,
        &level_counts(ctx, "random_pairs", settings).await?,
    );
    ctx.deregister_table("random_pairs")?;

    // m: EM over the candidate pairs' level patterns. With training
    // sessions, each session's pairs (e.g. those agreeing exactly on the ID
    // number) teach the comparisons it lists, as Splink trains blocked on
    // one field to learn the others; a global EM fills any comparison no
    // session estimates.
    let all: Vec<usize> = (0..settings.comparisons.len()).collect();
    let global = patterns_where(ctx, settings, None).await?;
    let (mut m, mut iterations) = model::estimate_m(settings, &u, &global, &all);
    let mut estimated: Vec<Vec<Vec<f64>>> = vec![Vec::new(); settings.comparisons.len()];
    for session in &settings.training {
        let active: Vec<usize> = session
            .estimates
            .iter()
            .map(|name| {
                settings
                    .comparisons
                    .iter()
                    .position(|c| &c.name == name)
                    .ok_or_else(|| {
                        anyhow::anyhow!("training estimates unknown comparison '{name}'")
                    })
            })
            .collect::<Result<_>>()?;
        let patterns = patterns_where(ctx, settings, Some(&session.when)).await?;
        if patterns.iter().map(|p| p.count).sum::<f64>() < 10.0 {
            tracing::warn!(when = %session.when, "too few pairs to train on; skipped");
            continue;
        }
        let (session_m, n) = model::estimate_m(settings, &u, &patterns, &active);
        iterations += n;
        for &c in &active {
            estimated[c].push(session_m[c].clone());
        }
    }
    for (c, estimates) in estimated.into_iter().enumerate() {
        if !estimates.is_empty() {
            let levels = estimates[0].len();
            m[c] = (0..levels)
                .map(|l| estimates.iter().map(|e| e[l]).sum::<f64>() / estimates.len() as f64)
                .collect();
        }
    }

    // Prior: deterministic matches over all record × person pairs.
    let deterministic = if settings.deterministic_rules.is_empty() {
        0
    } else {
        let rules = settings
            .deterministic_rules
            .iter()
            .map(|r| format!("({r})"))
            .collect::<Vec<_>>()
            .join(" OR ");
        scalar_i64(ctx, &format!("SELECT count(*) FROM pairs p JOIN l ON p.record_key = l.record_key JOIN r ON p.person_key = r.record_key WHERE {rules}")).await?
    };
    let all_pairs = (records.max(1) as f64) * (registry_size.max(1) as f64);
    let expected = (deterministic as f64 / settings.deterministic_recall).max(1.0);
    let prior = (expected / all_pairs).clamp(1e-12, 0.5);

    let version = if ctx.table_exist(model::LINK_MODEL)? {
        first_column_of(
            bound(
                ctx,
                &format!(
                    "SELECT CAST(coalesce(max(version), 0) AS VARCHAR) FROM {} WHERE source = $1",
                    model::LINK_MODEL
                ),
                &[source],
            )
            .await?,
        )
        .await?
        .into_iter()
        .flatten()
        .next()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0)
            + 1
    } else {
        1
    };
    Ok(Model {
        version,
        source: source.to_string(),
        prior,
        comparisons: settings
            .comparisons
            .iter()
            .zip(m.into_iter().zip(u))
            .map(|(c, (m, u))| ComparisonParams {
                name: c.name.clone(),
                labels: c.labels(),
                m,
                u,
            })
            .collect(),
        em_iterations: iterations,
    })
}
