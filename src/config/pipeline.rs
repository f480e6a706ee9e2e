//! Pipeline files (`pipelines/*.toml`): one whole job — where the lake is,
//! which sources to ingest from where, and (as later stages land) linkage,
//! rules, delivery and schedule. Relative paths are relative to the
//! pipeline file's own directory, so a job runs the same from any folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::schema::SourceSchema;

/// A pipeline file: where the lake is, which sources feed it, and the files each stage reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// The pipeline's name, as `runs.pipeline` records it.
    pub name: String,
    /// What it is for, in a sentence.
    #[serde(default)]
    pub description: Option<String>,
    /// Lake location: a path (relative to this file) or a URL.
    pub lake: String,
    /// Cron expressions, Asia/Shanghai time (used by `serve`).
    #[serde(default)]
    pub schedule: Vec<String>,
    /// The `[[source]]` sections, ingested in this order.
    #[serde(rename = "source", default)]
    pub sources: Vec<PipelineSource>,
    /// Linkage settings, relative to this file (default `linkage.toml`).
    #[serde(default = "default_linkage")]
    pub linkage: String,
    /// Directory of source schemas, relative to this file (default `../schemas`).
    #[serde(default = "default_schemas")]
    pub schemas: String,
    /// Warning rules directory, thresholds and population groups, relative
    /// to this file (defaults `rules`, `thresholds.csv`, `population_groups.csv`).
    #[serde(default = "default_rules")]
    pub rules: String,
    /// Assessment components, relative to this file (default `assessment`).
    #[serde(default = "default_assessment")]
    pub assessment: String,
    /// Thresholds file (default `thresholds.csv`).
    #[serde(default = "default_thresholds")]
    pub thresholds: String,
    /// Population groups file (default `population_groups.csv`).
    #[serde(default = "default_groups")]
    pub population_groups: String,
    /// How warnings are decided.
    #[serde(default)]
    pub warn: WarnSection,
    /// Where warnings are pushed (the monitoring system); no push without it.
    #[serde(default)]
    pub delivery: Option<super::DeliveryConfig>,
    /// The HTTP API of `safetynet serve`.
    #[serde(default)]
    pub api: super::ApiConfig,
    /// What roles without raw values see (every frontend).
    #[serde(default)]
    pub access: super::AccessConfig,
    /// The PostgreSQL endpoint of `safetynet serve`; none without it.
    #[serde(default)]
    pub sql: Option<super::SqlConfig>,
    /// Where the job's queries run (`[engine] workers`); local without it.
    #[serde(default)]
    pub engine: EngineSection,
    /// Directory of the pipeline file; filled in by [`Pipeline::load`].
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[engine]`: the `safetynet worker` processes that run the job's query
/// stages (docs/distributed.md). `--workers` on the command line overrides
/// it; without either, `SAFETYNET_WORKERS`, else the local engine.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Worker addresses, `http://host:port`.
    #[serde(default)]
    pub workers: Vec<String>,
}

/// One `[[source]]`: a department extract or the roster, from files or pulled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSource {
    /// Source name; the schema defaults to `../schemas/<name>.toml`.
    pub name: String,
    /// Schema file instead of the default, relative to the pipeline file.
    #[serde(default)]
    pub schema: Option<String>,
    /// Paths, globs, directories or URLs where this source's extracts land.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Text encoding, overriding the schema's: utf-8, gb18030 or gbk.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Or the system this source is pulled from (see [`super::pull`]).
    #[serde(default)]
    pub pull: Option<super::pull::PullConfig>,
}

/// Where the warning stage finds its files, and how it decides.
#[derive(Debug, Clone)]
pub struct WarnConfig {
    /// Assessment (the default) or every-rule.
    pub mode: WarnMode,
    /// Directory of rule files (`*.sql`).
    pub rules_dir: PathBuf,
    /// Directory of assessment components (`*.sql`).
    pub assessment_dir: PathBuf,
    /// The thresholds table (CSV).
    pub thresholds: PathBuf,
    /// Population groups of household categories (CSV).
    pub population_groups: PathBuf,
    /// Directory of source schemas.
    pub schemas_dir: PathBuf,
}

impl Default for WarnConfig {
    fn default() -> Self {
        WarnConfig {
            mode: Default::default(),
            rules_dir: "pipelines/rules".into(),
            assessment_dir: "pipelines/assessment".into(),
            thresholds: "pipelines/thresholds.csv".into(),
            population_groups: "pipelines/population_groups.csv".into(),
            schemas_dir: "schemas".into(),
        }
    }
}

/// Remove `.` and `dir/..` pairs without touching the file system, so
/// messages show `sample_data/x.csv` rather than `pipelines/../sample_data/x.csv`.
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn default_linkage() -> String {
    "linkage.toml".into()
}

fn default_schemas() -> String {
    "../schemas".into()
}

fn default_rules() -> String {
    "rules".into()
}

fn default_assessment() -> String {
    "assessment".into()
}

/// How warnings are decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WarnMode {
    /// Rules give clues; a household is warned when its estimated income
    /// falls below the line (or within a margin), or a 三保障 duty fails.
    #[default]
    Assessment,
    /// Every rule hit is a task (the behaviour before the assessment, kept
    /// for comparison).
    EveryRule,
}

impl WarnMode {
    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            WarnMode::Assessment => "assessment",
            WarnMode::EveryRule => "every_rule",
        }
    }

    /// The mode for its name (`every-rule` too).
    pub fn parse(text: &str) -> Option<WarnMode> {
        match text.trim().replace('-', "_").as_str() {
            "assessment" => Some(WarnMode::Assessment),
            "every_rule" => Some(WarnMode::EveryRule),
            _ => None,
        }
    }
}

impl std::fmt::Display for WarnMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `[warn]` section of a pipeline file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarnSection {
    /// `assessment` (default: a household is warned when its estimated
    /// income crosses the line) or `every_rule` (every rule hit is a task).
    #[serde(default)]
    pub mode: WarnMode,
}

fn default_thresholds() -> String {
    "thresholds.csv".into()
}

fn default_groups() -> String {
    "population_groups.csv".into()
}

impl Pipeline {
    /// Read and check a pipeline file; an error names the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read pipeline file {}", path.display()))?;
        let mut pipeline: Pipeline = toml::from_str(&text)
            .with_context(|| format!("in pipeline file {}", path.display()))?;
        pipeline.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // Certificate files are named relative to this file, as the others.
        let base = pipeline.base_dir.clone();
        let beside_this_file = |file: &mut Option<PathBuf>| {
            if let Some(f) = file.as_mut().filter(|f| f.is_relative()) {
                *f = tidy(&base.join(&*f));
            }
        };
        for source in &mut pipeline.sources {
            if let Some(pull) = &mut source.pull {
                beside_this_file(&mut pull.ca_file);
            }
        }
        if let Some(delivery) = &mut pipeline.delivery {
            beside_this_file(&mut delivery.ca_file);
        }
        if pipeline.sources.is_empty() {
            bail!("{}: the pipeline lists no [[source]]", path.display());
        }
        for source in &pipeline.sources {
            match (&source.pull, source.inputs.is_empty()) {
                (Some(pull), true) => pull
                    .check(&source.name)
                    .with_context(|| format!("in pipeline file {}", path.display()))?,
                (Some(_), false) => bail!(
                    "{}: source {} has both inputs and [source.pull]; give one",
                    path.display(),
                    source.name
                ),
                (None, _) => {}
            }
        }
        Ok(pipeline)
    }

    /// A path or URL from the file, resolved against the file's directory.
    pub fn resolve(&self, location: &str) -> String {
        if location.contains("://") || Path::new(location).is_absolute() {
            location.to_string()
        } else {
            tidy(&self.base_dir.join(location))
                .to_string_lossy()
                .into_owned()
        }
    }

    /// The lake's location, resolved against the file's directory.
    pub fn lake_location(&self) -> String {
        self.resolve(&self.lake)
    }

    /// The schemas directory, resolved against the file's directory.
    pub fn schemas_dir(&self) -> PathBuf {
        PathBuf::from(self.resolve(&self.schemas))
    }

    /// Where the warning stage finds its files.
    pub fn warn_config(&self) -> WarnConfig {
        WarnConfig {
            mode: self.warn.mode,
            rules_dir: self.resolve(&self.rules).into(),
            assessment_dir: self.resolve(&self.assessment).into(),
            thresholds: self.resolve(&self.thresholds).into(),
            population_groups: self.resolve(&self.population_groups).into(),
            schemas_dir: self.schemas_dir(),
        }
    }

    /// The linkage settings file, resolved against the file's directory.
    pub fn linkage_path(&self) -> PathBuf {
        PathBuf::from(self.resolve(&self.linkage))
    }

    /// The schema of one pipeline source.
    pub fn schema_for(&self, source: &PipelineSource) -> Result<SourceSchema> {
        let path = match &source.schema {
            Some(p) => PathBuf::from(self.resolve(p)),
            None => self.schemas_dir().join(format!("{}.toml", source.name)),
        };
        let schema = SourceSchema::load(&path)?;
        if schema.name != source.name {
            bail!(
                "source '{}' uses schema {} whose name is '{}'",
                source.name,
                path.display(),
                schema.name
            );
        }
        Ok(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Pipeline> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).unwrap();
        Pipeline::load(&path)
    }

    #[test]
    fn a_source_is_files_or_a_pull_not_both() {
        let pulled = load(
            "name='p'\nlake='l'\n[[source]]\nname='health'\n[source.pull]\nkind='postgres'\nurl_env='PG'\ntable='t'\n",
        )
        .unwrap();
        assert!(pulled.sources[0].pull.is_some() && pulled.sources[0].inputs.is_empty());
        let both = load(
            "name='p'\nlake='l'\n[[source]]\nname='health'\ninputs=['x.csv']\n[source.pull]\nkind='postgres'\nurl_env='PG'\ntable='t'\n",
        )
        .unwrap_err();
        assert!(
            format!("{both:#}").contains("both inputs and [source.pull]"),
            "{both:#}"
        );
        let bad = load(
            "name='p'\nlake='l'\n[[source]]\nname='health'\n[source.pull]\nkind='postgres'\nurl_env='PG'\n",
        )
        .unwrap_err();
        assert!(
            format!("{bad:#}").contains("needs a table or a query"),
            "{bad:#}"
        );
    }

    #[test]
    fn certificate_files_are_relative_to_the_pipeline_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "name='p'\nlake='l'\n[delivery]\nurl='https://m.example/in'\nca_file='certs/m.pem'\n\
             [[source]]\nname='education'\n[source.pull]\nkind='http'\n\
             url='https://x.example/api'\nca_file='/etc/province/ca.pem'\n",
        )
        .unwrap();
        let pipeline = Pipeline::load(&path).unwrap();
        let delivery = pipeline.delivery.as_ref().unwrap();
        assert_eq!(
            delivery.ca_file.as_deref(),
            Some(dir.path().join("certs/m.pem").as_path())
        );
        assert_eq!(
            pipeline.sources[0]
                .pull
                .as_ref()
                .unwrap()
                .ca_file
                .as_deref(),
            Some(Path::new("/etc/province/ca.pem"))
        );
        let plain = load(
            "name='p'\nlake='l'\n[[source]]\nname='education'\n[source.pull]\nkind='http'\n\
             url='http://x.example/api'\nca_file='ca.pem'\n",
        )
        .unwrap_err();
        assert!(
            format!("{plain:#}").contains("ca_file is for an https:// url"),
            "{plain:#}"
        );
        let database = load(
            "name='p'\nlake='l'\n[[source]]\nname='health'\n[source.pull]\nkind='postgres'\n\
             url_env='PG'\ntable='t'\nca_file='ca.pem'\n",
        )
        .unwrap_err();
        assert!(
            format!("{database:#}").contains("sslrootcert=FILE"),
            "{database:#}"
        );
    }
}
