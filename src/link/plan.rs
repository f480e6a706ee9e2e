//! The SQL of linking: candidate pairs from the blocking rules, each pair's
//! comparison levels and weights, and the decision per record. Views `l`
//! and `r` (see `prepare`) and `pairs` must be registered.

use super::model::Model;
use super::settings::Settings;
use anyhow::Result;
use datafusion::prelude::{SessionContext, col, lit};

use crate::lake::query::sql_ident;
pub use crate::lake::tables::REVIEW_DECISIONS;

/// The view of one source's clerical decisions that the scoring reads.
pub const SOURCE_DECISIONS: &str = "source_decisions";

/// Register [`SOURCE_DECISIONS`], the clerks' decisions on `source`'s
/// records (filtered by expression, not by SQL text); false when no
/// decision was ever recorded, and the scoring then reads none.
pub async fn register_source_decisions(ctx: &SessionContext, source: &str) -> Result<bool> {
    if !ctx.table_exist(REVIEW_DECISIONS)? {
        return Ok(false);
    }
    let decisions = ctx
        .table(REVIEW_DECISIONS)
        .await?
        .filter(col("source").eq(lit(source)))?;
    let _ = ctx.deregister_table(SOURCE_DECISIONS);
    ctx.register_table(SOURCE_DECISIONS, decisions.into_view())?;
    Ok(true)
}

/// Added to a pair's weight when a clerk said "match", so it ranks first:
/// far above any weight a pair can have.
const CLERK_FIRST: f64 = 1.0e6;

/// `<level expression> AS <name>_level` for every comparison.
pub fn level_columns(settings: &Settings) -> String {
    settings
        .comparisons
        .iter()
        .map(|c| format!("{} AS {}_level", c.level_sql(), c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The relations a decision reads: the records (`l`) and their candidate
/// pairs, or one part of each when a large run decides in parts.
pub struct Inputs<'a> {
    /// The records relation.
    pub records: &'a str,
    /// The candidate pairs relation.
    pub pairs: &'a str,
}

/// The whole run in one part.
pub const ALL: Inputs<'static> = Inputs {
    records: "l",
    pairs: "pairs",
};

/// Which of `parts` parts a record key belongs to, as SQL: the same
/// expression tags the pairs and selects the records of a part.
pub fn part_of(record_key: &str, parts: i64) -> String {
    format!("sn_bucket({record_key}, {parts})")
}

/// Candidate pairs: one query per blocking join, each rule leaving out
/// pairs an earlier rule already produced, so no pair appears twice in
/// their union. With `parts` > 1 each pair carries its record's `part`.
/// (An explanation restricts the view `l` itself to its one record.)
pub fn pairs_sql(settings: &Settings, parts: i64) -> Vec<String> {
    let levels = level_columns(settings);
    let tf: String = settings
        .comparisons
        .iter()
        .filter(|c| c.term_frequency)
        .map(|c| format!(", r.{} AS tf_{}", c.tf_column(), c.name))
        .collect();
    let part = if parts > 1 {
        format!(", {} AS part", part_of("l.record_key", parts))
    } else {
        String::new()
    };
    settings
        .blocking
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let earlier: String = settings.blocking[..i]
                .iter()
                .map(|p| format!(" AND NOT coalesce(({p}), false)"))
                .collect();
            format!(
                "SELECT l.record_key, r.record_key AS person_key, r.household_id AS person_household{tf}, {levels}{part} FROM l JOIN r ON ({rule}){earlier}"
            )
        })
        .collect()
}

/// A CASE over a level column, giving each level's value.
pub fn case_of(column: &str, values: impl Iterator<Item = String>, otherwise: &str) -> String {
    let arms: String = values
        .enumerate()
        .map(|(i, v)| format!(" WHEN {} THEN {v}", i + 1))
        .collect();
    format!("CASE {column}{arms} ELSE {otherwise} END")
}

/// CTEs ending in `ranked`: every candidate pair with its levels,
/// per-comparison weights, `match_weight` and any clerical decision
/// (`review_decision`); pairs a clerk rejected are left out.
pub fn scoring_ctes(
    settings: &Settings,
    model: &Model,
    registry_size: i64,
    decisions: bool,
    pairs: &str,
) -> String {
    let mut weight_columns = Vec::new();
    let mut tf_joins = String::new();
    let mut ctes = Vec::new();
    for (c, params) in settings.comparisons.iter().zip(&model.comparisons) {
        let base = case_of(
            &format!("p.{}_level", c.name),
            (1..=params.m.len()).map(|l| format!("{:.6}", params.weight(l))),
            "0.0",
        );
        let adjusted = if c.term_frequency {
            // Agreeing on a common value is worth less: the agreeing levels'
            // u is replaced by the value's share of the registry.
            let tf_levels = c.tf_levels_sql();
            ctes.push(format!(
                "tf_{n} AS (SELECT {col} AS value, CAST(count(*) AS DOUBLE) / {registry_size} AS share FROM r GROUP BY {col})",
                n = c.name,
                col = c.tf_column()
            ));
            tf_joins.push_str(&format!(
                " LEFT JOIN tf_{n} ON p.tf_{n} = tf_{n}.value",
                n = c.name
            ));
            format!(
                "{base} + CASE WHEN p.{n}_level IN {tf_levels} AND tf_{n}.share IS NOT NULL \
                 THEN log2({u1:.12} / greatest(tf_{n}.share, 1e-9)) ELSE 0.0 END",
                n = c.name,
                u1 = params.u[0].max(1e-9)
            )
        } else {
            base
        };
        weight_columns.push(format!("{adjusted} AS {}_weight", c.name));
    }
    let levels: String = settings
        .comparisons
        .iter()
        .map(|c| format!(", p.{}_level", c.name))
        .collect();
    let total: String = settings
        .comparisons
        .iter()
        .map(|c| format!(" + {}_weight", c.name))
        .collect();
    ctes.push(format!(
        "scored AS (\n  SELECT p.record_key, p.person_key, p.person_household{levels},\n    {}\n  FROM {pairs} p{tf_joins}\n)",
        weight_columns.join(",\n    ")
    ));
    let prior = model.prior_weight();
    if decisions {
        ctes.push(format!(
            "decisions AS (
  SELECT record_key AS d_record, person_id AS d_person, decision FROM (
    SELECT *, row_number() OVER (PARTITION BY record_key, person_id ORDER BY decided_at DESC) AS n
    FROM {SOURCE_DECISIONS}) WHERE n = 1
)"
        ));
        ctes.push(format!(
            "ranked AS (
  SELECT s.*, {prior:.6}{total} AS match_weight, d.decision AS review_decision
  FROM scored s LEFT JOIN decisions d ON s.record_key = d.d_record AND s.person_key = d.d_person
  WHERE d.decision IS NULL OR d.decision <> 'no_match'
)"
        ));
    } else {
        ctes.push(format!(
            "ranked AS (SELECT s.*, {prior:.6}{total} AS match_weight, CAST(NULL AS VARCHAR) AS review_decision FROM scored s)"
        ));
    }
    format!("WITH {}", ctes.join(",\n"))
}

/// The best candidate of each record that has any, as the relation
/// `decided` at the end of a `WITH` list: the pair's columns,
/// `candidates`, `runner_up_weight` and `match_probability`.
pub fn best_candidates_ctes(
    settings: &Settings,
    model: &Model,
    registry_size: i64,
    decisions: bool,
    inputs: &Inputs,
) -> String {
    let ctes = scoring_ctes(settings, model, registry_size, decisions, inputs.pairs);
    // The best candidate is an aggregate: the person with the highest rank
    // (a clerk's "match" first, then weight; the smaller key on a tie), the
    // two highest weights for the runner-up, and the count. Its pair's
    // levels and weights come from joining back on (record, person).
    format!(
        "{ctes},
best AS (
  SELECT record_key AS best_record,
    sn_best_key(CASE WHEN review_decision = 'match' THEN {CLERK_FIRST:.1} ELSE 0.0 END + match_weight, person_key) AS best_person,
    max(match_weight) AS top_weight,
    sn_second_max(match_weight) AS second_weight,
    count(*) AS candidates
  FROM ranked GROUP BY record_key
),
decided AS (
  SELECT x.*, k.candidates,
    CASE WHEN x.match_weight >= k.top_weight THEN k.second_weight ELSE k.top_weight END AS runner_up_weight,
    1.0 / (1.0 + power(2.0, -x.match_weight)) AS match_probability
  FROM best k JOIN ranked x ON x.record_key = k.best_record AND x.person_key = k.best_person
)"
    )
}

/// `, <label> AS <name>_level, b.<name>_weight` for each comparison of a
/// best pair `b`: the level as its label (`missing` when either side is).
pub fn level_labels_sql(settings: &Settings, model: &Model) -> String {
    settings
        .comparisons
        .iter()
        .zip(&model.comparisons)
        .map(|(c, params)| {
            let label = case_of(
                &format!("b.{}_level", c.name),
                params.labels.iter().map(|l| format!("'{l}'")),
                "'missing'",
            );
            format!(", {label} AS {n}_level, b.{n}_weight", n = c.name)
        })
        .collect()
}

/// The relation of calibrated decisions (pattern, decision) that
/// [`decision_sql`] joins when calibrated.
pub const CALIBRATED_PATTERNS: &str = "calibrated_patterns";

/// Register the patterns' decisions, (pattern, decision), as
/// [`CALIBRATED_PATTERNS`], replacing any earlier ones.
pub fn register_pattern_decisions(
    ctx: &datafusion::prelude::SessionContext,
    decided: Vec<(String, String)>,
) -> anyhow::Result<()> {
    crate::lake::query::register_pairs(ctx, CALIBRATED_PATTERNS, ("pattern", "decision"), decided)
}

/// The valid ID numbers the source's records show under each name (its
/// key) and county, with how many records show each: how many people the
/// department's own data knows by a name, which stands for how common the
/// name is in the population (see [`with_others_named_sql`]).
pub const NAME_IDS: &str = "name_ids";

/// The SQL of [`NAME_IDS`], over the whole source `l` (materialised with
/// the sides, `link::prepare_sides`).
pub fn name_ids_sql() -> String {
    "SELECT name_key, county_code, id_number, count(*) AS records FROM l \
     WHERE id_number_valid AND name_key IS NOT NULL AND county_code IS NOT NULL \
     GROUP BY name_key, county_code, id_number"
        .to_string()
}

/// The relation `decided` (the best pairs of `records`: `l`, or a part of
/// it) with `others_named`: how many people, besides
/// the candidate, the source's *other* records show by a valid ID number
/// under the record's name in its county ([`NAME_IDS`]). Namesakes off the
/// registry show here, and a record known by name alone is less often
/// its candidate when they do.
///
/// Only other records count, so a record's own ID number never counts
/// itself: a record with its ID hidden (`own_id` = its `labelled_id`) then
/// sees what a record that never had one sees, as the calibration assumes.
pub fn with_others_named_sql(records: &str, own_id: &str) -> String {
    format!(
        "SELECT d.*, coalesce(g.ids, 0)
    - CASE WHEN c.records IS NULL THEN 0 ELSE 1 END
    - CASE WHEN o.records = 1 AND o.id_number IS DISTINCT FROM p.id_number THEN 1 ELSE 0 END AS others_named
  FROM decided d
  JOIN {records} x ON x.record_key = d.record_key
  LEFT JOIN r p ON p.record_key = d.person_key
  LEFT JOIN (SELECT name_key, county_code, count(*) AS ids FROM {NAME_IDS} GROUP BY name_key, county_code) g
    ON g.name_key = x.name_key AND g.county_code = x.county_code
  LEFT JOIN {NAME_IDS} c ON c.name_key = x.name_key AND c.county_code = x.county_code AND c.id_number = p.id_number
  LEFT JOIN {NAME_IDS} o ON o.name_key = x.name_key AND o.county_code = x.county_code AND o.id_number = {own_id}"
    )
}

/// `decided` as the relation [`pattern_sql`] reads: with
/// `patterns_by_name_frequency`, [`with_others_named_sql`]; else itself.
pub fn named_sql(settings: &Settings, records: &str, own_id: &str) -> String {
    if settings.patterns_by_name_frequency {
        with_others_named_sql(records, own_id)
    } else {
        "SELECT * FROM decided".to_string()
    }
}

/// The evidence pattern of a best pair `b`, as text: the level label of
/// each comparison but the ID number's, whether the runner-up is clearly
/// behind (`rival=clear`), close (`rival=close`) or absent (`rival=none`),
/// with `patterns_by_name_frequency`, whether the source's other records
/// show other people by the record's name in its county (`others_named=0`
/// or `1+`, `b.others_named` of [`with_others_named_sql`]), and the band
/// of the model's probability (`model=0.99+`, `0.9+`, `0.5+`,
/// `below_0.5`). Records without an ID
/// number are judged by how often records with one, their ID hidden,
/// showing the same pattern were about the person (`link::calibrate`).
pub fn pattern_sql(settings: &Settings, model: &Model) -> String {
    let mut parts: Vec<String> = settings
        .comparisons
        .iter()
        .zip(&model.comparisons)
        .filter(|(c, _)| c.kind != super::comparisons::Kind::IdNumber)
        .map(|(c, params)| {
            let label = case_of(
                &format!("b.{}_level", c.name),
                params.labels.iter().map(|l| format!("'{l}'")),
                "'missing'",
            );
            format!("'{}=' || {label}", c.name)
        })
        .collect();
    parts.push(format!(
        "'rival=' || CASE WHEN b.runner_up_weight IS NULL THEN 'none' \
         WHEN b.match_weight - b.runner_up_weight >= {} THEN 'clear' ELSE 'close' END",
        settings.margin_bits
    ));
    if settings.patterns_by_name_frequency {
        parts.push(
            "'others_named=' || CASE WHEN b.others_named > 0 THEN '1+' ELSE '0' END".to_string(),
        );
    }
    // The model's own probability, banded: what it knows beyond the levels
    // (how common the name is) splits a pattern, and the data then says
    // how far to trust each band.
    parts.push(
        "'model=' || CASE WHEN b.match_probability >= 0.99 THEN '0.99+' \
         WHEN b.match_probability >= 0.9 THEN '0.9+' WHEN b.match_probability >= 0.5 THEN '0.5+' \
         ELSE 'below_0.5' END"
            .to_string(),
    );
    format!("concat_ws(' ', {})", parts.join(", "))
}

/// True for a decided row `alias` (of [`decision_sql`]) whose best
/// candidate was compared on an ID number: its ID level is not level 0,
/// labelled `missing`. False for every row when the settings compare none.
pub fn has_id_number_sql(settings: &Settings, alias: &str) -> String {
    match id_level_column(settings) {
        Some(level) => format!("coalesce({alias}.{level} <> 'missing', false)"),
        None => "false".to_string(),
    }
}

/// The ID number comparison's level column, when the settings have one.
pub fn id_level_column(settings: &Settings) -> Option<String> {
    settings
        .comparisons
        .iter()
        .find(|c| c.kind == super::comparisons::Kind::IdNumber)
        .map(|c| format!("{}_level", c.name))
}

/// The status of a record whose best pair is `b` (NULL when it has none):
/// a clerk's "match" wins; otherwise linked when probable enough, clearly
/// ahead of the runner-up and `link_requires` holds; review in the band
/// below; else unlinked.
pub fn status_sql(settings: &Settings) -> String {
    status_with(settings, false)
}

/// As [`status_sql`]; when `calibrated`, a record without an ID number is
/// decided instead by its pattern's row in [`CALIBRATED_PATTERNS`] (joined
/// as `cp`): linked, review or unlinked; a pattern with no row (too rare
/// to say) is left to the thresholds.
fn status_with(settings: &Settings, calibrated: bool) -> String {
    let by_pattern = match (calibrated, id_level_column(settings)) {
        (true, Some(id_level)) => format!(
            "
    WHEN b.{id_level} = 0 AND cp.decision IS NOT NULL THEN cp.decision"
        ),
        _ => String::new(),
    };
    format!(
        "(CASE
    WHEN b.record_key IS NULL THEN 'unlinked'
    WHEN b.review_decision = 'match' THEN 'linked'{by_pattern}
    WHEN b.match_probability >= {link} AND (b.runner_up_weight IS NULL OR b.match_weight - b.runner_up_weight >= {margin})
         AND ({requires}) THEN 'linked'
    WHEN b.match_probability >= {review} THEN 'review'
    ELSE 'unlinked'
  END)",
        link = settings.link_threshold,
        review = settings.review_threshold,
        margin = settings.margin_bits,
        requires = settings.requires_sql(),
    )
}

/// Keep the best candidate per record and decide (see [`status_sql`];
/// `calibrated`: records without an ID number by [`CALIBRATED_PATTERNS`]).
/// Every record of the source gets a row.
pub fn decision_sql(
    settings: &Settings,
    model: &Model,
    key: &str,
    registry_size: i64,
    decisions: bool,
    calibrated: bool,
    inputs: &Inputs,
) -> String {
    let mut ctes = best_candidates_ctes(settings, model, registry_size, decisions, inputs);
    let labels = level_labels_sql(settings, model);
    let status = status_with(settings, calibrated);
    let mut joins = String::new();
    if calibrated {
        let named = named_sql(
            settings,
            inputs.records,
            "CASE WHEN x.id_number_valid THEN x.id_number END",
        );
        ctes.push_str(&format!(
            ",\nnamed AS ({named}),\npatterned AS (SELECT b.*, {} AS evidence_pattern FROM named b)",
            pattern_sql(settings, model)
        ));
        joins = format!("\nLEFT JOIN {CALIBRATED_PATTERNS} cp ON cp.pattern = b.evidence_pattern");
    }
    let best = if calibrated { "patterned" } else { "decided" };
    format!(
        "{ctes}
SELECT l.record_key AS {key_column},
  -- An unlinked record names no one: its best candidate is in `explain`.
  CASE WHEN {status} = 'unlinked' THEN NULL ELSE b.person_key END AS person_id,
  CASE WHEN {status} = 'unlinked' THEN NULL ELSE b.person_household END AS household_id,
  b.match_weight, b.match_probability,
  {status} AS status,
  b.review_decision,
  b.runner_up_weight, coalesce(b.candidates, 0) AS candidates{labels},
  CAST({version} AS BIGINT) AS model_version
FROM {records} l LEFT JOIN {best} b ON l.record_key = b.record_key{joins}",
        records = inputs.records,
        key_column = sql_ident(key),
        status = status,
        version = model.version,
    )
}

#[cfg(test)]
mod tests {
    //! The SQL the shipped linkage settings produce, pinned by its shape.

    use super::*;
    use crate::link::settings::SettingsFile;

    fn shipped(source: &str) -> Settings {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/linkage.toml");
        SettingsFile::load(&path)
            .unwrap()
            .for_source(source)
            .unwrap()
    }

    #[test]
    fn one_pairs_query_per_blocking_rule_each_leaving_out_the_earlier_ones() {
        for source in ["civil_affairs", "health", "education", "social_insurance"] {
            let settings = shipped(source);
            let queries = pairs_sql(&settings, 1);
            assert_eq!(queries.len(), settings.blocking.len(), "{source}");
            for (i, query) in queries.iter().enumerate() {
                assert!(query.starts_with("SELECT l.record_key, r.record_key AS person_key"));
                assert!(query.contains(&format!("FROM l JOIN r ON ({})", settings.blocking[i])));
                for (j, earlier) in settings.blocking.iter().enumerate() {
                    let excluded = format!("AND NOT coalesce(({earlier}), false)");
                    assert_eq!(query.contains(&excluded), j < i, "{source} rule {i} vs {j}");
                }
                for c in &settings.comparisons {
                    assert!(
                        query.contains(&format!("{} AS {}_level", c.level_sql(), c.name)),
                        "{source}: {}",
                        c.name
                    );
                }
                assert!(!query.contains(" AS part"), "one part: no part column");
            }
        }
    }

    /// A department record known by name alone is judged by how many other
    /// people the department's other records show under that name in its
    /// county. The candidate never counts, and neither does a record's own
    /// ID number: a record with its ID hidden sees what one without sees.
    #[tokio::test]
    async fn others_named_counts_people_the_other_records_show() {
        let ctx = SessionContext::new();
        let table = |name: &str, sql: &str| format!("CREATE TABLE {name} AS {sql}");
        for sql in [
            table(
                "l",
                // record, name, county, ID shown, ID valid, the ID as a labelled record keeps it
                "SELECT * FROM (VALUES
                   ('a1', '张伟', '410101', 'A', true, 'A'),
                   ('a2', '张伟', '410101', 'A', true, 'A'),
                   ('b1', '张伟', '410101', 'B', true, 'B'),
                   ('n1', '张伟', '410101', NULL, false, NULL),
                   ('c1', '张伟', '410102', 'E', true, 'E')
                 ) AS t(record_key, name_key, county_code, id_number, id_number_valid, labelled_id)",
            ),
            table(
                "r",
                "SELECT * FROM (VALUES ('P', 'A')) AS t(record_key, id_number)",
            ),
            table(
                "decided",
                "SELECT record_key, 'P' AS person_key FROM l",
            ),
            table(NAME_IDS, &name_ids_sql()),
        ] {
            ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        }
        let sql = format!(
            "SELECT record_key, CAST(others_named AS BIGINT) AS n FROM ({}) ORDER BY record_key",
            with_others_named_sql("l", "x.labelled_id")
        );
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let rows = crate::lake::query::rows_of(&batches).unwrap();
        let got: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r["record_key"].clone(), r["n"].clone()))
            .collect();
        let want = [
            // The candidate's own records: the namesake B is another person.
            ("a1", "1"),
            ("a2", "1"),
            // The namesake's only record does not count itself.
            ("b1", "0"),
            // Another county: only its own record shows the name there.
            ("c1", "0"),
            // Without an ID number: B again.
            ("n1", "1"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn name_frequency_splits_patterns_only_when_asked() {
        let mut settings = shipped("health");
        assert!(!settings.patterns_by_name_frequency, "off as shipped");
        assert_eq!(named_sql(&settings, "l", "x.id"), "SELECT * FROM decided");
        settings.patterns_by_name_frequency = true;
        let named = named_sql(&settings, "l", "x.id");
        assert!(named.contains(&format!("FROM {NAME_IDS}")), "{named}");
        assert!(named.contains("o.id_number = x.id"), "{named}");
    }

    #[test]
    fn parts_are_tagged() {
        let settings = shipped("health");
        let parted = pairs_sql(&settings, 8);
        assert!(
            parted
                .iter()
                .all(|q| q.contains(", sn_bucket(l.record_key, 8) AS part FROM l JOIN r"))
        );
        assert_eq!(part_of("l.record_key", 8), "sn_bucket(l.record_key, 8)");
    }

    #[test]
    fn term_frequency_columns_come_from_the_registry_side() {
        let settings = shipped("health");
        let query = &pairs_sql(&settings, 1)[0];
        for c in settings.comparisons.iter().filter(|c| c.term_frequency) {
            assert!(query.contains(&format!(", r.{} AS tf_{}", c.tf_column(), c.name)));
        }
        assert!(settings.comparisons.iter().any(|c| c.term_frequency));
    }
}
