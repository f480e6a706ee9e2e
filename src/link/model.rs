//! The Fellegi–Sunter model: per comparison and level, m (the chance a
//! true match shows this level) and u (the chance a non-match does), and
//! the prior chance that two random records match. Weights are
//! log2(m / u); a pair's match weight is the prior's log-odds plus the
//! weights of its levels.
//!
//! u comes from random record × person pairs; m from expectation
//! maximisation over the candidate pairs' level patterns (no labels); the
//! prior from deterministic rules and their assumed recall.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use super::settings::Settings;
use crate::lake::Lake;
use crate::lake::query::{bound, rows_of};
pub use crate::lake::tables::LINK_MODEL;
use crate::lake::tables::timestamp_type;

/// Smallest probability any level may have, so no weight is infinite.
const FLOOR: f64 = 1e-7;

/// Smallest m any level keeps after training: a level never seen among the
/// training matches (a birth-date slip when training pairs share the ID) is
/// still possible for a true match, so it costs bits rather than ruling the
/// pair out.
const M_FLOOR: f64 = 0.002;

/// One comparison's trained parameters.
#[derive(Debug, Clone)]
pub struct ComparisonParams {
    /// The comparison's name.
    pub name: String,
    /// Its level labels, level 1 first.
    pub labels: Vec<String>,
    /// Index 0 is level 1.
    pub m: Vec<f64>,
    /// Index 0 is level 1: how often a non-match shows the level.
    pub u: Vec<f64>,
}

impl ComparisonParams {
    /// Bayes factor in bits for a level (0 = no information).
    pub fn weight(&self, level: usize) -> f64 {
        if level == 0 || level > self.m.len() {
            return 0.0;
        }
        (self.m[level - 1].max(FLOOR) / self.u[level - 1].max(FLOOR)).log2()
    }
}

/// A trained model for one source.
#[derive(Debug, Clone)]
pub struct Model {
    /// Its version, from 1.
    pub version: i64,
    /// The source it was trained on.
    pub source: String,
    /// Probability that a random record × person pair is a match.
    pub prior: f64,
    /// Each comparison's parameters, in settings order.
    pub comparisons: Vec<ComparisonParams>,
    /// EM iterations the training took.
    pub em_iterations: usize,
}

impl Model {
    /// The prior as a weight: log2(prior / (1 − prior)).
    pub fn prior_weight(&self) -> f64 {
        (self.prior / (1.0 - self.prior)).log2()
    }
}

/// Level counts per comparison, from random pairs: u-probabilities.
pub fn u_from_counts(settings: &Settings, counts: &[Vec<f64>]) -> Vec<Vec<f64>> {
    settings
        .comparisons
        .iter()
        .zip(counts)
        .map(|(c, count)| {
            let levels = c.labels().len();
            let total: f64 = count.iter().skip(1).sum();
            (1..=levels)
                .map(|l| {
                    (count.get(l).copied().unwrap_or(0.0) + 0.5) / (total + 0.5 * levels as f64)
                })
                .collect()
        })
        .collect()
}

/// A level pattern over all comparisons and how many candidate pairs show it.
pub struct Pattern {
    /// The level of each comparison (0: no information).
    pub levels: Vec<usize>,
    /// Candidate pairs with exactly these levels.
    pub count: f64,
}

/// Estimate m by EM over candidate-pair patterns, holding nothing fixed
/// during the fit (u within the candidate set differs from u over random
/// pairs, because blocking already selects similar pairs). Returns m and the
/// iterations used.
/// `active` lists the comparisons that take part; the others are ignored
/// (a training session blocked on a comparison cannot learn about it).
pub fn estimate_m(
    settings: &Settings,
    u_random: &[Vec<f64>],
    patterns: &[Pattern],
    active: &[usize],
) -> (Vec<Vec<f64>>, usize) {
    let sizes: Vec<usize> = settings
        .comparisons
        .iter()
        .map(|c| c.labels().len())
        .collect();
    // Start: matches mostly agree (level 1), non-matches as random pairs.
    let mut m: Vec<Vec<f64>> = sizes
        .iter()
        .map(|&n| {
            let rest = 0.2 / (n.max(2) - 1) as f64;
            (0..n).map(|i| if i == 0 { 0.8 } else { rest }).collect()
        })
        .collect();
    let mut u = u_random.to_vec();
    let mut lambda = 0.3;
    let mut iterations = 0;
    for _ in 0..settings.em_iterations {
        iterations += 1;
        let mut m_acc: Vec<Vec<f64>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
        let mut u_acc = m_acc.clone();
        let (mut matched, mut total) = (0.0, 0.0);
        for p in patterns {
            let (mut pm, mut pu) = (lambda, 1.0 - lambda);
            for (c, &level) in p.levels.iter().enumerate() {
                if level > 0 && active.contains(&c) {
                    pm *= m[c][level - 1].max(FLOOR);
                    pu *= u[c][level - 1].max(FLOOR);
                }
            }
            let g = pm / (pm + pu);
            matched += g * p.count;
            total += p.count;
            for (c, &level) in p.levels.iter().enumerate() {
                if level > 0 && active.contains(&c) {
                    m_acc[c][level - 1] += g * p.count;
                    u_acc[c][level - 1] += (1.0 - g) * p.count;
                }
            }
        }
        let normalise = |acc: &Vec<Vec<f64>>| -> Vec<Vec<f64>> {
            acc.iter()
                .map(|levels| {
                    let sum: f64 = levels.iter().sum();
                    levels
                        .iter()
                        .map(|v| {
                            if sum > 0.0 {
                                (v / sum).max(FLOOR)
                            } else {
                                FLOOR
                            }
                        })
                        .collect()
                })
                .collect()
        };
        let new_m = normalise(&m_acc);
        let new_u = normalise(&u_acc);
        let change = new_m
            .iter()
            .flatten()
            .zip(m.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        m = new_m;
        u = new_u;
        lambda = if total > 0.0 {
            (matched / total).clamp(1e-6, 1.0 - 1e-6)
        } else {
            lambda
        };
        if change < 1e-6 {
            break;
        }
    }
    for &c in active {
        let floored: Vec<f64> = m[c].iter().map(|v| v.max(M_FLOOR)).collect();
        let sum: f64 = floored.iter().sum();
        m[c] = floored.into_iter().map(|v| v / sum).collect();
    }
    (m, iterations)
}

/// The schema of [`LINK_MODEL`].
pub fn model_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("version", DataType::Int64, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("trained_at", timestamp_type(), false),
        Field::new("comparison", DataType::Utf8, false),
        Field::new("level", DataType::Int32, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("m_probability", DataType::Float64, false),
        Field::new("u_probability", DataType::Float64, false),
        Field::new("prior", DataType::Float64, false),
        Field::new("em_iterations", DataType::Int64, false),
        // What the run that trained the model estimated, from the records
        // whose ID number it hid, of links made without one (see
        // `link::calibrate`); null when it could not say. Added after the
        // table was first written: older versions read null.
        Field::new("calibration_labelled", DataType::Int64, true),
        Field::new("calibrated_precision_without_id", DataType::Float64, true),
        Field::new("calibrated_recall_without_id", DataType::Float64, true),
    ]))
}

/// Append a model as a new version, with what the run that trained it
/// estimated of its links without an ID number.
pub async fn store(
    lake: &Lake,
    model: &Model,
    calibration: Option<&super::calibrate::Calibration>,
) -> Result<()> {
    let mut rows: Vec<(String, i32, String, f64, f64)> = Vec::new();
    for c in &model.comparisons {
        for (i, label) in c.labels.iter().enumerate() {
            rows.push((c.name.clone(), i as i32 + 1, label.clone(), c.m[i], c.u[i]));
        }
    }
    let n = rows.len();
    let now = Utc::now().timestamp_micros();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![model.version; n])),
        Arc::new(StringArray::from(vec![model.source.as_str(); n])),
        Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.0.as_str()),
        )),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.2.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.4))),
        Arc::new(Float64Array::from(vec![model.prior; n])),
        Arc::new(Int64Array::from(vec![model.em_iterations as i64; n])),
        Arc::new(Int64Array::from(vec![calibration.map(|c| c.labelled); n])),
        Arc::new(Float64Array::from(vec![
            calibration
                .and_then(|c| c.precision());
            n
        ])),
        Arc::new(Float64Array::from(vec![
            calibration.and_then(|c| c.recall());
            n
        ])),
    ];
    let batch = RecordBatch::try_new(model_schema(), columns)?;
    lake.append(LINK_MODEL, &model_schema(), vec![batch]).await
}

/// The newest stored model for a source, if any; it must have the
/// comparisons and levels the settings ask for.
pub async fn load_latest(
    ctx: &SessionContext,
    source: &str,
    settings: &Settings,
) -> Result<Option<Model>> {
    if !ctx.table_exist(LINK_MODEL)? {
        return Ok(None);
    }
    let sql = format!(
        "SELECT version, comparison, level, label, m_probability, u_probability, prior, em_iterations
         FROM {LINK_MODEL}
         WHERE source = $1 AND version = (SELECT max(version) FROM {LINK_MODEL} WHERE source = $1)
         ORDER BY comparison, level"
    );
    let names = [
        "version",
        "comparison",
        "level",
        "label",
        "m_probability",
        "u_probability",
        "prior",
        "em_iterations",
    ];
    let rows: Vec<Vec<String>> = rows_of(&bound(ctx, &sql, &[source]).await?.collect().await?)?
        .into_iter()
        .map(|row| {
            names
                .iter()
                .map(|n| row.get(*n).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let number = |s: &str| {
        s.parse::<f64>()
            .with_context(|| format!("bad number {s} in {LINK_MODEL}"))
    };
    let version: i64 = rows[0][0].parse()?;
    let mut comparisons = Vec::new();
    for c in &settings.comparisons {
        let levels: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] == c.name).collect();
        let labels: Vec<String> = levels.iter().map(|r| r[3].clone()).collect();
        if labels != c.labels() {
            bail!(
                "the stored model (version {version}) does not fit the settings' comparison '{}': retrain with --train",
                c.name
            );
        }
        comparisons.push(ComparisonParams {
            name: c.name.clone(),
            labels,
            m: levels
                .iter()
                .map(|r| number(&r[4]))
                .collect::<Result<_>>()?,
            u: levels
                .iter()
                .map(|r| number(&r[5]))
                .collect::<Result<_>>()?,
        });
    }
    Ok(Some(Model {
        version,
        source: source.to_string(),
        prior: number(&rows[0][6])?,
        comparisons,
        em_iterations: rows[0][7].parse().unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EM recovers m from a synthetic mixture of matches and non-matches.
    #[test]
    fn em_separates_matches_from_non_matches() {
        let settings: Settings = toml::from_str(
            r#"
link_threshold = 0.9
review_threshold = 0.5
margin_bits = 3
deterministic_rules = []
deterministic_recall = 0.5
blocking = ["true"]
[[comparison]]
name = "a"
kind = "exact"
[[comparison]]
name = "b"
kind = "exact"
[[comparison]]
name = "c"
kind = "exact"
"#,
        )
        .unwrap();
        // True m = 0.9 agree, u = 0.1 agree; 1,000 matches, 9,000 non-matches.
        let mut patterns = Vec::new();
        for a in [1usize, 2] {
            for b in [1usize, 2] {
                for c in [1usize, 2] {
                    let p = |l: usize, agree: f64| if l == 1 { agree } else { 1.0 - agree };
                    let count = 1000.0 * p(a, 0.9) * p(b, 0.9) * p(c, 0.9)
                        + 9000.0 * p(a, 0.1) * p(b, 0.1) * p(c, 0.1);
                    patterns.push(Pattern {
                        levels: vec![a, b, c],
                        count,
                    });
                }
            }
        }
        let u = vec![vec![0.1, 0.9]; 3];
        let (m, _) = estimate_m(&settings, &u, &patterns, &[0, 1, 2]);
        for levels in &m {
            assert!((levels[0] - 0.9).abs() < 0.02, "{m:?}");
        }
    }
}
