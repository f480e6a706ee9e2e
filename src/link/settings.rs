//! Linkage settings (`pipelines/linkage.toml`): shared defaults and a
//! section per source that overrides them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::comparisons::Kind;

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
