//! Ingest benchmark: a generated health extract of N rows, CSV → lake,
//! beside DuckDB's CSV → zstd Parquet on the same file.
//!
//!   cargo bench --bench ingest -- --rows 1000000 [--rows 10000000] [--dir /tmp/bench]
//!
//! Each tool runs as its own process; peak memory is that process's maximum
//! resident set (getrusage). DuckDB is the `duckdb` binary on PATH
//! (`pip install duckdb-cli`); it is skipped with a note when absent.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

struct Measure {
    seconds: f64,
    peak_mib: f64,
}

/// Run a command as a child and measure wall time and its peak RSS.
fn measure(cmd: &mut Command) -> Option<Measure> {
    let start = Instant::now();
    let mut child = cmd.spawn().ok()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers to locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    std::mem::forget(child.stdin.take());
    if waited != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        eprintln!("command failed: {cmd:?}");
        return None;
    }
    Some(Measure {
        seconds,
        peak_mib: usage.ru_maxrss as f64 / 1024.0,
    })
}

fn file_mib(path: &Path) -> f64 {
    std::fs::metadata(path)
        .map(|m| m.len() as f64 / (1024.0 * 1024.0))
        .unwrap_or(0.0)
}

fn main() {
    let common::Arguments {
        rows: mut rows_list,
        dir,
    } = common::arguments("safetynet-bench");
    if rows_list.is_empty() {
        rows_list.push(1_000_000);
    }
    let bin = env!("CARGO_BIN_EXE_safetynet");
    let has_duckdb = Command::new("duckdb")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());

    println!("| rows | file MiB | tool | seconds | rows/s | peak MiB |");
    println!("|---:|---:|---|---:|---:|---:|");
    for rows in rows_list {
        let data = dir.join(format!("rows{rows}"));
        let csv = common::health_extract(bin, &data, rows);
        let mib = file_mib(&csv);
        let report = |tool: &str, m: Option<Measure>| match m {
            Some(m) => println!(
                "| {rows} | {mib:.0} | {tool} | {:.2} | {:.0} | {:.0} |",
                m.seconds,
                rows as f64 / m.seconds,
                m.peak_mib
            ),
            None => println!("| {rows} | {mib:.0} | {tool} | failed | | |"),
        };

        let lake = data.join("lake");
        let _ = std::fs::remove_dir_all(&lake);
        let m = measure(
            Command::new(bin)
                .args(["ingest", "--lake"])
                .arg(&lake)
                .args(["--source", "health"])
                .arg(&csv)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("SAFETYNET_LOG", "warn")
                .stdout(std::process::Stdio::null()),
        );
        report("safetynet ingest (normalise, validate, Delta)", m);

        if has_duckdb {
            let out = data.join("duckdb.parquet");
            let sql = format!(
                "COPY (SELECT * FROM read_csv('{}')) TO '{}' (FORMAT parquet, COMPRESSION zstd)",
                csv.display(),
                out.display()
            );
            report(
                "duckdb read_csv → zstd parquet",
                measure(Command::new("duckdb").args([":memory:", "-c", &sql])),
            );
        } else {
            println!("| {rows} | {mib:.0} | duckdb | not installed (pip install duckdb-cli) | | |");
        }
    }
}
