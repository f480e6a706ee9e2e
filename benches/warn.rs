//! Warning-rule benchmark: every shipped rule over a linked lake, timed as
//! `safetynet warn` (rules, pending-review pass, combining and writing the
//! warnings) beside DuckDB running the same rule SQL on Parquet copies of
//! the same tables in the same run.
//!
//!   cargo bench --bench warn -- --households 100000 [--dir /tmp/benchwarn] [--rows health=N ...]
//!
//! The lake is built with the real pipeline: generate, ingest, link.

mod common;

use common::measure;

use std::path::{Path, PathBuf};
use std::process::Command;

use safetynet::config::SourceSchema;
use safetynet::warn::rules;
use safetynet::warn::thresholds::household_thresholds_sql;

const SOURCES: &[&str] = &["health", "civil_affairs", "education", "social_insurance"];

fn safetynet(root: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_safetynet"));
    cmd.current_dir(root).env("SAFETYNET_LOG", "warn");
    cmd
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut households = 20_000usize;
    let mut dir = std::env::temp_dir().join("safetynet-bench-warn");
    // `--rows source=N`, passed on to `safetynet generate`.
    let mut rows: Vec<String> = Vec::new();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--households" => {
                households = args[i + 1].parse().expect("--households N");
                i += 1;
            }
            "--dir" => {
                dir = PathBuf::from(&args[i + 1]);
                i += 1;
            }
            "--rows" => {
                rows.extend(["--rows".to_string(), args[i + 1].clone()]);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let data = dir.join(format!("h{households}"));
    let lake = data.join("lake");
    let parquet = data.join("parquet");
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).expect("date");

    if !lake.join("link_health").exists() {
        let _ = std::fs::remove_dir_all(&lake);
        let (seconds, peak, _) = measure(
            safetynet(root)
                .args([
                    "generate",
                    "--seed",
                    "1",
                    "--households",
                    &households.to_string(),
                ])
                .args(&rows)
                .arg("--out")
                .arg(&data),
        );
        println!("building the lake: generate {seconds:.1} s, peak {peak:.0} MiB");
        for source in std::iter::once("roster").chain(SOURCES.iter().copied()) {
            let (seconds, peak, _) = measure(
                safetynet(root)
                    .args(["ingest", "--source", source, "--lake"])
                    .arg(&lake)
                    .arg(data.join(format!("{source}.csv"))),
            );
            println!("building the lake: ingest {source} {seconds:.1} s, peak {peak:.0} MiB");
        }
        let (seconds, peak, out) = measure(safetynet(root).args(["link", "--lake"]).arg(&lake));
        println!(
            "building the lake: link (every source, training) {seconds:.1} s, peak {peak:.0} MiB\n{out}"
        );
    }
    // Parquet copies of exactly the rows the lake shows, for DuckDB.
    std::fs::create_dir_all(&parquet).expect("parquet dir");
    let mut tables: Vec<String> = vec!["roster_person".into(), "roster_household".into()];
    for s in SOURCES {
        tables.push(format!("staged_{s}"));
        tables.push(format!("link_{s}"));
    }
    for t in &tables {
        let out = parquet.join(format!("{t}.parquet"));
        if !out.exists() {
            measure(
                safetynet(root)
                    .args(["sql", "--lake"])
                    .arg(&lake)
                    .args(["-c", &format!("SELECT * FROM {t}")])
                    .arg("--out")
                    .arg(&out),
            );
        }
    }
    let count = |sql: &str| -> String {
        let (_, _, out) = measure(
            safetynet(root)
                .args(["sql", "--format", "csv", "--lake"])
                .arg(&lake)
                .args(["-c", sql]),
        );
        out.lines().nth(1).unwrap_or("?").to_string()
    };
    let people = count("SELECT count(*) FROM roster_person");
    let records = count(
        "SELECT (SELECT count(*) FROM staged_health) + (SELECT count(*) FROM staged_civil_affairs) + (SELECT count(*) FROM staged_education) + (SELECT count(*) FROM staged_social_insurance)",
    );

    // safetynet: a fresh warnings state each time, so the run raises everything.
    for t in ["warnings", "warning_events"] {
        let _ = std::fs::remove_dir_all(lake.join(t));
    }
    let (seconds, peak, _) = measure(
        safetynet(root)
            .args(["warn", "--as-of", &as_of.to_string(), "--lake"])
            .arg(&lake),
    );
    let warnings = count("SELECT count(*) FROM warnings");
    let warned = count(
        "SELECT round(100.0 * count(DISTINCT w.household_id) / (SELECT count(*) FROM roster_household), 1) FROM warnings w",
    );

    // DuckDB: the same rule SQL over the Parquet copies.
    let rules = rules::load_dir(&Path::new(root).join("pipelines/rules")).expect("rules");
    let mut script = String::new();
    for t in &tables {
        script.push_str(&format!(
            "CREATE VIEW {t} AS SELECT * FROM read_parquet('{}');\n",
            parquet.join(format!("{t}.parquet")).display()
        ));
    }
    script.push_str(&format!(
        "CREATE TABLE thresholds AS SELECT * FROM read_csv('{root}/pipelines/thresholds.csv', header = true, \
         types = {{'region_prefix': 'VARCHAR', 'effective_from': 'DATE', 'value': 'DOUBLE'}});\n\
         CREATE TABLE population_groups AS SELECT * FROM read_csv('{root}/pipelines/population_groups.csv', header = true);\n\
         UPDATE thresholds SET region_prefix = '' WHERE region_prefix IS NULL;\n{};\n",
        household_thresholds_sql(as_of)
    ));
    for s in SOURCES {
        let schema =
            SourceSchema::load(&Path::new(root).join(format!("schemas/{s}.toml"))).expect("schema");
        let key = &schema.key;
        script.push_str(&format!(
            "CREATE VIEW linked_{s} AS SELECT s.*, k.person_id, k.household_id, k.match_probability FROM staged_{s} s \
             JOIN link_{s} k ON CAST(s.{key} AS VARCHAR) = CAST(k.{key} AS VARCHAR) WHERE k.status = 'linked';\n"
        ));
    }
    for rule in &rules {
        script.push_str(&format!(
            "SELECT '{}' AS rule, count(*) AS signals FROM ({}) t;\n",
            rule.id,
            rule.query(as_of)
        ));
    }
    let script_file = data.join("rules.duckdb.sql");
    std::fs::write(&script_file, &script).expect("script");
    let duck = Command::new("duckdb")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());

    println!(
        "| households | roster people | department records | tool | seconds | peak MiB | result |"
    );
    println!("|---:|---:|---:|---|---:|---:|---|");
    println!(
        "| {households} | {people} | {records} | safetynet warn (9 rules, pending-review pass, state, write) | {seconds:.2} | {peak:.0} | {warnings} warnings, {warned} % of households |"
    );
    if duck {
        let (seconds, peak, out) = measure(
            Command::new("duckdb")
                .args([":memory:", "-csv", "-noheader", "-f"])
                .arg(&script_file),
        );
        let signals: u64 = out
            .lines()
            .filter_map(|l| l.split(',').nth(1)?.trim().parse::<u64>().ok())
            .sum();
        println!(
            "| {households} | {people} | {records} | DuckDB, same rule SQL on Parquet copies | {seconds:.2} | {peak:.0} | {signals} signals |"
        );
    } else {
        println!(
            "| {households} | {people} | {records} | DuckDB | not installed (pip install duckdb-cli) | | |"
        );
    }
}
