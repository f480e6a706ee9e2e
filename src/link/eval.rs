//! Measuring links against ground truth: precision, recall and F1, the
//! exact-ID-join baseline on the same records, recall per kind of dirt,
//! and the two bounds set by records known only by name and region: leave
//! them all unlinked, or link them all.
//!
//! The truth file is a CSV with a header: the record key, the true roster
//! person's ID number (empty when not on the roster) and optionally the
//! dirt applied (kinds separated by `;`). A record in review counts as not
//! linked. For a source linked against another source (`registry` in the
//! settings), the second column is headed `true_registry_key` and holds the
//! key of the registry record that is the same person.

use std::path::Path;

use anyhow::{Context, Result, bail};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{CsvReadOptions, SessionContext};

use super::link_table;
use crate::config::Role;
use crate::lake::Lake;
use crate::lake::query::{rows_of, scalar_i64, strings_of};
use crate::lake::tables::ROSTER_PERSON;

/// How one way of linking scored against the truth.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Scores {
    /// Records it linked.
    pub links: i64,
    /// Links to the true person.
    pub correct: i64,
    /// Records whose true person is on the roster.
    pub true_matches: i64,
    /// correct / links.
    pub precision: f64,
    /// correct / true_matches.
    pub recall: f64,
    /// The harmonic mean of precision and recall.
    pub f1: f64,
}

impl Scores {
    fn new(links: i64, correct: i64, true_matches: i64) -> Self {
        let precision = if links > 0 {
            correct as f64 / links as f64
        } else {
            0.0
        };
        let recall = if true_matches > 0 {
            correct as f64 / true_matches as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Scores {
            links,
            correct,
            true_matches,
            precision,
            recall,
            f1,
        }
    }
}

/// The linker measured against a truth file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    /// The source measured.
    pub source: String,
    /// Its records.
    pub records: i64,
    /// The linker's precision (a record in review counts as not linked).
    pub precision: f64,
    /// The linker's recall.
    pub recall: f64,
    /// The linker's F1.
    pub f1: f64,
    /// The linker's counts.
    pub linker: Scores,
    /// Records left for review.
    pub review: i64,
    /// Linking on an exact valid ID number alone, for comparison (none
    /// when the truth names registry records).
    pub exact_id_baseline: Scores,
    /// The truth names registry records by key (`true_registry_key`),
    /// not roster people by ID number.
    pub truth_is_registry_keys: bool,
    /// True matches with no ID number and no birth date: a namesake looks
    /// exactly like them, so this share bounds what any linker can reach.
    pub name_and_region_only_share: f64,
    /// One bound they set: all of them left unlinked and every other
    /// record right (precision 1, recall 1 − that share).
    pub link_none_bound: Scores,
    /// The other bound: every record with no ID number and no birth date
    /// linked to a roster person of the same name in the same county, and
    /// every other record right. The true matches among them are taken as
    /// found (at best); the namesakes, records not on the roster with a
    /// roster person's name and county, are its only false links. None
    /// when the truth names registry records.
    pub link_all_bound: Option<Scores>,
    /// Between the two: only the records whose name and county are those
    /// of exactly one roster person linked, to that person (taken as
    /// right when the record is a true match); the rest left unlinked.
    /// Where a common name is shared in the county, name and county
    /// cannot say which person is meant, and `link_all_bound` counts them
    /// as found all the same. None when the truth names registry records.
    pub link_unique_bound: Option<Scores>,
    /// The best a linker can expect on the records with no ID number and
    /// no birth date, from what they show — name (as keyed), place as
    /// written and gender — with every other record right: the truth
    /// groups those records by what they show; a group is either linked
    /// or left unlinked, whichever set of groups gives the highest F1; a
    /// linked group's link goes to one of the roster people who fit what
    /// it shows alike, right on average for its records about any of them
    /// divided by how many they are. Unlike `link_all_bound` it does not
    /// count as found the records a shared name leaves in doubt. None when
    /// the truth names registry records.
    pub link_best_bound: Option<Scores>,
    /// What the model expects of the same links without the truth, to
    /// set beside the measured figures.
    pub model_estimate: super::history::Quality,
    /// Recall by kind of dirt: (kind, true matches with it, recall).
    pub recall_by_dirt: Vec<(String, i64, f64)>,
    /// Records without an ID number: measured, beside what the run
    /// estimated from records whose ID it hid (`link::calibrate`).
    pub without_id: WithoutId,
}

/// The links of records without an ID number, measured and estimated.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WithoutId {
    /// Such records, and the linker's counts over them.
    pub scores: Scores,
    /// The last link run's estimate of their precision, without truth.
    pub calibrated_precision: Option<f64>,
    /// Its estimate of their recall.
    pub calibrated_recall: Option<f64>,
}

/// Score `link_<source>` against `truth` (record_key, true_id_number[, dirt]).
pub async fn evaluate(
    lake: &Lake,
    schemas_dir: &Path,
    source: &crate::config::SourceName,
    truth: &Path,
) -> Result<Evaluation> {
    let ctx = lake.session().await?;
    let schema = crate::lake::schemas::pick(
        &crate::lake::schemas::recorded_in(&ctx).await?,
        schemas_dir,
        source,
    )?;
    let links = link_table(source);
    if !ctx.table_exist(links.as_str())? {
        bail!("no {links} table: run `safetynet link --source {source}` first");
    }
    let truth_schema = Schema::new(vec![
        Field::new("record_key", DataType::Utf8, false),
        Field::new("true_id_number", DataType::Utf8, true),
        Field::new("dirt", DataType::Utf8, true),
    ]);
    let header = std::fs::read_to_string(truth)
        .with_context(|| format!("cannot read truth file {}", truth.display()))?;
    let headers: Vec<&str> = header
        .lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .collect();
    let columns = headers.len();
    let registry_keys = headers.get(1) == Some(&"true_registry_key");
    let truth_schema = if columns >= 3 {
        truth_schema
    } else {
        Schema::new(truth_schema.fields()[..2].to_vec())
    };
    let options = CsvReadOptions::new().has_header(true).schema(&truth_schema);
    ctx.register_csv("truth", truth.to_string_lossy().as_ref(), options)
        .await?;
    let dirt = if columns >= 3 {
        "t.dirt"
    } else {
        "CAST(NULL AS VARCHAR)"
    };

    let key = &schema.key;
    let id = schema
        .field_with_role(Role::IdNumber)
        .map(|f| f.name.clone());
    let birth = schema
        .field_with_role(Role::BirthDate)
        .map(|f| f.name.clone());
    // Against another source, a link's person_id is the registry record's
    // key; against the roster, the person's ID number is what truth names.
    let (linked_id, roster_join) = if registry_keys {
        ("k.person_id".to_string(), String::new())
    } else {
        (
            "p.id_number".to_string(),
            format!("LEFT JOIN {ROSTER_PERSON} p ON k.person_id = p.person_id"),
        )
    };
    ctx.sql(&format!(
        "CREATE VIEW judged AS
         SELECT t.record_key, nullif(t.true_id_number, '') AS true_id, {dirt} AS dirt,
                k.status, {linked_id} AS linked_id,
                {id_col} AS staged_id, {birth_col} AS staged_birth
         FROM truth t
         LEFT JOIN {links} k ON CAST(k.\"{key}\" AS VARCHAR) = t.record_key
         {roster_join}
         LEFT JOIN {staged} s ON CAST(s.\"{key}\" AS VARCHAR) = t.record_key",
        staged = crate::lake::tables::staged(source),
        id_col = id
            .as_ref()
            .map_or("CAST(NULL AS VARCHAR)".into(), |c| format!("s.{c}")),
        birth_col = birth
            .as_ref()
            .map_or("CAST(NULL AS DATE)".into(), |c| format!("s.{c}")),
    ))
    .await?;
    let n = |sql: &str| {
        let ctx = ctx.clone();
        let sql = sql.to_string();
        async move { scalar_i64(&ctx, &sql).await }
    };
    let records = n("SELECT count(*) FROM judged").await?;
    let linker = judged_scores(&ctx, "true").await?;
    let true_matches = linker.true_matches;
    let review = n("SELECT count(*) FROM judged WHERE status = 'review'").await?;

    // Baseline: join on the (normalised) ID number; a record matching
    // several roster rows counts as one link, correct if any is right.
    let baseline = if registry_keys {
        Scores::new(0, 0, true_matches)
    } else {
        id_join_baseline(&ctx, true_matches).await?
    };

    let name_only = n("SELECT count(*) FROM judged WHERE true_id IS NOT NULL AND staged_id IS NULL AND staged_birth IS NULL").await?;
    let (link_all_bound, link_unique_bound, link_best_bound) = if registry_keys {
        (None, None, None)
    } else {
        register_name_only(&ctx, &schema).await?;
        let alone = known_by_name_alone(&ctx).await?;
        let found = true_matches - name_only + alone.unique_true;
        let groups = shown_alike(&ctx).await?;
        (
            Some(Scores::new(
                true_matches + alone.namesakes,
                true_matches,
                true_matches,
            )),
            Some(Scores::new(
                found + alone.unique_namesakes,
                found,
                true_matches,
            )),
            Some(best_by_groups(
                true_matches - name_only,
                true_matches,
                groups,
            )),
        )
    };
    let mut recall_by_dirt = Vec::new();
    let sql = "SELECT kind, CAST(count(*) AS VARCHAR), CAST(sum(CASE WHEN status = 'linked' AND linked_id = true_id THEN 1 ELSE 0 END) AS VARCHAR)
               FROM (SELECT unnest(string_to_array(dirt, ';')) AS kind, status, linked_id, true_id FROM judged
                     WHERE true_id IS NOT NULL AND dirt IS NOT NULL AND dirt <> '')
               GROUP BY kind ORDER BY kind";
    if columns >= 3 {
        for batch in ctx.sql(sql).await?.collect().await? {
            let kinds = strings_of(batch.column(0))?;
            let totals = strings_of(batch.column(1))?;
            let hits = strings_of(batch.column(2))?;
            for i in 0..kinds.len() {
                let total: i64 = totals[i].as_deref().unwrap_or("0").parse().unwrap_or(0);
                let hit: i64 = hits[i].as_deref().unwrap_or("0").parse().unwrap_or(0);
                let share = if total > 0 {
                    hit as f64 / total as f64
                } else {
                    0.0
                };
                recall_by_dirt.push((kinds[i].clone().unwrap_or_default(), total, share));
            }
        }
    }
    let model_estimate = super::history::measure(&ctx, source).await?;
    let without_id = WithoutId {
        scores: judged_scores(&ctx, "staged_id IS NULL").await?,
        ..super::history::calibrated(&ctx, source).await?
    };
    Ok(Evaluation {
        model_estimate,
        source: source.to_string(),
        records,
        precision: linker.precision,
        recall: linker.recall,
        f1: linker.f1,
        linker,
        review,
        exact_id_baseline: baseline,
        truth_is_registry_keys: registry_keys,
        name_and_region_only_share: if true_matches > 0 {
            name_only as f64 / true_matches as f64
        } else {
            0.0
        },
        link_none_bound: Scores::new(
            true_matches - name_only,
            true_matches - name_only,
            true_matches,
        ),
        link_all_bound,
        link_unique_bound,
        link_best_bound,
        recall_by_dirt,
        without_id,
    })
}

/// What name and county alone say about the records with no ID number
/// and no birth date.
struct NameOnly {
    /// Records not on the roster whose name (as the linker keys it) and
    /// county are those of a roster person: nothing in the record tells
    /// them from that person.
    namesakes: i64,
    /// True matches whose name and county are those of exactly one roster
    /// person.
    unique_true: i64,
    /// Namesakes whose name and county are those of exactly one roster
    /// person.
    unique_namesakes: i64,
}

/// Register, once, what every name-only bound reads: `name_only`, the
/// records with no ID number and no birth date (their name key, place,
/// county, gender and true ID), and `roster_names`, the roster people who
/// carry one of those name keys.
async fn register_name_only(
    ctx: &SessionContext,
    schema: &crate::config::SourceSchema,
) -> Result<()> {
    let records = super::prepare::source_view_sql(ctx, schema, false).await?;
    let roster = super::prepare::roster_view_sql();
    for (name, sql) in [
        (
            "name_only",
            format!(
                "SELECT l.name_key, l.region_code, l.county_code, l.gender, j.true_id
                 FROM judged j JOIN ({records}) l ON CAST(l.record_key AS VARCHAR) = j.record_key
                 WHERE j.staged_id IS NULL AND j.staged_birth IS NULL"
            ),
        ),
        (
            "roster_names",
            format!(
                "SELECT r.name_key, r.region_code, r.county_code, r.gender, r.id_number FROM ({roster}) r
                 WHERE r.name_key IN (SELECT name_key FROM name_only)"
            ),
        ),
    ] {
        let frame = ctx
            .sql(&sql)
            .await?
            .cache()
            .await
            .context("reading the records known by name alone")?;
        ctx.register_table(name, frame.into_view())?;
    }
    Ok(())
}

/// Of `name_only` (see [`register_name_only`]): the namesakes, and the
/// true matches and namesakes whose name and county belong to exactly one
/// roster person.
async fn known_by_name_alone(ctx: &SessionContext) -> Result<NameOnly> {
    let rows = rows_of(
        &ctx.sql(
            "WITH sig AS (SELECT name_key, county_code, count(*) AS people
                          FROM roster_names GROUP BY name_key, county_code)
             SELECT CAST(count(*) FILTER (WHERE l.true_id IS NULL) AS VARCHAR) AS namesakes,
                    CAST(count(*) FILTER (WHERE l.true_id IS NOT NULL AND sig.people = 1) AS VARCHAR) AS unique_true,
                    CAST(count(*) FILTER (WHERE l.true_id IS NULL AND sig.people = 1) AS VARCHAR) AS unique_namesakes
             FROM name_only l
             JOIN sig ON sig.name_key = l.name_key AND sig.county_code = l.county_code",
        )
        .await?
        .collect()
        .await
        .context("counting records known by name and county alone")?,
    )?;
    let row = rows.into_iter().next().unwrap_or_default();
    let int = |k: &str| row.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(NameOnly {
        namesakes: int("namesakes"),
        unique_true: int("unique_true"),
        unique_namesakes: int("unique_namesakes"),
    })
}

/// The records of `name_only` (see [`register_name_only`]), grouped by
/// what they show (name key, place as written, gender): per group, its
/// records and how many of them a linker can expect to get right. The
/// roster people who fit what the group shows equally (that name key and
/// gender in that place) are alike to any linker, so a link to one of
/// them is right, on average, for the group's records about any of them
/// divided by how many there are. A group no roster person fits exactly
/// (a damaged name) is credited with its most frequent true person, at
/// best.
async fn shown_alike(ctx: &SessionContext) -> Result<Vec<(i64, f64)>> {
    let batches = ctx
        .sql(
            "WITH shown_by AS (
               SELECT coalesce(name_key, '') AS name_key, coalesce(region_code, '') AS region_code,
                      coalesce(gender, '') AS gender, county_code, true_id
               FROM name_only),
             shown AS (SELECT DISTINCT name_key, region_code, gender, county_code FROM shown_by),
             fitting AS (
               SELECT s.name_key, s.region_code, s.gender, r.id_number
               FROM shown s JOIN roster_names r ON r.name_key = s.name_key AND r.county_code = s.county_code
               WHERE (s.gender = '' OR r.gender = s.gender) AND starts_with(r.region_code, s.region_code)),
             fits AS (SELECT name_key, region_code, gender, count(*) AS people FROM fitting GROUP BY name_key, region_code, gender),
             by_person AS (
               SELECT name_key, region_code, gender, true_id, count(*) AS n
               FROM shown_by GROUP BY name_key, region_code, gender, true_id),
             marked AS (
               SELECT b.*, f.id_number IS NOT NULL AS fits_record
               FROM by_person b LEFT JOIN fitting f ON f.name_key = b.name_key
                 AND f.region_code = b.region_code AND f.gender = b.gender AND f.id_number = b.true_id)
             SELECT CAST(sum(m.n) AS VARCHAR) AS records,
                    CAST(max(CASE WHEN m.true_id IS NULL THEN 0 ELSE m.n END) AS VARCHAR) AS best,
                    CAST(sum(CASE WHEN m.fits_record THEN m.n ELSE 0 END) AS VARCHAR) AS about_fitting,
                    CAST(coalesce(max(f.people), 0) AS VARCHAR) AS people
             FROM marked m LEFT JOIN fits f ON f.name_key = m.name_key
               AND f.region_code = m.region_code AND f.gender = m.gender
             GROUP BY m.name_key, m.region_code, m.gender",
        )
        .await?
        .collect()
        .await
        .context("grouping the records known by name alone by what they show")?;
    Ok(rows_of(&batches)?
        .into_iter()
        .map(|r| {
            let int = |k: &str| r.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
            let right = match int("people") {
                0 => int("best") as f64,
                people => int("about_fitting") as f64 / people as f64,
            };
            (int("records"), right)
        })
        .collect())
}

/// The best F1 over choices of `groups` (records, right if linked) to
/// link, beside `found` links made right elsewhere, of `true_matches`.
/// F1 is 2·right / (links + true_matches): a group raises it exactly when
/// its share right is above F1/2, so the best choice links the groups
/// most often right first, and the best prefix of that order is the
/// best of all choices. Expected right links are rounded to whole links.
fn best_by_groups(found: i64, true_matches: i64, mut groups: Vec<(i64, f64)>) -> Scores {
    groups.retain(|&(n, right)| n > 0 && right > 0.0);
    groups.sort_by(|&(n1, r1), &(n2, r2)| {
        (r2 / n2 as f64)
            .total_cmp(&(r1 / n1 as f64))
            .then(n2.cmp(&n1))
    });
    let f1 = |links: i64, right: f64| 2.0 * right / (links + true_matches).max(1) as f64;
    let (mut links, mut right) = (found, found as f64);
    let mut best = (f1(links, right), links, right);
    for (n, r) in groups {
        links += n;
        right += r;
        if f1(links, right) > best.0 {
            best = (f1(links, right), links, right);
        }
    }
    Scores::new(best.1, best.2.round() as i64, true_matches)
}

/// Linking on the (normalised) ID number alone; a record matching several
/// roster rows counts as one link, correct if any is right.
async fn id_join_baseline(ctx: &SessionContext, true_matches: i64) -> Result<Scores> {
    let join = format!("FROM judged j JOIN {ROSTER_PERSON} p ON j.staged_id = p.id_number");
    let links = scalar_i64(ctx, &format!("SELECT count(DISTINCT j.record_key) {join}")).await?;
    let correct = scalar_i64(
        ctx,
        &format!("SELECT count(DISTINCT j.record_key) {join} WHERE p.id_number = j.true_id"),
    )
    .await?;
    Ok(Scores::new(links, correct, true_matches))
}

/// The linker's scores over the rows of `judged` meeting `filter` (a fixed
/// SQL condition), counted in one pass.
async fn judged_scores(ctx: &SessionContext, filter: &str) -> Result<Scores> {
    let rows = rows_of(
        &ctx.sql(&format!(
            "SELECT CAST(count(*) FILTER (WHERE status = 'linked') AS VARCHAR) AS links,
               CAST(count(*) FILTER (WHERE status = 'linked' AND linked_id = true_id) AS VARCHAR) AS correct,
               CAST(count(*) FILTER (WHERE true_id IS NOT NULL) AS VARCHAR) AS true_matches
             FROM judged WHERE {filter}"
        ))
        .await?
        .collect()
        .await?,
    )?;
    let row = rows.into_iter().next().unwrap_or_default();
    let int = |k: &str| row.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Scores::new(
        int("links"),
        int("correct"),
        int("true_matches"),
    ))
}

#[cfg(test)]
mod tests {
    use super::best_by_groups;

    /// Of 100 true matches, 90 are found by other means; three groups of
    /// records look alike inside each group.
    #[test]
    fn the_best_bound_links_a_group_only_when_it_raises_f1() {
        // Nothing to link: the other links alone.
        let alone = best_by_groups(90, 100, vec![]);
        assert_eq!((alone.links, alone.correct), (90, 90));
        // A group right 9 times in 10 is linked; one right 1 time in 10
        // is not; one with no true match never is.
        let best = best_by_groups(90, 100, vec![(10, 1.0), (10, 9.0), (5, 0.0)]);
        assert_eq!((best.links, best.correct), (100, 99));
        assert!(best.f1 > alone.f1);
        // Linking every group would be worse than the best choice.
        let all = 2.0 * 100.0 / (115.0 + 100.0);
        assert!(best.f1 > all);
        // A group right 4 times in 10 raises F1 only while F1 is below
        // 0.8: with most matches found it is left; with few it is linked.
        let found_most = best_by_groups(90, 100, vec![(10, 4.0)]);
        assert_eq!(found_most.links, 90);
        let found_few = best_by_groups(10, 100, vec![(10, 4.0)]);
        assert_eq!(found_few.links, 20);
        // Two roster people fit a group of 10 records about one of them
        // alike: a link is right 5 times in 10 on average.
        let alike = best_by_groups(10, 100, vec![(10, 10.0 / 2.0)]);
        assert_eq!((alike.links, alike.correct), (20, 15));
    }
}
