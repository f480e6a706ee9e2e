//! Specs of the warning stage: `tests/specs/warn/*.toml`, each a small
//! world of households and department records, run in process on a lake in
//! a temporary directory, step by step, with the warnings expected after
//! each step.
//!
//! A spec names households (with members), records by canonical field name
//! (each linked to the member it is about: linking is not what these
//! specs test), and steps: a run as of a date, records added before it,
//! verifications recorded before it, and what the warnings must then be.
//! Thresholds come from `pipelines/thresholds.csv`, with a spec's own
//! values laid over them for its province.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use serde::Deserialize;

use safetynet::config::{SourceSchema, WarnConfig, WarnMode};
use safetynet::identity::id_number::check_char;
use safetynet::lake::Lake;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    /// What the spec shows, in a sentence.
    title: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    thresholds: BTreeMap<String, f64>,
    #[serde(rename = "household")]
    households: Vec<Household>,
    #[serde(rename = "step")]
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Household {
    id: String,
    #[serde(default = "default_category")]
    category: String,
    annual_income: f64,
    #[serde(default)]
    risk_types: String,
    #[serde(default = "default_village")]
    village: String,
    members: Vec<Member>,
}

fn default_category() -> String {
    "脱贫户".into()
}

fn default_village() -> String {
    "522322001201".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    id: String,
    name: String,
    born: String,
    #[serde(default = "default_gender")]
    gender: String,
    #[serde(default = "default_relation")]
    relation: String,
}

fn default_gender() -> String {
    "男".into()
}

fn default_relation() -> String {
    "户主".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    source: String,
    /// The member it is about.
    member: String,
    /// Canonical field name → value as a department writes it.
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Verify {
    household: String,
    outcome: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    as_of: String,
    #[serde(default, rename = "record")]
    records: Vec<Record>,
    #[serde(default)]
    verify: Vec<Verify>,
    #[serde(default, rename = "expect")]
    expected: Vec<Expect>,
    /// Counts the stage must report: raised, queued, released, updated,
    /// reopened, unchanged.
    #[serde(default)]
    report: BTreeMap<String, usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    household: String,
    /// How many warnings the household has (all kinds); 0 for none.
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    risk_type: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    /// The rules and components of its evidence (comma-separated, sorted).
    #[serde(default)]
    rules: Option<String>,
    /// The assessment's estimate is below (or, when negative, above) this.
    #[serde(default)]
    estimate_below: Option<f64>,
    #[serde(default)]
    estimate_above: Option<f64>,
    /// Text the evidence or the assessment steps must contain.
    #[serde(default)]
    mentions: Vec<String>,
    /// Record keys the new evidence must list.
    #[serde(default)]
    new_evidence: Vec<String>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A valid ID number for a member: the village's county, the birth date,
/// a sequence from the member's id.
fn id_of(village: &str, m: &Member) -> String {
    let seq: u32 = m.id.bytes().map(u32::from).sum::<u32>() % 500;
    let male = m.gender == "男";
    let seq = seq * 2 + u32::from(male);
    let first17 = format!(
        "{}{}{:03}",
        &village[..6],
        m.born.replace('-', ""),
        seq % 1000
    );
    format!("{first17}{}", check_char(&first17).unwrap())
}

fn csv_cell(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// The first header of each field: what a department's file would say.
fn header_of(schema: &SourceSchema, field: &str) -> String {
    schema
        .fields
        .iter()
        .find(|f| f.name == field)
        .unwrap_or_else(|| panic!("{}: no field {field}", schema.name))
        .headers[0]
        .clone()
}

struct World<'a> {
    spec: &'a Spec,
    dir: PathBuf,
    lake: Lake,
    lake_path: String,
    batch: usize,
}

impl World<'_> {
    fn member(&self, id: &str) -> (&Household, &Member) {
        for h in &self.spec.households {
            if let Some(m) = h.members.iter().find(|m| m.id == id) {
                return (h, m);
            }
        }
        panic!("no member {id}");
    }

    async fn ingest(&mut self, source: &str, text: String) {
        self.batch += 1;
        let file = self.dir.join(format!("{source}-{}.csv", self.batch));
        std::fs::write(&file, text).unwrap();
        let schema = SourceSchema::load(&repo().join(format!("schemas/{source}.toml"))).unwrap();
        let outcomes = safetynet::pipeline::ingest_with_progress(
            &self.lake,
            Arc::new(schema),
            safetynet::pipeline::Feed::Files(&[file.display().to_string()]),
            &Default::default(),
            &safetynet::pipeline::Silent,
        )
        .await
        .unwrap();
        for o in outcomes {
            let r = o.result.unwrap_or_else(|e| panic!("{}: {e:#}", o.file));
            assert_eq!(r.rows_quarantined, 0, "{source} fixture rows quarantined");
        }
    }

    async fn roster(&mut self) {
        let schema = SourceSchema::load(&repo().join("schemas/roster.toml")).unwrap();
        let fields = [
            "household_number",
            "member_id",
            "province",
            "prefecture",
            "county_name",
            "township_name",
            "village_name",
            "region_code",
            "category",
            "household_size",
            "annual_income",
            "per_capita_income",
            "risk_types",
            "name",
            "id_number",
            "gender",
            "birth_date",
            "relation",
        ];
        let mut text: String = fields
            .iter()
            .map(|f| header_of(&schema, f))
            .collect::<Vec<_>>()
            .join(",");
        text.push('\n');
        for h in &self.spec.households {
            let size = h.members.len();
            for m in &h.members {
                let row = [
                    h.id.clone(),
                    m.id.clone(),
                    "贵州省".into(),
                    "黔西南州".into(),
                    "兴仁市".into(),
                    "测试镇".into(),
                    "测试村".into(),
                    h.village.clone(),
                    h.category.clone(),
                    size.to_string(),
                    format!("{:.2}", h.annual_income),
                    format!("{:.2}", h.annual_income / size as f64),
                    h.risk_types.clone(),
                    m.name.clone(),
                    id_of(&h.village, m),
                    m.gender.clone(),
                    m.born.clone(),
                    m.relation.clone(),
                ];
                writeln!(
                    text,
                    "{}",
                    row.iter()
                        .map(|c| csv_cell(c))
                        .collect::<Vec<_>>()
                        .join(",")
                )
                .unwrap();
            }
        }
        self.ingest("roster", text).await;
    }

    /// Ingest records and link each to its member.
    async fn records(&mut self, records: &[Record]) {
        let mut by_source: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for r in records {
            by_source.entry(r.source.as_str()).or_default().push(r);
        }
        for (source, rows) in by_source {
            let schema =
                SourceSchema::load(&repo().join(format!("schemas/{source}.toml"))).unwrap();
            let mut columns: Vec<String> = vec![
                "name".into(),
                "id_number".into(),
                "gender".into(),
                "birth_date".into(),
            ];
            for r in &rows {
                for k in r.fields.keys() {
                    if !columns.contains(k) {
                        columns.push(k.clone());
                    }
                }
            }
            let mut text = columns
                .iter()
                .map(|c| header_of(&schema, c))
                .collect::<Vec<_>>()
                .join(",");
            text.push('\n');
            let mut links = Vec::new();
            for r in &rows {
                let (h, m) = self.member(&r.member);
                let cells: Vec<String> = columns
                    .iter()
                    .map(|c| match c.as_str() {
                        "name" => r.fields.get(c).cloned().unwrap_or_else(|| m.name.clone()),
                        "id_number" => r
                            .fields
                            .get(c)
                            .cloned()
                            .unwrap_or_else(|| id_of(&h.village, m)),
                        "gender" => r.fields.get(c).cloned().unwrap_or_else(|| m.gender.clone()),
                        "birth_date" => r.fields.get(c).cloned().unwrap_or_else(|| m.born.clone()),
                        other => r.fields.get(other).cloned().unwrap_or_default(),
                    })
                    .collect();
                writeln!(
                    text,
                    "{}",
                    cells
                        .iter()
                        .map(|c| csv_cell(c))
                        .collect::<Vec<_>>()
                        .join(",")
                )
                .unwrap();
                let key = r
                    .fields
                    .get(&schema.key)
                    .unwrap_or_else(|| panic!("a {source} record needs its key {}", schema.key));
                links.push((key.clone(), h.id.clone(), id_of(&h.village, m)));
            }
            self.ingest(source, text).await;
            self.link(&schema, links).await;
        }
    }

    /// Write link rows: every record linked, with certainty, to its member.
    async fn link(&self, schema: &SourceSchema, links: Vec<(String, String, String)>) {
        let ctx = self.lake.session_with(&["roster_person"]).await.unwrap();
        let batches = ctx
            .sql("SELECT id_number, person_id FROM roster_person")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut person = BTreeMap::new();
        for b in &batches {
            let ids = safetynet::lake::query::strings_of(b.column(0)).unwrap();
            let ps = safetynet::lake::query::strings_of(b.column(1)).unwrap();
            for (i, p) in ids.into_iter().zip(ps) {
                person.insert(i.unwrap(), p.unwrap());
            }
        }
        let table = safetynet::lake::tables::link_table(&schema.name);
        let arrow = Arc::new(Schema::new(vec![
            Field::new(&schema.key, DataType::Utf8, false),
            Field::new("person_id", DataType::Utf8, true),
            Field::new("household_id", DataType::Utf8, true),
            Field::new("match_probability", DataType::Float64, true),
            Field::new("status", DataType::Utf8, false),
        ]));
        let n = links.len();
        let batch = RecordBatch::try_new(
            arrow.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    links.iter().map(|l| l.0.clone()),
                )),
                Arc::new(StringArray::from_iter_values(
                    links.iter().map(|l| person[&l.2].clone()),
                )),
                Arc::new(StringArray::from_iter_values(
                    links.iter().map(|l| l.1.clone()),
                )),
                Arc::new(Float64Array::from(vec![1.0; n])),
                Arc::new(StringArray::from(vec!["linked"; n])),
            ],
        )
        .unwrap();
        self.lake.append(&table, &arrow, vec![batch]).await.unwrap();
    }

    fn config(&self) -> WarnConfig {
        let mut thresholds =
            std::fs::read_to_string(repo().join("pipelines/thresholds.csv")).unwrap();
        for (parameter, value) in &self.spec.thresholds {
            writeln!(
                thresholds,
                "52,2026,2026-01-01,all,{parameter},{value},,spec"
            )
            .unwrap();
        }
        let file = self.dir.join("thresholds.csv");
        std::fs::write(&file, thresholds).unwrap();
        WarnConfig {
            mode: self
                .spec
                .mode
                .as_deref()
                .map_or(WarnMode::Assessment, |m| WarnMode::parse(m).unwrap()),
            rules_dir: repo().join("pipelines/rules"),
            assessment_dir: repo().join("pipelines/assessment"),
            thresholds: file,
            population_groups: repo().join("pipelines/population_groups.csv"),
            schemas_dir: repo().join("schemas"),
        }
    }

    fn warnings(&self, household: &str) -> Vec<BTreeMap<String, String>> {
        let exists = crate::common::count(
            &self.lake_path,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'warnings'",
        );
        if exists == 0 {
            return Vec::new();
        }
        crate::common::sql(
            &self.lake_path,
            &format!(
                "SELECT kind, risk_type, status, severity, rules, CAST(estimate_per_capita AS VARCHAR) AS estimate, \
                 evidence || coalesce(assessment, '') AS text, new_evidence, warning_id \
                 FROM warnings WHERE household_id = '{household}' ORDER BY kind, risk_type"
            ),
        )
        .into_iter()
        .map(|r| {
            ["kind", "risk_type", "status", "severity", "rules", "estimate", "text", "new_evidence", "warning_id"]
                .iter()
                .map(|k| k.to_string())
                .zip(r)
                .collect()
        })
        .collect()
    }
}

async fn run_spec(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let spec: Spec = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tmp = tempfile::tempdir().unwrap();
    let lake_path = tmp.path().join("lake").display().to_string();
    let mut world = World {
        spec: &spec,
        dir: tmp.path().to_path_buf(),
        lake: Lake::open(&lake_path).await.unwrap(),
        lake_path,
        batch: 0,
    };
    let name = path.file_stem().unwrap().to_string_lossy().to_string();
    world.roster().await;
    let config = world.config();
    for (n, step) in spec.steps.iter().enumerate() {
        let at = format!("{name} ({}), step {}", spec.title, n + 1);
        world.records(&step.records).await;
        for v in &step.verify {
            let ids = world.warnings(&v.household);
            assert!(
                !ids.is_empty(),
                "{at}: nothing to verify for {}",
                v.household
            );
            for w in ids {
                safetynet::warn::verify(
                    &world.lake,
                    &safetynet::warn::Verification {
                        warning_id: w["warning_id"].clone(),
                        outcome: v.outcome.clone(),
                        reason: "spec".into(),
                        by: "spec".into(),
                        visited: None,
                    },
                )
                .await
                .unwrap();
            }
        }
        let as_of = chrono::NaiveDate::parse_from_str(&step.as_of, "%Y-%m-%d").unwrap();
        let report = safetynet::warn::run(&world.lake, &config, as_of)
            .await
            .unwrap_or_else(|e| panic!("{at}: {e:#}"));
        for (key, want) in &step.report {
            let got = match key.as_str() {
                "raised" => report.raised,
                "queued" => report.queued,
                "released" => report.released,
                "updated" => report.updated,
                "reopened" => report.reopened,
                "unchanged" => report.unchanged,
                "suppressed" => report.suppressed,
                other => panic!("{at}: no report count {other}"),
            };
            assert_eq!(got, *want, "{at}: report {key}: {report:?}");
        }
        for e in &step.expected {
            let got = world.warnings(&e.household);
            if let Some(n) = e.count {
                assert_eq!(got.len(), n, "{at}: {}: {got:#?}", e.household);
            }
            if got.is_empty() {
                continue;
            }
            let pick: Vec<&BTreeMap<String, String>> = got
                .iter()
                .filter(|w| e.kind.as_ref().is_none_or(|k| &w["kind"] == k))
                .filter(|w| e.risk_type.as_ref().is_none_or(|r| &w["risk_type"] == r))
                .collect();
            assert!(
                !pick.is_empty() || e.count == Some(0),
                "{at}: {}: no warning like {e:?} in {got:#?}",
                e.household
            );
            for w in pick {
                let field = |name: &str, want: &Option<String>| {
                    if let Some(want) = want {
                        assert_eq!(&w[name], want, "{at}: {} {name}: {w:#?}", e.household);
                    }
                };
                field("status", &e.status);
                field("severity", &e.severity);
                field("rules", &e.rules);
                let estimate: Option<f64> = w["estimate"].parse().ok();
                if let Some(limit) = e.estimate_below {
                    assert!(
                        estimate.is_some_and(|v| v < limit),
                        "{at}: {} estimate {estimate:?} ≥ {limit}",
                        e.household
                    );
                }
                if let Some(limit) = e.estimate_above {
                    assert!(
                        estimate.is_some_and(|v| v > limit),
                        "{at}: {} estimate {estimate:?} ≤ {limit}",
                        e.household
                    );
                }
                for m in &e.mentions {
                    assert!(
                        w["text"].contains(m.as_str()),
                        "{at}: {} does not mention {m}: {}",
                        e.household,
                        w["text"]
                    );
                }
                for k in &e.new_evidence {
                    assert!(
                        w["new_evidence"].contains(k.as_str()),
                        "{at}: {} new evidence lacks {k}: {}",
                        e.household,
                        w["new_evidence"]
                    );
                }
            }
        }
    }
}

/// Every spec file passes.
#[test]
fn warning_specs() {
    let dir = repo().join("tests/specs/warn");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "specs in {}", dir.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for file in files {
        rt.block_on(run_spec(&file));
    }
}
