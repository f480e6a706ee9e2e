//! How well the linker does on records without an ID number, learnt from
//! the labels the data gives for free.
//!
//! A record whose ID number is valid settles who it is about: the person
//! with that number on the registry, or nobody there when the number is not
//! on it (a namesake, a stranger). Hide that number and link the record the
//! way a record without one is linked — the same blocking rules, the same
//! model, the same decision — and its ID tells whether the linker was
//! right. Over a sample of such records this gives, without any truth
//! file:
//!
//! - the **precision** and **recall** of links made without an ID number;
//! - for each **evidence pattern** of the best candidate (the levels of the
//!   comparisons other than the ID's: name, birth date, gender, region),
//!   how often that candidate is the right person, beside the model's own
//!   probability for it. A pattern such as "same name, same county, nothing
//!   else" is the true person nine times in ten in one county's data and
//!   one time in three in another's; this is where that shows.
//!
//! **What it assumes:** a record lacks its ID number about as often
//! whether or not it is about someone on the registry, and a record with
//! its number hidden looks like one that never had it (the same name,
//! birth-date and region quality). Where departments leave the ID out
//! mostly for people outside the registry, the estimate is too low, and
//! the other way round.
//!
//! The figures go to `link_history` (summary) and `link_calibration` (per
//! pattern). With `target_precision` set, the run decides records without
//! an ID number by them ([`Calibration::decide`]): their best candidates
//! are linked pattern by pattern, from the most often right, while the
//! links so made keep the target precision; the next patterns go to
//! review within `review_budget`.

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::Utc;
use datafusion::arrow::array::TimestampMicrosecondArray;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::model::Model;
use super::{Sides, history, plan, prepare, scratch};
use crate::config::SourceName;
use crate::lake::Lake;
use crate::lake::query::{rows_of, scalar_i64};
use crate::lake::tables::LINK_CALIBRATION;

/// At most this many labelled records are linked again: enough for
/// patterns of a few hundred records, cheap beside the run itself.
pub const SAMPLE_RECORDS: i64 = 20_000;

/// A pattern seen on fewer labelled records than this says too little by
/// itself: it borrows from a pool of like patterns ([`POOLED_PARTS`]), or,
/// when no pool has this many either, records showing it are decided by
/// the model's thresholds and `link_requires`, as without calibration.
pub const MIN_PATTERN_RECORDS: i64 = 20;

/// A pattern seen on fewer than [`MIN_PATTERN_RECORDS`] is pooled with the
/// patterns that differ from it only in these parts, the least telling
/// first: the model's band (what it adds to the levels is mostly how
/// common the name is), then the runner-up. The first pool with enough
/// records lends its share to the pattern's own (see
/// [`Calibration::decide`]); a small county's name-and-village patterns,
/// split by band and rival into a dozen records each, are decided by the
/// data rather than left to the thresholds.
pub const POOLED_PARTS: [&str; 2] = ["model=", "rival="];

/// A pattern links only when its candidate is more often the person than
/// not. Below that, each link adds more wrong links than right ones, so
/// F1 falls even where the whole set still keeps the target precision
/// (a set of many ID links has room for a pattern right one time in
/// three); such patterns go to review, or stay unlinked.
pub const MIN_LINK_SHARE: f64 = 0.5;

/// One evidence pattern of a best candidate.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Pattern {
    /// The non-ID comparisons' levels, e.g. `name=exact birth_date=missing …`.
    pub pattern: String,
    /// Labelled records whose best candidate shows it.
    pub records: i64,
    /// Of them, whose best candidate is the person their ID names.
    pub right: i64,
    /// The model's mean match probability for those candidates.
    pub model_probability: f64,
    /// Of them, linked by the run's decision.
    pub linked: i64,
    /// Of those, linked to the right person.
    pub linked_right: i64,
    /// Of them, sent to review by the run's decision.
    pub review: i64,
    /// With `target_precision`: what the run does with records without an
    /// ID number showing it (`linked`, `review`, or `unlinked`); None when
    /// the pattern is too rare to say, and the model decides.
    pub decision: Option<String>,
}

impl Pattern {
    /// How often the best candidate showing this pattern is the person.
    pub fn share_right(&self) -> f64 {
        ratio(self.right, self.records)
    }

    /// The share, pulled towards the model's own probability by one record
    /// more: a pattern seen twice, right twice, is not certain, and one
    /// seen two hundred times, right every time, nearly is.
    pub fn smoothed_share(&self) -> f64 {
        (self.right as f64 + self.model_probability) / (self.records as f64 + 1.0)
    }

    /// The pattern with the first `parts` of [`POOLED_PARTS`] left out:
    /// the key of the pool it shares with the patterns that differ from it
    /// only there.
    fn pool_key(&self, parts: usize) -> String {
        self.pattern
            .split(' ')
            .filter(|part| !POOLED_PARTS[..parts].iter().any(|p| part.starts_with(p)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The share each pattern is decided by, in the order of `patterns`: its
/// [`Pattern::smoothed_share`] when seen on [`MIN_PATTERN_RECORDS`] or
/// more; for a rarer one, its own records made up to that many with the
/// share of its first pool (see [`POOLED_PARTS`]) that has them; None when
/// no pool has, and the thresholds decide it.
fn decision_shares(patterns: &[Pattern]) -> Vec<Option<f64>> {
    let min = MIN_PATTERN_RECORDS as f64;
    // Per level of pooling, each pool as one pattern: its records, right
    // ones and the model's mean probability over them.
    let pools: Vec<std::collections::HashMap<String, Pattern>> = (1..=POOLED_PARTS.len())
        .map(|parts| {
            let mut pools = std::collections::HashMap::<String, Pattern>::new();
            for p in patterns {
                let pool = pools.entry(p.pool_key(parts)).or_default();
                pool.records += p.records;
                pool.right += p.right;
                pool.model_probability += p.model_probability * p.records as f64;
            }
            for pool in pools.values_mut() {
                pool.model_probability /= pool.records.max(1) as f64;
            }
            pools
        })
        .collect();
    patterns
        .iter()
        .map(|p| {
            if p.records >= MIN_PATTERN_RECORDS {
                return Some(p.smoothed_share());
            }
            pools.iter().enumerate().find_map(|(level, pools)| {
                let pool = &pools[&p.pool_key(level + 1)];
                (pool.records >= MIN_PATTERN_RECORDS).then(|| {
                    (p.right as f64 + pool.smoothed_share() * (min - p.records as f64)) / min
                })
            })
        })
        .collect()
}

/// What the labelled records say.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// Records with a valid ID number that were linked again without it
    /// (all of them, or a sample of [`SAMPLE_RECORDS`]).
    pub labelled: i64,
    /// Of them, whose ID number is on the registry: the ones a link could
    /// get right.
    pub on_registry: i64,
    /// Linked without their ID number.
    pub linked: i64,
    /// Of those, to the person their ID names.
    pub linked_right: i64,
    /// Sent to review without their ID number.
    pub review: i64,
    /// Of the labelled records, those with any candidate once their ID was
    /// hidden.
    pub with_candidate: i64,
    /// The source's records that really have no ID number.
    pub without_id: i64,
    /// Of them, those with any candidate.
    pub without_id_with_candidate: i64,
    /// The patterns, the most frequent first.
    pub patterns: Vec<Pattern>,
}

/// How far apart the candidate shares may be before the assumption is
/// reported as looking wrong.
pub const ASSUMPTION_GAP: f64 = 0.15;

impl Calibration {
    /// The share of records that really have no ID number and have a
    /// candidate, less the same share among the labelled records: near 0
    /// when the assumption holds. Clearly below 0, records without an ID
    /// are more often about people off the registry than records with one
    /// (the estimates are then too high); clearly above, less often (too
    /// low). None when fewer than 20 records have no ID.
    pub fn assumption_gap(&self) -> Option<f64> {
        (self.without_id >= 20 && self.labelled > 0).then(|| {
            ratio(self.without_id_with_candidate, self.without_id)
                - ratio(self.with_candidate, self.labelled)
        })
    }

    /// A sentence for the run summary when [`Self::assumption_gap`] is
    /// larger than [`ASSUMPTION_GAP`].
    pub fn assumption_warning(&self) -> Option<String> {
        let gap = self.assumption_gap()?;
        (gap.abs() > ASSUMPTION_GAP).then(|| {
            format!(
                "{:.0}% of the records without an ID number have a candidate, against {:.0}% of the records whose ID was hidden: \
                 records without one are {} often about people on the registry, so the calibrated estimates are likely too {} \
                 (无证号记录与隐去证号记录的候选比例相差较大，校准假设可能不成立)",
                100.0 * ratio(self.without_id_with_candidate, self.without_id),
                100.0 * ratio(self.with_candidate, self.labelled),
                if gap < 0.0 { "less" } else { "more" },
                if gap < 0.0 { "high" } else { "low" },
            )
        })
    }

    /// The precision of links made without an ID number; None when there
    /// were none.
    pub fn precision(&self) -> Option<f64> {
        (self.linked > 0).then(|| ratio(self.linked_right, self.linked))
    }

    /// The share of registry people found without an ID number; None when
    /// no labelled record is on the registry.
    pub fn recall(&self) -> Option<f64> {
        (self.on_registry > 0).then(|| ratio(self.linked_right, self.on_registry))
    }

    /// The precision and recall without an ID number of several sources
    /// taken together: each source's sample stands for its records without
    /// an ID, so its counts are weighted by how many those are.
    pub fn combined<'a>(
        all: impl IntoIterator<Item = &'a Calibration>,
    ) -> (Option<f64>, Option<f64>) {
        let (mut right, mut linked, mut findable) = (0.0, 0.0, 0.0);
        for c in all {
            let scale = ratio(c.without_id, c.labelled);
            right += scale * c.linked_right as f64;
            linked += scale * c.linked as f64;
            findable += scale * c.on_registry as f64;
        }
        (
            (linked > 0.0).then(|| right / linked),
            (findable > 0.0).then(|| right / findable),
        )
    }

    /// Decide the patterns for records without an ID number, and note the
    /// decision on each (see [`Pattern::decision`]).
    ///
    /// Patterns are taken from the most often right (the share of
    /// [`decision_shares`]: smoothed, or for a rare pattern borrowed in
    /// part from its pool): they
    /// link while they are right at least [`MIN_LINK_SHARE`] of the time
    /// and the whole link set — the `id_links` made on an agreeing
    /// ID number, taken as right, and the links by pattern so far — keeps
    /// an expected precision of at least `target_precision`; the next go to
    /// review while the review queue stays within `review_budget` of the
    /// source's `records`; the rest stay unlinked. A pattern's records in
    /// the sample stand for their share of the source's
    /// [`Self::without_id`] records. Patterns seen on fewer than
    /// [`MIN_PATTERN_RECORDS`] with no pool that has as many are left to
    /// the model's thresholds: their links count in the link set's
    /// precision and their reviews in the budget from the start, like
    /// `id_review` (records whose ID number is in doubt). Returns (pattern,
    /// decision) for the decided patterns.
    ///
    /// Afterwards each pattern's `linked`, `linked_right` and `review`, and
    /// the summary's, tell what the run's decision does with the sample,
    /// exactly as they do without a target (on the records that chose the
    /// decision, so slightly flattering).
    pub fn decide(
        &mut self,
        target_precision: f64,
        review_budget: f64,
        records: f64,
        id_links: f64,
        id_review: f64,
    ) -> Vec<(String, String)> {
        let scale = self.without_id as f64 / (self.labelled.max(1) as f64);
        let shares = decision_shares(&self.patterns);
        // The patterns to decide, with their shares.
        let mut order: Vec<(usize, f64)> = shares
            .iter()
            .enumerate()
            .filter_map(|(i, share)| share.map(|share| (i, share)))
            .collect();
        order.sort_by(|&(a, share_a), &(b, share_b)| {
            let (a, b) = (&self.patterns[a], &self.patterns[b]);
            share_b
                .total_cmp(&share_a)
                .then(b.records.cmp(&a.records))
                .then(a.pattern.cmp(&b.pattern))
        });
        let rare = || {
            self.patterns
                .iter()
                .zip(&shares)
                .filter(|(_, share)| share.is_none())
                .map(|(p, _)| p)
        };
        let mut right = id_links + scale * rare().map(|p| p.linked_right as f64).sum::<f64>();
        let mut links = id_links + scale * rare().map(|p| p.linked as f64).sum::<f64>();
        let mut reviewed = id_review + scale * rare().map(|p| p.review as f64).sum::<f64>();
        let (mut linking, mut reviewing) = (true, true);
        let mut out = Vec::new();
        for (i, share) in order {
            let p = &mut self.patterns[i];
            let n = p.records as f64 * scale;
            let decision = if linking
                && share >= MIN_LINK_SHARE
                && (right + n * share) / (links + n) >= target_precision
            {
                right += n * share;
                links += n;
                "linked"
            } else {
                linking = false;
                // One band below the links: once a pattern does not fit
                // the budget, the less likely ones after it do not go.
                if reviewing && (reviewed + n) <= review_budget * records {
                    reviewed += n;
                    "review"
                } else {
                    reviewing = false;
                    "unlinked"
                }
            };
            let (linked, review) = (decision == "linked", decision == "review");
            p.linked = if linked { p.records } else { 0 };
            p.linked_right = if linked { p.right } else { 0 };
            p.review = if review { p.records } else { 0 };
            p.decision = Some(decision.to_string());
            out.push((p.pattern.clone(), decision.to_string()));
        }
        self.add_up_patterns();
        out
    }

    /// The summary's counts over the labelled records that have a
    /// candidate — the only ones a decision can link or send to review —
    /// as the sums of their patterns'.
    fn add_up_patterns(&mut self) {
        let sum = |f: fn(&Pattern) -> i64| self.patterns.iter().map(f).sum();
        self.with_candidate = sum(|p| p.records);
        self.linked = sum(|p| p.linked);
        self.linked_right = sum(|p| p.linked_right);
        self.review = sum(|p| p.review);
    }
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Link the source's labelled records again with their ID numbers hidden,
/// with the run's model and settings, and score them by their IDs. None
/// when the source has no ID number or no record with a valid one.
pub(crate) async fn calibrate(
    lake: &Lake,
    sides: &Sides,
    model: &Model,
) -> Result<Option<Calibration>> {
    let Some(labelled) = prepare::labelled_view_sql(&sides.ctx, &sides.schema).await? else {
        return Ok(None);
    };
    let all = scalar_i64(&sides.ctx, &format!("SELECT count(*) FROM ({labelled})")).await?;
    if all == 0 {
        return Ok(None);
    }
    // A fixed sample by key hash: the same records every run.
    let buckets = (all + SAMPLE_RECORDS - 1) / SAMPLE_RECORDS;
    let sample = if buckets > 1 {
        format!(
            "SELECT * FROM ({labelled}) WHERE {} = 0",
            plan::part_of("record_key", buckets)
        )
    } else {
        labelled
    };
    // Its own session: the blocking rules read `l` and `r`.
    let ctx = lake.session().await?;
    ctx.register_table("r", sides.ctx.table_provider("r").await?)?;
    // Who the whole source knows by each name (made with the sides).
    if sides.settings.patterns_by_name_frequency {
        ctx.register_table(
            plan::NAME_IDS,
            sides.ctx.table_provider(plan::NAME_IDS).await?,
        )?;
    }
    let scratch = scratch::Scratch::new(SAMPLE_RECORDS + sides.registry_size)?;
    scratch
        .materialise(&ctx, "l", &[sample], None)
        .await
        .context("preparing the labelled records")?;
    scratch
        .materialise(&ctx, "pairs", &plan::pairs_sql(&sides.settings, 1), None)
        .await
        .context("building the labelled records' candidate pairs")?;

    let best = plan::best_candidates_ctes(
        &sides.settings,
        model,
        sides.registry_size,
        false,
        &plan::ALL,
    );
    let status = plan::status_sql(&sides.settings);
    let pattern = plan::pattern_sql(&sides.settings, model);
    let named = plan::named_sql(&sides.settings, "l", "x.labelled_id");
    let sql = format!(
        "{best},
named AS ({named}),
judged AS (
  SELECT b.record_key, b.person_key, b.match_probability, {status} AS status, {pattern} AS pattern
  FROM named b
),
on_registry AS (SELECT DISTINCT id_number FROM r WHERE id_number IS NOT NULL)
SELECT l.record_key,
  j.person_key IS NOT NULL AS has_candidate,
  coalesce(j.status, 'unlinked') AS status,
  j.match_probability,
  j.pattern,
  coalesce(p.id_number = l.labelled_id, false) AS right_person,
  o.id_number IS NOT NULL AS on_registry
FROM l
LEFT JOIN judged j ON j.record_key = l.record_key
LEFT JOIN r p ON p.record_key = j.person_key
LEFT JOIN on_registry o ON o.id_number = l.labelled_id"
    );
    ctx.register_table(
        "labelled_outcomes",
        ctx.sql(&sql)
            .await
            .context("linking the labelled records")?
            .cache()
            .await?
            .into_view(),
    )?;
    let summary = rows_of(
        &ctx.sql(
            "SELECT CAST(count(*) AS VARCHAR) AS labelled,
               CAST(count(*) FILTER (WHERE on_registry) AS VARCHAR) AS on_registry
             FROM labelled_outcomes",
        )
        .await?
        .collect()
        .await?,
    )?;
    let row = summary.into_iter().next().unwrap_or_default();
    let int = |k: &str| row.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut out = Calibration {
        labelled: int("labelled"),
        on_registry: int("on_registry"),
        without_id: scalar_i64(&sides.ctx, "SELECT count(*) FROM l WHERE id_number IS NULL")
            .await?,
        without_id_with_candidate: scalar_i64(
            &sides.ctx,
            "SELECT count(DISTINCT p.record_key) FROM pairs p JOIN l ON l.record_key = p.record_key \
             WHERE l.id_number IS NULL",
        )
        .await?,
        ..Default::default()
    };
    let rows = rows_of(
        &ctx.sql(
            "SELECT pattern, CAST(count(*) AS VARCHAR) AS records,
               CAST(count(*) FILTER (WHERE right_person) AS VARCHAR) AS right_person,
               CAST(avg(match_probability) AS VARCHAR) AS model_probability,
               CAST(count(*) FILTER (WHERE status = 'linked') AS VARCHAR) AS linked,
               CAST(count(*) FILTER (WHERE status = 'linked' AND right_person) AS VARCHAR) AS linked_right,
               CAST(count(*) FILTER (WHERE status = 'review') AS VARCHAR) AS review
             FROM labelled_outcomes WHERE has_candidate
             GROUP BY pattern ORDER BY count(*) DESC, pattern",
        )
        .await?
        .collect()
        .await?,
    )?;
    for r in rows {
        let int = |k: &str| r.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        out.patterns.push(Pattern {
            pattern: r.get("pattern").cloned().unwrap_or_default(),
            records: int("records"),
            right: int("right_person"),
            model_probability: r
                .get("model_probability")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
            linked: int("linked"),
            linked_right: int("linked_right"),
            review: int("review"),
            decision: None,
        });
    }
    out.add_up_patterns();
    Ok(Some(out))
}

/// The schema of `link_calibration`: one row per source, run and pattern.
pub fn schema() -> SchemaRef {
    let count = |name: &str| Field::new(name, DataType::Int64, false);
    Arc::new(Schema::new(
        history::run_fields()
            .into_iter()
            .chain([
                Field::new("pattern", DataType::Utf8, false),
                count("records"),
                count("right_person"),
                Field::new("share_right", DataType::Float64, false),
                Field::new("model_probability", DataType::Float64, false),
                count("linked"),
                count("linked_right"),
                Field::new("decision", DataType::Utf8, true),
            ])
            .collect::<Vec<_>>(),
    ))
}

/// Append a run's patterns to `link_calibration`.
pub async fn record(
    lake: &Lake,
    source: &SourceName,
    model_version: i64,
    calibration: &Calibration,
) -> Result<()> {
    let patterns = &calibration.patterns;
    if patterns.is_empty() {
        return Ok(());
    }
    let n = patterns.len();
    let ints = |f: fn(&Pattern) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from(patterns.iter().map(f).collect::<Vec<_>>()))
    };
    let floats = |f: fn(&Pattern) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(
            patterns.iter().map(f).collect::<Vec<_>>(),
        ))
    };
    let at = Utc::now().timestamp_micros();
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![source.as_str(); n])),
            Arc::new(TimestampMicrosecondArray::from(vec![at; n]).with_timezone("UTC")),
            Arc::new(Int64Array::from(vec![model_version; n])),
            Arc::new(StringArray::from(
                patterns
                    .iter()
                    .map(|p| p.pattern.as_str())
                    .collect::<Vec<_>>(),
            )),
            ints(|p| p.records),
            ints(|p| p.right),
            floats(Pattern::share_right),
            floats(|p| p.model_probability),
            ints(|p| p.linked),
            ints(|p| p.linked_right),
            Arc::new(StringArray::from(
                patterns
                    .iter()
                    .map(|p| p.decision.as_deref())
                    .collect::<Vec<_>>(),
            )),
        ],
    )?;
    lake.append(LINK_CALIBRATION, &schema(), vec![batch]).await
}

#[cfg(test)]
mod tests {
    //! The decision by pattern, as a data office would state it.

    use super::*;

    fn pattern(name: &str, records: i64, right: i64, model: f64) -> Pattern {
        Pattern {
            pattern: name.into(),
            records,
            right,
            model_probability: model,
            ..Default::default()
        }
    }

    fn calibration(patterns: Vec<Pattern>) -> Calibration {
        Calibration {
            labelled: patterns.iter().map(|p| p.records).sum(),
            patterns,
            ..Default::default()
        }
    }

    /// Decide `c` as the run does, its sample standing for `without_id`
    /// records without an ID number.
    fn decide(
        c: &mut Calibration,
        target_precision: f64,
        review_budget: f64,
        records: f64,
        without_id: i64,
        id_links: f64,
        id_review: f64,
    ) -> Vec<(String, String)> {
        c.without_id = without_id;
        c.decide(
            target_precision,
            review_budget,
            records,
            id_links,
            id_review,
        )
    }

    fn decision(c: &Calibration, name: &str) -> Option<String> {
        c.patterns
            .iter()
            .find(|p| p.pattern == name)
            .and_then(|p| p.decision.clone())
    }

    /// Name and county alone are the person nine times in ten in one
    /// county and one time in two in another: with room in the precision
    /// target the first links and the second does not, whatever the model
    /// thinks of either.
    #[test]
    fn sources_combine_by_their_records_without_an_id() {
        // One source's sample stands for 100 records without an ID, the
        // other's for 900: the second weighs nine times the first.
        let mut few = calibration(vec![]);
        (few.labelled, few.without_id, few.on_registry) = (100, 100, 100);
        (few.linked, few.linked_right) = (100, 100);
        let mut many = calibration(vec![]);
        (many.labelled, many.without_id, many.on_registry) = (100, 900, 100);
        (many.linked, many.linked_right) = (50, 40);
        let (precision, recall) = Calibration::combined([&few, &many]);
        assert!((precision.unwrap() - (100.0 + 360.0) / (100.0 + 450.0)).abs() < 1e-12);
        assert!((recall.unwrap() - (100.0 + 360.0) / (100.0 + 900.0)).abs() < 1e-12);
        // Sources with no records without an ID say nothing.
        let mut none = calibration(vec![]);
        (none.labelled, none.on_registry, none.linked) = (100, 100, 10);
        assert_eq!(Calibration::combined([&none]), (None, None));
    }

    #[test]
    fn the_data_decides_name_and_county_alone() {
        for (right, linked) in [(270, true), (150, false)] {
            let mut c = calibration(vec![
                pattern("name+birth", 500, 500, 1.0),
                pattern("name+county", 300, right, 0.8),
            ]);
            // 10,000 ID links leave room for about 50 wrong at 0.995.
            decide(&mut c, 0.995, 0.02, 20_000.0, 800, 10_000.0, 0.0);
            assert_eq!(decision(&c, "name+birth").as_deref(), Some("linked"));
            assert_eq!(
                decision(&c, "name+county").as_deref() == Some("linked"),
                linked,
                "{right} of 300 right"
            );
        }
    }

    /// The links made by pattern keep the whole set at the target: the
    /// patterns linked are the most often right, and adding the next one
    /// would break it.
    #[test]
    fn links_stop_where_the_target_would_break() {
        let mut c = calibration(vec![
            pattern("a", 400, 400, 1.0),
            pattern("b", 200, 196, 0.9),
            pattern("c", 200, 170, 0.9),
            pattern("d", 200, 60, 0.5),
        ]);
        let decided = decide(&mut c, 0.99, 0.0, 10_000.0, 1_000, 1_000.0, 0.0);
        let linked: Vec<&str> = decided
            .iter()
            .filter(|(_, d)| d == "linked")
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(linked, vec!["a", "b"]);
        let (mut right, mut links) = (1_000.0, 1_000.0);
        for p in c
            .patterns
            .iter()
            .filter(|p| p.decision.as_deref() == Some("linked"))
        {
            right += p.records as f64 * p.smoothed_share();
            links += p.records as f64;
        }
        assert!(right / links >= 0.99, "{}", right / links);
        let c_share = c.patterns[2].smoothed_share();
        assert!((right + 200.0 * c_share) / (links + 200.0) < 0.99);
        // The summary tells what the decision does with the sample.
        assert_eq!((c.linked, c.linked_right, c.review), (600, 596, 0));
    }

    /// Many ID links leave room in the target for a pattern that is right
    /// one time in three; it still does not link, as each of its links is
    /// more likely wrong than right. It goes to review, within budget.
    #[test]
    fn a_pattern_more_often_wrong_than_right_never_links() {
        let mut c = calibration(vec![
            pattern("sure", 500, 500, 1.0),
            pattern("one_in_three", 60, 20, 0.6),
        ]);
        // 100,000 ID links: room for 500 wrong at 0.995; the pattern
        // stands for 60 records, 40 of them wrong.
        decide(&mut c, 0.995, 0.02, 200_000.0, 560, 100_000.0, 0.0);
        assert_eq!(decision(&c, "sure").as_deref(), Some("linked"));
        assert_eq!(decision(&c, "one_in_three").as_deref(), Some("review"));
        // Right just over half the time, the same pattern links.
        let mut c = calibration(vec![
            pattern("sure", 500, 500, 1.0),
            pattern("most", 60, 34, 0.6),
        ]);
        decide(&mut c, 0.995, 0.02, 200_000.0, 560, 100_000.0, 0.0);
        assert_eq!(decision(&c, "most").as_deref(), Some("linked"));
    }

    /// Records whose ID number is in doubt, sent to review by the
    /// thresholds, take their share of the same budget first: the band of
    /// patterns that fitted alone no longer fits beside them.
    #[test]
    fn reviews_of_doubtful_id_numbers_share_the_budget() {
        let patterns = || {
            calibration(vec![
                pattern("sure", 500, 500, 1.0),
                pattern("likely", 100, 80, 0.8),
                pattern("never", 400, 0, 0.01),
            ])
        };
        // 1,000 records without an ID of 10,000; the budget is 200, and
        // "likely" stands for 100 records.
        for (in_doubt, likely) in [(0.0, "review"), (100.0, "review"), (150.0, "unlinked")] {
            let mut c = patterns();
            decide(&mut c, 0.999, 0.02, 10_000.0, 1_000, 0.0, in_doubt);
            assert_eq!(
                decision(&c, "likely").as_deref(),
                Some(likely),
                "{in_doubt} in doubt"
            );
        }
    }

    /// Review takes the band right below the links, within its budget of
    /// the source's records; a pattern that does not fit ends the band.
    #[test]
    fn review_is_one_band_within_its_budget() {
        let mut c = calibration(vec![
            pattern("sure", 500, 500, 1.0),
            pattern("likely", 100, 80, 0.8),
            pattern("maybe", 300, 150, 0.5),
            pattern("never", 100, 0, 0.01),
        ]);
        // The sample stands for 1,000 records without an ID number, of
        // 10,000; 2 % is 200 records.
        decide(&mut c, 0.999, 0.02, 10_000.0, 1_000, 0.0, 0.0);
        assert_eq!(decision(&c, "sure").as_deref(), Some("linked"));
        assert_eq!(decision(&c, "likely").as_deref(), Some("review"));
        assert_eq!(decision(&c, "maybe").as_deref(), Some("unlinked"));
        assert_eq!(decision(&c, "never").as_deref(), Some("unlinked"));
        let reviewed: f64 = c
            .patterns
            .iter()
            .filter(|p| p.decision.as_deref() == Some("review"))
            .map(|p| p.records as f64 * 1_000.0 / c.labelled as f64)
            .sum();
        assert!(reviewed <= 200.0, "{reviewed}");
    }

    /// When records without an ID number find a candidate far less often
    /// than records whose ID was hidden, they are more often about people
    /// off the registry, and the summary says the estimates run high.
    #[test]
    fn the_summary_says_when_the_assumption_looks_wrong() {
        let c = |with_candidate, without_id_with_candidate| Calibration {
            labelled: 1_000,
            with_candidate,
            without_id: 200,
            without_id_with_candidate,
            ..Default::default()
        };
        assert!(c(700, 130).assumption_warning().is_none());
        let warning = c(700, 60).assumption_warning().unwrap();
        assert!(
            warning.contains("30%") && warning.contains("70%"),
            "{warning}"
        );
        assert!(warning.contains("likely too high"), "{warning}");
        assert!(
            c(400, 180)
                .assumption_warning()
                .unwrap()
                .contains("too low")
        );
        // Too few records without an ID to say.
        let few = Calibration {
            without_id: 10,
            ..c(700, 0)
        };
        assert_eq!(few.assumption_gap(), None);
    }

    /// A pattern seen on too few records is left to the model: no row.
    #[test]
    fn rare_patterns_are_left_to_the_model() {
        let mut c = calibration(vec![
            pattern("common", 500, 500, 1.0),
            pattern(
                "rare",
                MIN_PATTERN_RECORDS - 1,
                MIN_PATTERN_RECORDS - 1,
                1.0,
            ),
        ]);
        let decided = decide(&mut c, 0.995, 0.02, 10_000.0, 1_000, 5_000.0, 0.0);
        assert!(decided.iter().all(|(p, _)| p != "rare"));
        assert_eq!(decision(&c, "rare"), None);
        // Seen twice, right twice, is not certain; seen 200 times nearly is.
        assert!(pattern("x", 2, 2, 0.5).smoothed_share() < 0.9);
        assert!(pattern("y", 200, 200, 1.0).smoothed_share() > 0.999);
    }

    /// A small county's name-and-village pattern, split by the model's
    /// band into a dozen records, is decided by its pool: right 11 times in
    /// 12 beside siblings right every time, it links. A rare pattern whose
    /// siblings are as rare is still left to the thresholds, and one that
    /// is itself often wrong does not link on its pool's good name.
    #[test]
    fn rare_patterns_borrow_from_their_pool() {
        let village = "name=exact birth_date=missing region=same_village";
        let mut c = calibration(vec![
            pattern("sure", 500, 500, 1.0),
            pattern(&format!("{village} rival=clear model=0.9+"), 12, 11, 0.95),
            pattern(&format!("{village} rival=clear model=0.99+"), 9, 9, 0.99),
            pattern(&format!("{village} rival=close model=0.9+"), 10, 2, 0.9),
            pattern(
                "name=same_pinyin region=same_village rival=none model=0.9+",
                6,
                6,
                0.9,
            ),
        ]);
        let shares = decision_shares(&c.patterns);
        // "rival=clear" pools 21 records across the bands, 20 right: the
        // rare pattern's 12 are made up to 20 with the pool's share.
        let mean_model = (0.95 * 12.0 + 0.99 * 9.0) / 21.0;
        let clear = (20.0 + mean_model) / 22.0;
        assert!((shares[1].unwrap() - (11.0 + 8.0 * clear) / 20.0).abs() < 1e-12);
        // "rival=close" has 10 records alone, so it pools with every rival
        // (31 records, 22 right); its own 2 right of 10 keep it below half.
        assert!(shares[3].unwrap() < MIN_LINK_SHARE, "{:?}", shares[3]);
        assert_eq!(shares[4], None);
        decide(&mut c, 0.99, 0.0, 20_000.0, 537, 10_000.0, 0.0);
        assert_eq!(
            decision(&c, &format!("{village} rival=clear model=0.9+")).as_deref(),
            Some("linked")
        );
        assert_eq!(
            decision(&c, &format!("{village} rival=close model=0.9+")).as_deref(),
            Some("unlinked")
        );
        assert_eq!(
            decision(
                &c,
                "name=same_pinyin region=same_village rival=none model=0.9+"
            ),
            None
        );
    }

    /// Links and reviews the thresholds make on rare patterns, and the
    /// reviews of records whose ID number is in doubt, are part of the run:
    /// they count in the set's precision and in the review budget before
    /// any pattern is decided, and in the summary after.
    #[test]
    fn rare_patterns_count_in_the_target_and_the_budget() {
        let rare = |name: &str, linked, linked_right, review| Pattern {
            linked,
            linked_right,
            review,
            ..pattern(name, 10, linked_right, 0.9)
        };
        let setup = || {
            calibration(vec![
                pattern("common", 500, 500, 1.0),
                pattern("fair", 200, 196, 0.9),
                rare("rare-wrong", 10, 0, 0),
                rare("rare-review", 0, 0, 10),
            ])
        };
        // Without the rare patterns' wrong links, "fair" (98 % right)
        // would fit a 0.998 target on 5,000 ID links; with them it does not.
        let mut c = setup();
        decide(&mut c, 0.998, 1.0, 10_000.0, 720, 5_000.0, 0.0);
        assert_eq!(decision(&c, "fair").as_deref(), Some("review"));
        let mut without_rare = calibration(c.patterns[..2].to_vec());
        decide(&mut without_rare, 0.998, 1.0, 10_000.0, 700, 5_000.0, 0.0);
        assert_eq!(decision(&without_rare, "fair").as_deref(), Some("linked"));
        // The budget of 2 % is 200 records: 190 already in review leave no
        // room for "fair".
        let mut c = setup();
        decide(&mut c, 0.998, 0.02, 10_000.0, 720, 5_000.0, 180.0);
        assert_eq!(decision(&c, "common").as_deref(), Some("linked"));
        assert_eq!(decision(&c, "fair").as_deref(), Some("unlinked"));
        // The summary counts the rare patterns' outcomes too.
        assert_eq!((c.linked, c.linked_right, c.review), (510, 500, 10));
    }
}
