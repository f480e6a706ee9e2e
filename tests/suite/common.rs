//! Shared helpers for the integration tests: they drive the real binary
//! against a real lake in a temporary directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_safetynet"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd.env("SAFETYNET_LOG", "safetynet=warn");
    cmd
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run and return output, whatever the exit status.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the safetynet binary runs")
}

/// Run and insist on success.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "command failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn generate(dir: &Path, households: usize, extra: &[&str]) {
    ok(bin()
        .args([
            "generate",
            "--households",
            &households.to_string(),
            "--seed",
            "7",
            "--out",
        ])
        .arg(dir)
        .args(extra));
}

pub fn ingest(lake: &str, source: &str, inputs: &[&Path]) -> Output {
    let mut cmd = bin();
    cmd.args(["ingest", "--lake", lake, "--source", source])
        .args(inputs);
    run(&mut cmd)
}

pub fn ingest_ok(lake: &str, source: &str, inputs: &[&Path]) -> String {
    let out = ingest(lake, source, inputs);
    assert!(
        out.status.success(),
        "ingest {source} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Ingest `input` as `source` with a schema file of its own.
pub fn ingest_with_schema(
    lake: &str,
    source: &str,
    schema: &Path,
    input: impl AsRef<std::ffi::OsStr>,
) -> String {
    ok(bin()
        .args(["ingest", "--lake", lake, "--source", source, "--schema"])
        .arg(schema)
        .arg(input))
}

/// Query the lake through the CLI; rows as strings (header dropped).
pub fn sql_with(cmd: &mut Command, lake: &str, query: &str) -> Vec<Vec<String>> {
    let out = ok(cmd.args(["sql", "--lake", lake, "--format", "csv", "-c", query]));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(out.as_bytes());
    reader
        .records()
        .map(|r| r.expect("csv output").iter().map(str::to_string).collect())
        .collect()
}

pub fn sql(lake: &str, query: &str) -> Vec<Vec<String>> {
    sql_with(&mut bin(), lake, query)
}

pub fn count(lake: &str, query: &str) -> i64 {
    sql(lake, query)[0][0].parse().expect("a count")
}

/// Data rows of a CSV file (header excluded).
pub fn csv_rows(path: &Path) -> usize {
    csv::Reader::from_path(path).expect("csv").records().count()
}

pub fn lake_dir(tmp: &tempfile::TempDir) -> String {
    tmp.path().join("lake").to_string_lossy().into_owned()
}

/// A generated data set in `tmp/data` with the roster and `sources`
/// ingested into `tmp/lake`: (data directory, lake).
pub fn generated_lake(
    tmp: &tempfile::TempDir,
    households: usize,
    sources: &[&str],
) -> (PathBuf, String) {
    let data = tmp.path().join("data");
    generate(&data, households, &[]);
    let lake = lake_dir(tmp);
    ingest_ok(&lake, "roster", &[&data.join("roster.csv")]);
    for source in sources {
        ingest_ok(&lake, source, &[&data.join(format!("{source}.csv"))]);
    }
    (data, lake)
}

/// Generated data and a pipeline file using the repository's schemas,
/// linkage settings, rules and thresholds; `extra` is appended (e.g. a
/// `[delivery]` section).
pub fn pipeline_file(tmp: &Path, households: usize, extra: &str) -> PathBuf {
    let data = tmp.join("data");
    generate(
        &data,
        households,
        &["--encoding", "civil_affairs:gb18030", "--xlsx", "education"],
    );
    let repo = repo();
    let p = |rel: &str| repo.join(rel).display().to_string();
    let d = |rel: &str| data.join(rel).display().to_string();
    let text = format!(
        r#"name = "test"
lake = "{lake}"
schemas = "{schemas}"
linkage = "{linkage}"
rules = "{rules}"
assessment = "{assessment}"
thresholds = "{thresholds}"
population_groups = "{groups}"
[[source]]
name = "roster"
inputs = ["{roster}"]
[[source]]
name = "health"
inputs = ["{health}"]
[[source]]
name = "civil_affairs"
inputs = ["{civil}"]
[[source]]
name = "education"
inputs = ["{education}"]
[[source]]
name = "social_insurance"
inputs = ["{social}"]
{extra}
"#,
        lake = tmp.join("lake").display(),
        schemas = p("schemas"),
        linkage = p("pipelines/linkage.toml"),
        rules = p("pipelines/rules"),
        assessment = p("pipelines/assessment"),
        thresholds = p("pipelines/thresholds.csv"),
        groups = p("pipelines/population_groups.csv"),
        roster = d("roster.csv"),
        health = d("health.csv"),
        civil = d("civil_affairs.csv"),
        education = d("education.xlsx"),
        social = d("social_insurance.csv"),
    );
    let file = tmp.join("pipeline.toml");
    std::fs::write(&file, text).unwrap();
    file
}

/// What a user compares: every link table row for row (weights to 1e-9),
/// and every warning with its evidence; one query per table.
pub fn outcome_queries() -> Vec<String> {
    let mut queries: Vec<String> = [
        ("civil_affairs", "record_id"),
        ("health", "settlement_id"),
        ("education", "student_id"),
        ("social_insurance", "record_id"),
    ]
    .iter()
    .map(|(source, key)| {
        format!(
            "SELECT {key}, person_id, household_id, status, round(match_weight, 9), \
             round(match_probability, 9), candidates, name_level, id_number_level \
             FROM link_{source} ORDER BY {key}"
        )
    })
    .collect();
    queries.push(
        "SELECT warning_id, household_id, kind, risk_type, severity, status, rules, records, \
         evidence_hash, round(estimate_per_capita, 6) FROM warnings ORDER BY warning_id"
            .to_string(),
    );
    queries.push(
        "SELECT warning_id, evidence_hash, rule, source, record_key, person_id \
         FROM warning_evidence ORDER BY warning_id, evidence_hash, rule, source, record_key"
            .to_string(),
    );
    queries
}

/// The answers to [`outcome_queries`] in `lake`.
pub fn link_and_warning_outcome(lake: &str) -> Vec<Vec<Vec<String>>> {
    outcome_queries().iter().map(|q| sql(lake, q)).collect()
}
