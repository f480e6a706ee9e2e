//! Linkage settings (`pipelines/linkage.toml`): shared defaults and a
//! section per source that overrides them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use super::check::{self, Scope, Snippet};
use super::comparisons::Kind;
use crate::error::Error;

/// A linkage settings file: defaults, and per-source sections over them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    /// Settings every source starts from.
    pub defaults: Settings,
    /// Per-source overrides; any key left out comes from `defaults`.
    #[serde(default)]
    pub source: BTreeMap<String, toml::Table>,
    /// The file it was read from, for messages.
    #[serde(skip)]
    pub path: PathBuf,
}

/// The settings one source is linked with.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// "roster" (roster_person with roster_household) or the name of an
    /// ingested source used as the registry.
    #[serde(default = "default_registry")]
    pub registry: crate::config::SourceName,
    /// Match probability at or above which the best candidate is linked.
    pub link_threshold: f64,
    /// Match probability at or above which a record goes to review.
    pub review_threshold: f64,
    /// Bits by which the best candidate must beat the runner-up to be linked.
    pub margin_bits: f64,
    /// Rules for the prior: pairs they accept are taken as matches, and
    /// `deterministic_recall` says what share of all matches they find.
    pub deterministic_rules: Vec<String>,
    /// The share of all matches the deterministic rules are taken to find.
    pub deterministic_recall: f64,
    /// Candidate pairs: the union of these join conditions over `l` (the
    /// record) and `r` (the registry person).
    pub blocking: Vec<String>,
    /// The comparisons, each giving a pair a level.
    #[serde(rename = "comparison")]
    pub comparisons: Vec<Comparison>,
    /// SQL over the best pair's numeric `<comparison>_level` columns that must
    /// hold for a link; otherwise a record at most goes to review. Used to
    /// keep "same common name, same county, nothing else" out of links.
    #[serde(default = "default_requires")]
    pub link_requires: String,
    /// Decide records without an ID number by what records with one show
    /// when their ID is hidden (`link::calibrate`): their best candidates
    /// are linked, evidence pattern by pattern from the most often right,
    /// while those links keep at least this precision. Unset, the
    /// thresholds and `link_requires` decide them like any record.
    #[serde(default)]
    pub target_precision: Option<f64>,
    /// With `target_precision`: the share of the source's records the
    /// next patterns may send to review (unset: [`DEFAULT_REVIEW_BUDGET`]).
    /// Set without a target it would do nothing, so that is an error.
    #[serde(default)]
    pub review_budget: Option<f64>,
    /// Split each evidence pattern by whether the source's other records
    /// show other people, by a valid ID number, under the record's name in
    /// its county (`others_named=0` or `1+`, see
    /// `plan::with_others_named_sql`): how common the name is in the
    /// population, beside how common it is on the registry (the runner-up
    /// and the model's band already say that). Off by default: across the
    /// twelve worlds of the link bench it moved F1 by less than 0.001 and
    /// filled more of the review budget (BENCHMARKS.md).
    #[serde(default)]
    pub patterns_by_name_frequency: bool,
    /// EM sessions: the pairs meeting `when` (SQL over the
    /// `<comparison>_level` columns) estimate m for the comparisons in
    /// `estimates`. Without sessions one EM runs over all candidate pairs.
    #[serde(default)]
    pub training: Vec<TrainingSession>,
    /// The most EM iterations per training session.
    #[serde(default = "default_iterations")]
    pub em_iterations: usize,
    /// Records and registry people sampled (each) for u-probabilities.
    #[serde(default = "default_sample")]
    pub u_sample: usize,
    /// Where these settings came from, so a message names the file and the
    /// key (`defaults.blocking[2]`, `source.health.link_requires`).
    #[serde(skip)]
    pub origin: Origin,
}

/// The file and section that settings were read from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The settings file.
    pub file: String,
    /// The source whose section was laid over the defaults, if any.
    pub source: Option<String>,
    /// The keys that section sets.
    pub overridden: Vec<String>,
}

impl Origin {
    /// The full name of a key (`blocking[2]`): under the source's section
    /// when that section sets it, else under `defaults`.
    pub fn key(&self, key: &str) -> String {
        let top = key.split(['[', '.']).next().unwrap_or(key);
        match &self.source {
            Some(source) if self.overridden.iter().any(|k| k == top) => {
                format!("source.{source}.{key}")
            }
            _ => format!("defaults.{key}"),
        }
    }

    /// A bad-settings error at `key`.
    pub fn error(&self, key: &str, message: impl Into<String>) -> Error {
        Error::settings(&self.file, self.key(key), message)
    }
}

/// One comparison: a kind and its options.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// Its name; the pair's columns are `<name>_level` and `<name>_weight`.
    pub name: String,
    /// What it compares and how.
    pub kind: Kind,
    /// Column on both sides (generic kinds); the Chinese-aware kinds use the
    /// standard columns (id_number, name, birth_date, gender, region_code).
    #[serde(default)]
    pub column: Option<String>,
    /// Similarity or distance cut-offs, one level each (similarity and distance kinds).
    #[serde(default)]
    pub thresholds: Vec<f64>,
    /// Adjust the exact level's weight by how common the value is.
    #[serde(default)]
    pub term_frequency: bool,
}

/// One EM training session.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSession {
    /// SQL over the `<comparison>_level` columns choosing the pairs trained on.
    pub when: String,
    /// The comparisons whose m this session estimates.
    pub estimates: Vec<String>,
}

fn default_registry() -> crate::config::SourceName {
    crate::config::SourceName::roster()
}
fn default_requires() -> String {
    "true".into()
}
/// The review budget when the settings name none: 2 % of the records.
pub const DEFAULT_REVIEW_BUDGET: f64 = 0.02;
fn default_iterations() -> usize {
    40
}
fn default_sample() -> usize {
    2000
}

impl SettingsFile {
    /// Read and check a settings file; an error names the file and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read linkage settings {}", path.display()))?;
        let mut file: SettingsFile = toml::from_str(&text)
            .with_context(|| format!("in linkage settings {}", path.display()))?;
        file.path = path.to_path_buf();
        file.defaults.origin = Origin {
            file: path.display().to_string(),
            ..Origin::default()
        };
        file.defaults.check()?;
        for name in file.source.keys() {
            file.for_source(name)?;
        }
        Ok(file)
    }

    /// Every source some source is linked against: the defaults' registry
    /// and any a source section names. A registry is not itself linked.
    pub fn registries(&self) -> std::collections::BTreeSet<String> {
        let mut names: std::collections::BTreeSet<String> = self
            .source
            .values()
            .filter_map(|section| section.get("registry")?.as_str().map(str::to_string))
            .collect();
        names.insert(self.defaults.registry.to_string());
        names
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
        let origin = Origin {
            file: self.path.display().to_string(),
            source: Some(source.to_string()),
            overridden: overrides.keys().cloned().collect(),
        };
        let mut settings: Settings = merged.try_into().map_err(|e: toml::de::Error| {
            Error::settings(&origin.file, format!("source.{source}"), e.message())
        })?;
        settings.origin = origin;
        settings.check()?;
        Ok(settings)
    }
}

impl Settings {
    /// The share of the source's records calibrated decisions may send to
    /// review.
    pub fn review_budget(&self) -> f64 {
        self.review_budget.unwrap_or(DEFAULT_REVIEW_BUDGET)
    }

    /// Values in range, and every SQL snippet parses and names only the
    /// columns its place allows (`check`); the columns themselves are
    /// checked against the two sides before a run (`check::against_sides`).
    fn check(&self) -> Result<()> {
        let origin = &self.origin;
        for (key, value) in [
            ("link_threshold", self.link_threshold),
            ("review_threshold", self.review_threshold),
        ] {
            if !(0.0..=1.0).contains(&value) {
                Err(origin.error(key, format!("{value} is not a probability between 0 and 1")))?;
            }
        }
        if let Some(target) = self.target_precision
            && !(0.5..=1.0).contains(&target)
        {
            Err(origin.error(
                "target_precision",
                format!("{target} is not a precision between 0.5 and 1"),
            ))?;
        }
        if let Some(budget) = self.review_budget {
            if !(0.0..=1.0).contains(&budget) {
                Err(origin.error(
                    "review_budget",
                    format!("{budget} is not a share between 0 and 1"),
                ))?;
            }
            if self.target_precision.is_none() {
                Err(origin.error(
                    "review_budget",
                    "applies only with target_precision, which is not set: set target_precision, or remove review_budget (仅在设置 target_precision 时生效)",
                ))?;
            }
        }
        if self.review_threshold > self.link_threshold {
            Err(origin.error("review_threshold", "must not exceed link_threshold"))?;
        }
        if self.blocking.is_empty() {
            Err(origin.error("blocking", "at least one blocking rule is needed"))?;
        }
        if self.comparisons.is_empty() {
            Err(origin.error("comparison", "at least one comparison is needed"))?;
        }
        if !(0.0 < self.deterministic_recall && self.deterministic_recall <= 1.0) {
            Err(origin.error("deterministic_recall", "must be in (0, 1]"))?;
        }
        for (i, c) in self.comparisons.iter().enumerate() {
            if self.comparisons[..i].iter().any(|d| d.name == c.name) {
                Err(origin.error(
                    &format!("comparison[{i}].name"),
                    format!("a second comparison named '{}'", c.name),
                ))?;
            }
        }
        for (i, session) in self.training.iter().enumerate() {
            for name in &session.estimates {
                if !self.comparisons.iter().any(|c| &c.name == name) {
                    Err(origin.error(
                        &format!("training[{i}].estimates"),
                        format!("no comparison is named '{name}'"),
                    ))?;
                }
            }
        }
        for snippet in self.snippets() {
            check::snippet(self, &snippet)?;
        }
        Ok(())
    }

    /// Every piece of SQL these settings hold, with its key and where it is
    /// evaluated.
    pub fn snippets(&self) -> Vec<Snippet> {
        let mut all = Vec::new();
        let mut add = |key: String, sql: &str, scope: Scope| {
            all.push(Snippet {
                key,
                sql: sql.to_string(),
                scope,
            })
        };
        for (i, rule) in self.blocking.iter().enumerate() {
            add(format!("blocking[{i}]"), rule, Scope::Pair);
        }
        for (i, rule) in self.deterministic_rules.iter().enumerate() {
            add(format!("deterministic_rules[{i}]"), rule, Scope::Pair);
        }
        for (i, c) in self.comparisons.iter().enumerate() {
            add(format!("comparison[{i}]"), &c.level_sql(), Scope::Pair);
        }
        add("link_requires".into(), &self.link_requires, Scope::Decision);
        for (i, session) in self.training.iter().enumerate() {
            add(format!("training[{i}].when"), &session.when, Scope::Levels);
        }
        all
    }

    /// `link_requires` as the decision query reads it: its columns are
    /// those of the best pair, `b`.
    pub fn requires_sql(&self) -> String {
        check::qualified(&self.link_requires, "b").unwrap_or_else(|_| self.link_requires.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../pipelines/linkage.toml");

    /// The shipped settings with `from` replaced by `to`, loaded from a file.
    fn load_edited(from: &str, to: &str) -> Result<SettingsFile> {
        assert!(SHIPPED.contains(from), "the shipped file has {from}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("linkage.toml");
        std::fs::write(&path, SHIPPED.replacen(from, to, 1)).unwrap();
        SettingsFile::load(&path)
    }

    fn refusal(from: &str, to: &str) -> String {
        let e = load_edited(from, to).expect_err("refused");
        let found = Error::find(&e).expect("a bad-settings error");
        assert_eq!(found.exit_code(), 78);
        found.to_string()
    }

    #[test]
    fn the_shipped_settings_load_for_every_source() {
        let file = load_edited("[defaults]", "[defaults]").unwrap();
        for source in ["civil_affairs", "health", "education", "social_insurance"] {
            file.for_source(source).unwrap();
        }
    }

    #[test]
    fn sql_that_does_not_parse_is_refused_naming_the_file_and_key() {
        let message = refusal(
            "\"l.id_number = r.id_number\",",
            "\"l.id_number = = r.id_number\",",
        );
        assert!(
            message.contains("linkage.toml: defaults.blocking[0]:"),
            "{message}"
        );
        assert!(message.contains("is not a SQL condition"), "{message}");
        let message = refusal(
            "when = \"id_number_level IN (1, 2, 3)\"",
            "when = \"id_number_level IN (1, 2, 3) name_level\"",
        );
        assert!(message.contains("defaults.training[0].when"), "{message}");
    }

    #[test]
    fn columns_must_be_named_where_they_are_evaluated() {
        let message = refusal(
            "\"l.id_number = r.id_number\",",
            "\"id_number = r.id_number\",",
        );
        assert!(message.contains("defaults.blocking[0]"), "{message}");
        assert!(message.contains("l.<column>"), "{message}");
        let message = refusal(
            "link_requires = \"id_number_level BETWEEN 1 AND 3",
            "link_requires = \"b.id_numbr_level BETWEEN 1 AND 3",
        );
        assert!(message.contains("defaults.link_requires"), "{message}");
        assert!(
            message.contains("no column 'b.id_numbr_level'"),
            "{message}"
        );
        assert!(
            message.contains("id_number_level"),
            "it lists what may be named: {message}"
        );
        let message = refusal("estimates = [\"id_number\"]", "estimates = [\"id_numbr\"]");
        assert!(
            message.contains("defaults.training[1].estimates"),
            "{message}"
        );
    }

    #[test]
    fn a_source_section_is_named_for_the_keys_it_sets() {
        let message = refusal(
            "# [source.civil_affairs]\n# link_threshold = 0.995",
            "[source.civil_affairs]\nlink_requires = \"name_level = 1 AND\"",
        );
        assert!(
            message.contains("linkage.toml: source.civil_affairs.link_requires:"),
            "{message}"
        );
        let message = refusal(
            "# [source.civil_affairs]\n# link_threshold = 0.995",
            "[source.civil_affairs]\nreview_threshold = 1.5",
        );
        assert!(
            message.contains("source.civil_affairs.review_threshold"),
            "{message}"
        );
    }

    #[test]
    fn link_requires_may_name_level_columns_bare() {
        let file = load_edited(
            "[defaults]",
            "[source.health]\nlink_requires = \"id_number_level = 1 OR (name_level <= 2 AND region_level = 1)\"\n\n[defaults]",
        )
        .unwrap();
        let health = file.for_source("health").unwrap();
        assert_eq!(
            health.requires_sql(),
            "b.id_number_level = 1 OR (b.name_level <= 2 AND b.region_level = 1)"
        );
        // The shipped rule, written bare, reads exactly as it did when it
        // had to name `b.` itself.
        let shipped = file.for_source("education").unwrap();
        assert_eq!(
            shipped.requires_sql(),
            "b.id_number_level BETWEEN 1 AND 3 OR ((b.id_number_level IN (4, 5) OR b.birth_date_level BETWEEN 1 AND 2) AND b.name_level BETWEEN 1 AND 6) OR (b.name_level BETWEEN 1 AND 2 AND b.region_level = 1)"
        );
    }

    #[test]
    fn a_review_budget_without_a_target_is_refused() {
        let message = refusal("target_precision = 0.995\n", "");
        assert!(message.contains("review_budget"), "{message}");
        assert!(message.contains("target_precision"), "{message}");
        // Without either, the thresholds decide every record.
        let file = load_edited("target_precision = 0.995\nreview_budget = 0.02\n", "").unwrap();
        let health = file.for_source("health").unwrap();
        assert_eq!(
            (health.target_precision, health.review_budget()),
            (None, DEFAULT_REVIEW_BUDGET)
        );
        let message = refusal("review_budget = 0.02", "review_budget = 2.0");
        assert!(
            message.contains("is not a share between 0 and 1"),
            "{message}"
        );
    }
}
