//! Linkage settings (`pipelines/linkage.toml`): shared defaults and a
//! section per source that overrides them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::compare::Kind;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    pub defaults: Settings,
    /// Per-source overrides; any key left out comes from `defaults`.
    #[serde(default)]
    pub source: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// "roster" (roster_person with roster_household) or the name of an
    /// ingested source used as the registry.
    #[serde(default = "default_registry")]
    pub registry: String,
    /// Match probability at or above which the best candidate is linked.
    pub link_threshold: f64,
    /// Match probability at or above which a record goes to review.
    pub review_threshold: f64,
    /// Bits by which the best candidate must beat the runner-up to be linked.
    pub margin_bits: f64,
    /// Rules for the prior: pairs they accept are taken as matches, and
    /// `deterministic_recall` says what share of all matches they find.
    pub deterministic_rules: Vec<String>,
    pub deterministic_recall: f64,
    /// Candidate pairs: the union of these join conditions over `l` (the
    /// record) and `r` (the registry person).
    pub blocking: Vec<String>,
    #[serde(rename = "comparison")]
    pub comparisons: Vec<Comparison>,
    /// SQL over the best pair's numeric `<comparison>_level` columns that must
    /// hold for a link; otherwise a record at most goes to review. Used to
    /// keep "same common name, same county, nothing else" out of links.
    #[serde(default = "default_requires")]
    pub link_requires: String,
    /// EM sessions: the pairs meeting `when` (SQL over the
    /// `<comparison>_level` columns) estimate m for the comparisons in
    /// `estimates`. Without sessions one EM runs over all candidate pairs.
    #[serde(default)]
    pub training: Vec<TrainingSession>,
    #[serde(default = "default_iterations")]
    pub em_iterations: usize,
    /// Records and registry people sampled (each) for u-probabilities.
    #[serde(default = "default_sample")]
    pub u_sample: usize,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    pub name: String,
    pub kind: Kind,
    /// Column on both sides (generic kinds); the Chinese-aware kinds use the
    /// standard columns (id_number, name, birth_date, gender, region_code).
    #[serde(default)]
    pub column: Option<String>,
    #[serde(default)]
    pub thresholds: Vec<f64>,
    /// Adjust the exact level's weight by how common the value is.
    #[serde(default)]
    pub term_frequency: bool,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSession {
    pub when: String,
    pub estimates: Vec<String>,
}

fn default_registry() -> String {
    "roster".into()
}
fn default_requires() -> String {
    "true".into()
}
fn default_iterations() -> usize {
    40
}
fn default_sample() -> usize {
    2000
}

/// The ID number comparison's level for a pair (4 and 5 are the near
/// levels: one typo or swap, the same first 14 characters).
const ID_NUMBER_LEVEL: &str = "sn_level_id_number(l.id_number, l.id_number_raw, r.id_number)";

impl Comparison {
    /// The SQL expression giving this comparison's level for a pair.
    pub fn level_sql(&self) -> String {
        let column = |default: &str| self.column.clone().unwrap_or_else(|| default.to_string());
        let thresholds = self
            .thresholds
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",");
        match self.kind {
            Kind::IdNumber => ID_NUMBER_LEVEL.into(),
            Kind::ChineseName => match &self.column {
                Some(c) => format!("sn_level_chinese_name(l.{c}, r.{c})"),
                // The standard name column comes with its keys precomputed.
                None => "sn_level_chinese_name_keys(l.name, r.name, l.name_key, r.name_key, l.name_pinyin, r.name_pinyin)"
                    .into(),
            },
            Kind::Date => match &self.column {
                Some(c) => format!("sn_level_date(l.{c}, r.{c})"),
                // A birth date read from the record's own damaged ID number
                // is the same evidence as that number being near the
                // candidate's (one typo, or the same first 14 characters):
                // counting it twice made namesakes born the same day in the
                // county outscore the true person. It counts only when the
                // numbers are not near.
                None => format!(
                    "CASE WHEN l.birth_date_from_id AND {ID_NUMBER_LEVEL} IN (4, 5) \
                     THEN 0 ELSE sn_level_date(l.birth_date, r.birth_date) END"
                ),
            },
            Kind::Gender => {
                let c = column("gender");
                format!("sn_level_gender(l.{c}, r.{c})")
            }
            Kind::Region => {
                let c = column("region_code");
                format!("sn_level_region(l.{c}, r.{c})")
            }
            Kind::Exact => {
                let c = column("name");
                format!("sn_level_exact(CAST(l.{c} AS VARCHAR), CAST(r.{c} AS VARCHAR))")
            }
            Kind::JaroWinkler | Kind::Levenshtein | Kind::DamerauLevenshtein => {
                let c = column("name");
                let kind = match self.kind {
                    Kind::JaroWinkler => "jaro_winkler",
                    Kind::Levenshtein => "levenshtein",
                    _ => "damerau_levenshtein",
                };
                format!("sn_level_string('{kind}', '{thresholds}', CAST(l.{c} AS VARCHAR), CAST(r.{c} AS VARCHAR))")
            }
            Kind::DateDistance => {
                let c = column("birth_date");
                format!(
                    "sn_level_number('{thresholds}', CAST(CAST(l.{c} AS DATE) AS INT), CAST(CAST(r.{c} AS DATE) AS INT))"
                )
            }
            Kind::NumericDifference => {
                let c = column("amount");
                format!("sn_level_number('{thresholds}', CAST(l.{c} AS DOUBLE), CAST(r.{c} AS DOUBLE))")
            }
        }
    }

    /// Column the term-frequency adjustment counts values of.
    pub fn tf_column(&self) -> String {
        self.column.clone().unwrap_or_else(|| "name".into())
    }

    pub fn labels(&self) -> Vec<String> {
        self.kind.labels(&self.thresholds)
    }
}

impl SettingsFile {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read linkage settings {}", path.display()))?;
        let file: SettingsFile = toml::from_str(&text)
            .with_context(|| format!("in linkage settings {}", path.display()))?;
        for name in file.source.keys() {
            file.for_source(name)?;
        }
        Ok(file)
    }

    /// The settings for one source: defaults with its section laid over.
    pub fn for_source(&self, source: &str) -> Result<Settings> {
        let Some(overrides) = self.source.get(source) else {
            return self.defaults.check().map(|_| self.defaults.clone());
        };
        let mut merged = toml::Table::try_from(&self.defaults)?;
        for (key, value) in overrides {
            merged.insert(key.clone(), value.clone());
        }
        let settings: Settings = merged
            .try_into()
            .with_context(|| format!("in linkage settings for source '{source}'"))?;
        settings.check()?;
        Ok(settings)
    }
}

impl Settings {
    fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.link_threshold)
            || !(0.0..=1.0).contains(&self.review_threshold)
        {
            bail!("link_threshold and review_threshold are probabilities between 0 and 1");
        }
        if self.review_threshold > self.link_threshold {
            bail!("review_threshold must not exceed link_threshold");
        }
        if self.blocking.is_empty() {
            bail!("at least one blocking rule is needed");
        }
        if self.comparisons.is_empty() {
            bail!("at least one comparison is needed");
        }
        if !(0.0 < self.deterministic_recall && self.deterministic_recall <= 1.0) {
            bail!("deterministic_recall must be in (0, 1]");
        }
        Ok(())
    }
}
