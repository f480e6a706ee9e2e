//! Pull benchmark: a generated health extract of N rows in a table of a
//! throw-away PostgreSQL server on localhost, pulled into the lake by
//! `safetynet ingest --pull postgres`, beside the fastest plain export:
//! PostgreSQL's own `COPY … TO STDOUT` piped into DuckDB, which writes
//! zstd Parquet. The same file ingested from disk is shown too, so the
//! cost of the pull itself stands out.
//!
//!   cargo bench --bench pull -- --rows 1000000 [--dir /tmp/bench-pull]
//!
//! Needs Debian's `postgresql` package (initdb, pg_ctl, psql) and DuckDB
//! (`pip install duckdb-cli`; its row is skipped when absent). Peak memory
//! is each measured process's own (for the DuckDB row, the shell's
//! largest child).

mod common;

use common::measure;

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let arguments = common::arguments("safetynet-bench-pull");
    let rows = arguments.rows.last().copied().unwrap_or(1_000_000);
    let bin = env!("CARGO_BIN_EXE_safetynet");
    let data = arguments.dir.join(format!("rows{rows}"));
    let csv = common::health_extract(bin, &data, rows);
    // Beside the data, not in it: the server runs as `postgres`, which may
    // not enter a directory this user made private.
    let server = Postgres::start(
        &std::env::temp_dir().join(format!("safetynet-bench-pg-{}", std::process::id())),
    );
    let loaded = std::time::Instant::now();
    server.load(&csv);
    eprintln!(
        "loaded {rows} rows into exchange.settlements in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );

    println!("| rows | tool | seconds | rows/s | peak MiB |");
    println!("|---:|---|---:|---:|---:|");
    let report = |tool: &str, (seconds, peak, _): (f64, f64, String)| {
        println!(
            "| {rows} | {tool} | {seconds:.2} | {:.0} | {peak:.0} |",
            rows as f64 / seconds
        )
    };

    let lake = data.join("lake-pull");
    let _ = std::fs::remove_dir_all(&lake);
    report(
        "safetynet ingest --pull postgres (normalise, validate, Delta)",
        measure(
            Command::new(bin)
                .env("HEALTH_PG_URL", server.url())
                .env("SAFETYNET_LOG", "error")
                .args(["ingest", "--lake"])
                .arg(&lake)
                .args(["--source", "health", "--pull", "postgres"])
                .args([
                    "--url-env",
                    "HEALTH_PG_URL",
                    "--table",
                    "exchange.settlements",
                ])
                .args(["--batch-rows", "1000000"])
                .current_dir(env!("CARGO_MANIFEST_DIR")),
        ),
    );

    let lake = data.join("lake-file");
    let _ = std::fs::remove_dir_all(&lake);
    report(
        "safetynet ingest of the same rows as a CSV file",
        measure(
            Command::new(bin)
                .env("SAFETYNET_LOG", "error")
                .args(["ingest", "--lake"])
                .arg(&lake)
                .args(["--source", "health"])
                .arg(&csv)
                .current_dir(env!("CARGO_MANIFEST_DIR")),
        ),
    );

    let has_duckdb = Command::new("duckdb")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_duckdb {
        // Plain, and in the total order safetynet's pull asks for (so that
        // an unchanged table gives the same batch, a reported no-op).
        for (tool, select) in [
            (
                "psql COPY TO STDOUT | duckdb → zstd parquet",
                "exchange.settlements",
            ),
            (
                "psql COPY (… ORDER BY the row's text) | duckdb → zstd parquet",
                "(SELECT * FROM exchange.settlements AS src ORDER BY CAST(src AS TEXT))",
            ),
        ] {
            let out = data.join("duckdb.parquet");
            let pipe = format!(
                "psql '{}' -c \"\\copy {select} TO STDOUT (FORMAT csv, HEADER)\" \
                 | duckdb :memory: -c \"COPY (SELECT * FROM read_csv('/dev/stdin')) TO '{}' \
                 (FORMAT parquet, COMPRESSION zstd)\"",
                server.url(),
                out.display()
            );
            report(tool, measure(Command::new("sh").args(["-c", &pipe])));
        }
    } else {
        println!("| {rows} | duckdb | not installed (pip install duckdb-cli) | | |");
    }
}

/// A throw-away PostgreSQL cluster under `dir`, trusting local
/// connections; stopped when dropped.
struct Postgres {
    data: PathBuf,
    port: u16,
}

impl Postgres {
    fn start(dir: &Path) -> Postgres {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let data = dir.join("data");
        let out = server_tool("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ])
            .output()
            .expect("initdb runs (apt-get install postgresql)");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = server_tool("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.display()
            ))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Postgres { data, port }
    }

    fn url(&self) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// `exchange.settlements`: the columns of the extract `csv`, as text.
    fn load(&self, csv: &Path) {
        // The first line only: a bench that held the whole file would
        // lend its size to every child's peak (a fork starts at the
        // parent's resident set).
        let mut first = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(std::fs::File::open(csv).unwrap()),
            &mut first,
        )
        .unwrap();
        let header = first.trim_end().trim_start_matches('\u{feff}');
        let columns: Vec<String> = header.split(',').map(|h| format!("\"{h}\"")).collect();
        let typed: Vec<String> = columns.iter().map(|c| format!("{c} text")).collect();
        for sql in [
            format!(
                "CREATE SCHEMA exchange; CREATE TABLE exchange.settlements ({})",
                typed.join(", ")
            ),
            format!(
                "\\copy exchange.settlements({}) FROM '{}' WITH (FORMAT csv, HEADER true)",
                columns.join(","),
                csv.display()
            ),
        ] {
            let out = Command::new("psql")
                .arg(self.url())
                .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", &sql])
                .output()
                .expect("psql runs");
            assert!(
                out.status.success(),
                "{sql}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = server_tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
        if let Some(dir) = self.data.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A PostgreSQL server program (the newest installed), run as `postgres`
/// when this is root, as the server refuses to run as root.
fn server_tool(name: &str) -> Command {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin").join(name))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    let program = found.pop().unwrap_or_else(|| PathBuf::from(name));
    if unsafe { libc::geteuid() } == 0 {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}
