//! Why a record linked (or did not): its candidates and, for each, the
//! waterfall of weights from the prior through every comparison.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};

use super::settings::SettingsFile;
use super::{link_table, model, plan, prepare_sides};
use crate::lake::Lake;
use crate::lake::query::{bound, rows_of, sql_ident};

/// One comparison's part in a candidate's match weight.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    /// The comparison's name.
    pub comparison: String,
    /// The level the pair reached.
    pub level: String,
    /// That level's weight, log2(m/u).
    pub weight: f64,
    /// The match weight after this step.
    pub cumulative: f64,
}

/// One roster person the record was compared with.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Candidate {
    /// The roster person.
    pub person_id: String,
    /// Their household.
    pub household_id: String,
    /// The person's name, ID number, birth date, gender and region code.
    pub values: BTreeMap<String, String>,
    /// The sum of the prior and every step's weight.
    pub match_weight: f64,
    /// The probability the match weight stands for.
    pub match_probability: f64,
    /// A clerk's decision on this pair, if any.
    pub review_decision: Option<String>,
    /// The weights, comparison by comparison.
    pub waterfall: Vec<Step>,
}

/// Why a record was linked as it was: its values, its status, and its best candidates with their weights.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    /// The record's source.
    pub source: String,
    /// The record's key in `staged_<source>`.
    pub record_key: String,
    /// The record's name, ID number, birth date, gender and region code.
    pub record: BTreeMap<String, String>,
    /// Its status in `link_<source>` (linked, review, unlinked), if linked yet.
    pub status: Option<String>,
    /// The person it is linked to, if any.
    pub linked_person: Option<String>,
    /// The model version the weights come from.
    pub model_version: i64,
    /// The prior's weight, where every candidate's sum starts.
    pub prior_weight: f64,
    /// The best candidates, best first.
    pub candidates: Vec<Candidate>,
}

const SHOWN: &[&str] = &["name", "id_number", "birth_date", "gender", "region_code"];

/// Explain how record `record_key` of `source` is scored against its best `limit` candidates, with the latest model.
pub async fn explain(
    lake: &Lake,
    schemas_dir: &Path,
    settings_file: &SettingsFile,
    source: &crate::config::SourceName,
    record_key: &str,
    limit: usize,
) -> Result<Explanation> {
    let sides = prepare_sides(lake, schemas_dir, settings_file, source, Some(record_key)).await?;
    let ctx = &sides.ctx;
    if sides.records == 0 {
        bail!(
            "no record with key '{record_key}' in {}",
            crate::lake::tables::staged(source)
        );
    }
    let Some(model) = model::load_latest(ctx, source, &sides.settings).await? else {
        bail!("no model for source '{source}' yet: run `safetynet link --source {source}` first");
    };
    let shown = SHOWN.join(", ");
    let record = rows_of(
        &ctx.sql(&format!("SELECT {shown} FROM l"))
            .await?
            .collect()
            .await?,
    )?
    .into_iter()
    .next()
    .unwrap_or_default();

    let decisions = plan::register_source_decisions(ctx, source).await?;
    let ctes = plan::scoring_ctes(
        &sides.settings,
        &model,
        sides.registry_size,
        decisions,
        plan::ALL.pairs,
    );
    let candidate_values: String = SHOWN
        .iter()
        .map(|c| format!(", r.{c} AS candidate_{c}"))
        .collect();
    let sql = format!(
        "{ctes} SELECT ranked.*, r.person_id, r.household_id{candidate_values} FROM ranked JOIN r ON ranked.person_key = r.record_key
         ORDER BY match_weight DESC, person_key LIMIT {limit}"
    );
    let mut candidates = Vec::new();
    for row in rows_of(&ctx.sql(&sql).await?.collect().await?)? {
        let mut cumulative = model.prior_weight();
        let mut waterfall = vec![Step {
            comparison: "prior 先验".into(),
            level: String::new(),
            weight: cumulative,
            cumulative,
        }];
        for (c, params) in sides.settings.comparisons.iter().zip(&model.comparisons) {
            let level: usize = row
                .get(&format!("{}_level", c.name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let weight: f64 = row
                .get(&format!("{}_weight", c.name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            cumulative += weight;
            waterfall.push(Step {
                comparison: c.name.clone(),
                level: if level == 0 {
                    "missing".into()
                } else {
                    params.labels[level - 1].clone()
                },
                weight,
                cumulative,
            });
        }
        let match_weight: f64 = row
            .get("match_weight")
            .and_then(|v| v.parse().ok())
            .unwrap_or(cumulative);
        candidates.push(Candidate {
            person_id: row.get("person_id").cloned().unwrap_or_default(),
            household_id: row.get("household_id").cloned().unwrap_or_default(),
            values: SHOWN
                .iter()
                .map(|c| {
                    (
                        c.to_string(),
                        row.get(&format!("candidate_{c}"))
                            .cloned()
                            .unwrap_or_default(),
                    )
                })
                .collect(),
            match_weight,
            match_probability: 1.0 / (1.0 + (-match_weight).exp2()),
            review_decision: row
                .get("review_decision")
                .filter(|d| !d.is_empty())
                .cloned(),
            waterfall,
        });
    }

    let (mut status, mut linked_person) = (None, None);
    let table = link_table(source);
    if ctx.table_exist(table.as_str())? {
        let sql = format!(
            "SELECT status, person_id FROM {table} WHERE CAST({} AS VARCHAR) = $1",
            sql_ident(&sides.schema.key)
        );
        if let Some(row) = rows_of(&bound(ctx, &sql, &[record_key]).await?.collect().await?)?
            .into_iter()
            .next()
        {
            status = row.get("status").cloned();
            linked_person = row.get("person_id").filter(|p| !p.is_empty()).cloned();
        }
    }
    Ok(Explanation {
        source: source.to_string(),
        record_key: record_key.to_string(),
        record,
        status,
        linked_person,
        model_version: model.version,
        prior_weight: model.prior_weight(),
        candidates,
    })
}
