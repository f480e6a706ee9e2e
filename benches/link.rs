//! Linking benchmark: generated roster and health extract at N households,
//! `safetynet link --train` timed and measured for peak memory, quality from
//! `safetynet eval`, and Splink on DuckDB on the same files in the same run.
//!
//!   cargo bench --bench link -- --households 100000 [--households 2000] [--seeds 1,2,3] [--dir /tmp/bench] [--no-splink]
//!
//! Splink runs through benches/splink_departments.py (pip install splink pypinyin pandas).
//!
//! Generic linking on FEBRL4 (sample_data/febrl4, the example in
//! pipelines/examples/febrl4), ingest and `link --train` timed beside
//! Splink (benches/splink_febrl4.py) on the same files, in turn:
//!
//!   cargo bench --bench link -- --febrl4 3
//!
//! Worlds, not a world (issue 15): every department linked in generated
//! worlds that differ in their namesakes, missing ID numbers, birth dates,
//! how finely places are written and how names are damaged, with the
//! run's own precision estimate beside the measured one, and Splink's
//! F1 on each department beside safetynet's up to 2,000 households:
//!
//!   cargo bench --bench link -- --worlds default [--households 2000] [--households 100000]
//!   cargo bench --bench link -- --worlds "namesake_share=0.25,no_id_share=0.3;no_id_share=0.03"
//!   cargo bench --bench link -- --worlds default --settings /tmp/linkage-0.98.toml
//!
//! `--settings` links with another settings file (a copy of
//! pipelines/linkage.toml with another `target_precision`, say), to show
//! what a data office trades by asking for less precision.

mod common;

use common::measure;

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The corners and middle of the ranges: namesakes 5–25 % of
/// records, ID numbers left out of 3–30 %; then the departments' habits:
/// no birth dates anywhere, every birth date, places written only to the
/// county, and names damaged three times as often, mostly by a dropped
/// character and homophones.
const DEFAULT_WORLDS: &[&str] = &[
    "namesake_share=0.05,no_id_share=0.03",
    "namesake_share=0.05,no_id_share=0.3",
    "namesake_share=0.25,no_id_share=0.03",
    "namesake_share=0.25,no_id_share=0.3",
    "namesake_share=0.15,no_id_share=0.15",
    "namesake_share=0.10,no_id_share=0.10",
    "namesake_share=0.05,no_id_share=0.15",
    "namesake_share=0.25,no_id_share=0.15",
    "namesake_share=0.15,no_id_share=0.15,birth_share=0",
    "namesake_share=0.15,no_id_share=0.15,birth_share=1",
    "namesake_share=0.15,no_id_share=0.15,region=county",
    "namesake_share=0.15,no_id_share=0.15,name_dirt=3,name_dropped=3,name_homophone=3",
];

const DEPARTMENTS: [&str; 4] = ["civil_affairs", "health", "education", "social_insurance"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut sizes = Vec::new();
    let mut dir = std::env::temp_dir().join("safetynet-bench-link");
    let mut splink = true;
    // Rounds of the FEBRL4 comparison, instead of the generated worlds.
    let mut febrl4_rounds = 0;
    // Generator worlds to sweep (`--world` values), instead of health alone.
    let mut worlds: Vec<String> = Vec::new();
    // The linkage settings the sweep links with.
    let mut settings = PathBuf::from("pipelines/linkage.toml");
    // Several seeds show how much the figures move between draws.
    let mut seeds: Vec<u64> = vec![1];
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--households" => {
                sizes.push(args[i + 1].parse::<usize>().expect("--households N"));
                i += 1;
            }
            "--dir" => {
                dir = PathBuf::from(&args[i + 1]);
                i += 1;
            }
            "--no-splink" => splink = false,
            "--worlds" => {
                worlds = if args[i + 1] == "default" {
                    DEFAULT_WORLDS.iter().map(|w| w.to_string()).collect()
                } else {
                    args[i + 1].split(';').map(str::to_string).collect()
                };
                i += 1;
            }
            "--settings" => {
                settings = PathBuf::from(&args[i + 1]);
                i += 1;
            }
            "--febrl4" => {
                febrl4_rounds = args[i + 1].parse().expect("--febrl4 ROUNDS");
                i += 1;
            }
            "--seeds" => {
                seeds = args[i + 1]
                    .split(',')
                    .map(|s| s.trim().parse().expect("--seeds 1,2,3"))
                    .collect();
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let bin = env!("CARGO_BIN_EXE_safetynet");
    let root = env!("CARGO_MANIFEST_DIR");
    if febrl4_rounds > 0 {
        febrl4(bin, root, &dir, febrl4_rounds, splink);
        return;
    }
    if sizes.is_empty() {
        sizes.push(2_000);
    }
    if !worlds.is_empty() {
        sweep(bin, root, &dir, &worlds, &sizes, &settings, splink);
        return;
    }
    println!(
        "| households | roster people | health records | tool | seconds | peak MiB | precision | recall | F1 |"
    );
    println!("|---:|---:|---:|---|---:|---:|---:|---:|---:|");
    let runs: Vec<(usize, u64)> = sizes
        .iter()
        .flat_map(|&h| seeds.iter().map(move |&s| (h, s)))
        .collect();
    for (households, seed) in runs {
        let data = dir.join(format!("h{households}-seed{seed}"));
        let lake = data.join("lake");
        let _ = std::fs::remove_dir_all(&lake);
        if !data.join("health.csv").exists() {
            let status = Command::new(bin)
                .args([
                    "generate",
                    "--only",
                    "health",
                    "--seed",
                    &seed.to_string(),
                    "--households",
                    &households.to_string(),
                    "--out",
                ])
                .arg(&data)
                .stdout(Stdio::null())
                .status()
                .expect("generate");
            assert!(status.success());
        }
        for source in ["roster", "health"] {
            let status = Command::new(bin)
                .args(["ingest", "--source", source, "--lake"])
                .arg(&lake)
                .arg(data.join(format!("{source}.csv")))
                .current_dir(root)
                .env("SAFETYNET_LOG", "warn")
                .stdout(Stdio::null())
                .status()
                .expect("ingest");
            assert!(status.success());
        }
        let count = |table: &str| -> String {
            let out = Command::new(bin)
                .args(["sql", "--format", "csv", "--lake"])
                .arg(&lake)
                .args(["-c", &format!("SELECT count(*) FROM {table}")])
                .output()
                .expect("sql");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .nth(1)
                .unwrap_or("?")
                .to_string()
        };
        let (people, records) = (count("roster_person"), count("staged_health"));

        let (seconds, peak, _) = safetynet(
            bin,
            root,
            &[
                &"link",
                &"--source",
                &"health",
                &"--train",
                &"--lake",
                &lake,
            ],
        );
        let e = eval_json(bin, root, &lake, "health", &data.join("truth_health.csv"));
        let f = |v: &serde_json::Value| format!("{:.4}", v.as_f64().unwrap_or(0.0));
        println!(
            "| {households} | {people} | {records} | safetynet link --train, seed {seed} | {seconds:.2} | {peak:.0} | {} | {} | {} |",
            f(&e["precision"]),
            f(&e["recall"]),
            f(&e["f1"])
        );
        let b = &e["exact_id_baseline"];
        println!(
            "| {households} | {people} | {records} | exact ID join (normalised IDs) | | | {} | {} | {} |",
            f(&b["precision"]),
            f(&b["recall"]),
            f(&b["f1"])
        );
        println!(
            "| {households} | {people} | {records} | (true matches known only by name and region: {:.2} %) | | | | | |",
            e["name_and_region_only_share"].as_f64().unwrap_or(0.0) * 100.0
        );
        if splink {
            let (seconds, peak, s) = run_splink(root, "splink_departments.py", &[&data, &"health"]);
            let best = &s["best"];
            println!(
                "| {households} | {people} | {records} | Splink 5 + DuckDB, seed {seed} (best threshold {}) | {:.2} (own timer {}) | {peak:.0} | {} | {} | {} |",
                best["threshold"],
                seconds,
                s["seconds"],
                f(&best["precision"]),
                f(&best["recall"]),
                f(&best["f1"])
            );
        }
    }
}

/// FEBRL4 b linked against a by the shipped example, then Splink on the
/// same files, `rounds` times in turn; one table row each.
fn febrl4(bin: &str, root: &str, dir: &std::path::Path, rounds: usize, splink: bool) {
    let data = PathBuf::from(root).join("sample_data/febrl4");
    let example = PathBuf::from(root).join("pipelines/examples/febrl4");
    println!("| round | tool | seconds | peak MiB | links | precision | recall | F1 |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let f = |v: &serde_json::Value| format!("{:.4}", v.as_f64().unwrap_or(0.0));
    for round in 1..=rounds {
        let lake = dir.join("febrl4-lake");
        let _ = std::fs::remove_dir_all(&lake);
        let mut seconds = 0.0;
        let mut peak: f64 = 0.0;
        for part in ["a", "b"] {
            let source = format!("febrl4{part}");
            let schema = example.join(format!("schemas/{source}.toml"));
            let file = data.join(format!("dataset4{part}.csv"));
            let (s, p, _) = safetynet(
                bin,
                root,
                &[
                    &"ingest",
                    &"--source",
                    &source,
                    &"--lake",
                    &lake,
                    &"--schema",
                    &schema,
                    &file,
                ],
            );
            seconds += s;
            peak = peak.max(p);
        }
        let settings = example.join("linkage.toml");
        let (s, p) = link_trained(bin, root, &lake, &settings);
        let e = eval_json(bin, root, &lake, "febrl4b", &data.join("truth_febrl4b.csv"));
        println!(
            "| {round} | safetynet ingest + link --train (link {s:.2} s) | {:.2} | {:.0} | {} | {} | {} | {} |",
            seconds + s,
            peak.max(p),
            e["linker"]["links"],
            f(&e["precision"]),
            f(&e["recall"]),
            f(&e["f1"])
        );
        if splink {
            let (seconds, peak, s) = run_splink(root, "splink_febrl4.py", &[&data]);
            println!(
                "| {round} | Splink 5 + DuckDB (own timer {}) | {seconds:.2} | {peak:.0} | {} | {} | {} | {} |",
                s["seconds"],
                s["links"],
                f(&s["precision"]),
                f(&s["recall"]),
                f(&s["f1"])
            );
        }
    }
}

/// Run a Splink script of benches/ on a data directory: (seconds, peak
/// MiB, the JSON object it prints last).
fn run_splink(
    root: &str,
    script: &str,
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> (f64, f64, serde_json::Value) {
    let (seconds, peak, out) = measure(
        Command::new("python3")
            .arg(format!("{root}/benches/{script}"))
            .args(args.iter().map(|a| a.as_ref()))
            .stderr(Stdio::null()),
    );
    let printed = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap_or_default();
    (seconds, peak, printed)
}

/// Run the binary from the repository root, quietly: (seconds, peak MiB,
/// stdout).
fn safetynet(bin: &str, root: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> (f64, f64, String) {
    measure(
        Command::new(bin)
            .args(args.iter().map(|a| a.as_ref()))
            .current_dir(root)
            .env("SAFETYNET_LOG", "warn"),
    )
}

/// `safetynet link --train` of every source with these settings: its
/// seconds and peak MiB.
fn link_trained(
    bin: &str,
    root: &str,
    lake: &std::path::Path,
    settings: &std::path::Path,
) -> (f64, f64) {
    let (seconds, peak, _) = safetynet(
        bin,
        root,
        &[
            &"link",
            &"--train",
            &"--lake",
            &lake,
            &"--settings",
            &settings,
        ],
    );
    (seconds, peak)
}

/// `safetynet eval --format json` of one source against its truth file.
fn eval_json(
    bin: &str,
    root: &str,
    lake: &std::path::Path,
    source: &str,
    truth: &std::path::Path,
) -> serde_json::Value {
    let (_, _, out) = safetynet(
        bin,
        root,
        &[
            &"eval",
            &"--source",
            &source,
            &"--format",
            &"json",
            &"--lake",
            &lake,
            &"--truth",
            &truth,
        ],
    );
    serde_json::from_str(&out).expect("eval prints JSON")
}

/// Every department in each world at each size: F1 beside the bounds of
/// leaving the name-only records unlinked, of linking them all, and of
/// linking those whose name and county belong to one roster person, and
/// the best any linker deciding them by name, place and gender can do; the
/// review share, the run's precision estimate beside the measured
/// precision, and Splink's best F1 on the same department's files. The
/// last column is the bound on the estimate's bar: how likely the
/// measured precision is to land within ±0.005 of an estimate that is
/// exactly right, when the wrong links it expects are counted on a few
/// hundred links ([`chance_within`]).
fn sweep(
    bin: &str,
    root: &str,
    dir: &std::path::Path,
    worlds: &[String],
    sizes: &[usize],
    settings: &std::path::Path,
    splink: bool,
) {
    println!(
        "| world | households | source | records | precision | recall | F1 | F1 bound, name-only unlinked | F1 bound, name-only linked | F1 bound, name-only linked where unique | F1 bound, best by name, place and gender | review % | estimated precision | Splink F1 | chance a right estimate is within ±0.005 |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut rows, mut within, mut expected_within) = (0, 0, 0.0);
    let f = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.4}"));
    for world in worlds {
        for &households in sizes {
            let data = dir.join(format!(
                "world-{}-h{households}",
                world.replace([',', '='], "_")
            ));
            let lake = data.join("lake");
            let _ = std::fs::remove_dir_all(&lake);
            if !data.join("truth_health.csv").exists() {
                let households = households.to_string();
                safetynet(
                    bin,
                    root,
                    &[
                        &"generate",
                        &"--seed",
                        &"1",
                        &"--households",
                        &households,
                        &"--world",
                        world,
                        &"--out",
                        &data,
                    ],
                );
            }
            for source in std::iter::once("roster").chain(DEPARTMENTS) {
                let file = data.join(format!("{source}.csv"));
                safetynet(
                    bin,
                    root,
                    &[&"ingest", &"--source", &source, &"--lake", &lake, &file],
                );
            }
            let (seconds, peak) = link_trained(bin, root, &lake, settings);
            eprintln!(
                "{world} at {households} households: link --train {seconds:.1} s, peak {peak:.0} MiB"
            );
            for source in DEPARTMENTS {
                // Splink takes minutes per department at 100,000.
                let splink_f1 = if splink && households <= 2_000 {
                    let (_, _, s) = run_splink(root, "splink_departments.py", &[&data, &source]);
                    f(&s["best"]["f1"])
                } else {
                    "-".to_string()
                };
                let e = eval_json(
                    bin,
                    root,
                    &lake,
                    source,
                    &data.join(format!("truth_{source}.csv")),
                );
                // The records known only by name and region all left
                // unlinked, or all linked (eval computes both).
                let link_none = f(&e["link_none_bound"]["f1"]);
                let link_all = f(&e["link_all_bound"]["f1"]);
                let link_unique = f(&e["link_unique_bound"]["f1"]);
                let link_best = f(&e["link_best_bound"]["f1"]);
                let records = e["records"].as_f64().unwrap_or(0.0);
                let review = e["review"].as_f64().unwrap_or(0.0) / records.max(1.0) * 100.0;
                let links = e["linker"]["links"].as_f64().unwrap_or(0.0);
                let chance = chance_within(
                    links,
                    e["model_estimate"]["expected_wrong_links"]
                        .as_f64()
                        .unwrap_or(0.0),
                    ESTIMATE_BAR,
                );
                let (measured, estimated) = (
                    e["precision"].as_f64(),
                    e["model_estimate"]["expected_precision"].as_f64(),
                );
                rows += 1;
                expected_within += chance;
                if let (Some(m), Some(est)) = (measured, estimated)
                    && (m - est).abs() <= ESTIMATE_BAR
                {
                    within += 1;
                }
                println!(
                    "| {world} | {households} | {source} | {records} | {} | {} | {} | {link_none} | {link_all} | {link_unique} | {link_best} | {review:.2} | {} | {} | {chance:.3} |",
                    f(&e["precision"]),
                    f(&e["recall"]),
                    f(&e["f1"]),
                    f(&e["model_estimate"]["expected_precision"]),
                    splink_f1,
                );
            }
        }
    }
    println!(
        "\nestimated precision within ±{ESTIMATE_BAR} of measured: {within} of {rows} rows; \
         an estimate exactly right would be expected within in {expected_within:.1} of {rows}"
    );
}

/// The bar on the precision estimate: within this of the measured figure.
const ESTIMATE_BAR: f64 = 0.005;

/// How likely the measured precision of `links` links is to fall within
/// `margin` of an estimate that expects `expected_wrong` of them wrong and
/// is exactly right. The wrong links are counted as a Poisson variable:
/// each link is wrong with a small chance of its own, so their number
/// varies about its mean by about its square root. With 250 links and
/// half a wrong one expected, the margin is 1.25 links, and two wrong
/// links (one time in ten) miss the bar with no fault in the estimate.
fn chance_within(links: f64, expected_wrong: f64, margin: f64) -> f64 {
    if links <= 0.0 || expected_wrong <= 0.0 {
        return 1.0;
    }
    let (low, high) = (
        (expected_wrong - margin * links).ceil().max(0.0) as u64,
        (expected_wrong + margin * links).floor() as u64,
    );
    let mut term = (-expected_wrong).exp();
    let mut sum = 0.0;
    for k in 0..=high {
        if k >= low {
            sum += term;
        }
        term *= expected_wrong / (k + 1) as f64;
    }
    sum.min(1.0)
}
