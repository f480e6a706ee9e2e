//! Pull benchmark: a generated health extract of N rows in a table of a
//! throw-away PostgreSQL server and of a throw-away MariaDB server on
//! localhost, pulled into the lake by `safetynet ingest --pull postgres`
//! and `--pull mysql`, beside the fastest plain export of each: the
//! server's own client writing CSV (`psql COPY … TO STDOUT`, `mariadb
//! --batch`) piped into DuckDB, which writes zstd Parquet. The same file
//! ingested from disk is shown too, so the cost of the pull itself stands
//! out.
//!
//!   cargo bench --bench pull -- --rows 1000000 [--dir /tmp/bench-pull]
//!
//! Needs Debian's `postgresql` package (initdb, pg_ctl, psql), its
//! `mariadb-server` package (mariadb-install-db, mariadbd, mariadb) and DuckDB
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

    // `safetynet ingest --pull kind` of the whole table into a fresh lake.
    let pull = |lake: &Path, kind: &str, url: &str| {
        let _ = std::fs::remove_dir_all(lake);
        let mut command = Command::new(bin);
        command
            .env("EXCHANGE_URL", url)
            .env("SAFETYNET_LOG", "error")
            .args(["ingest", "--lake"])
            .arg(lake)
            .args(["--source", "health", "--pull", kind])
            .args([
                "--url-env",
                "EXCHANGE_URL",
                "--table",
                "exchange.settlements",
            ])
            .args(["--batch-rows", "1000000"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        command
    };
    println!("| rows | tool | seconds | rows/s | peak MiB |");
    println!("|---:|---|---:|---:|---:|");
    let report = |tool: &str, (seconds, peak, _): (f64, f64, String)| {
        println!(
            "| {rows} | {tool} | {seconds:.2} | {:.0} | {peak:.0} |",
            rows as f64 / seconds
        )
    };

    report(
        "safetynet ingest --pull postgres (normalise, validate, Delta)",
        measure(&mut pull(
            &data.join("lake-pull"),
            "postgres",
            &server.url(),
        )),
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
    drop(server);

    let server = MariaDb::start(
        &std::env::temp_dir().join(format!("safetynet-bench-maria-{}", std::process::id())),
    );
    let loaded = std::time::Instant::now();
    server.load(&csv);
    eprintln!(
        "loaded {rows} rows into MariaDB exchange.settlements in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );
    report(
        "safetynet ingest --pull mysql (normalise, validate, Delta)",
        measure(&mut pull(
            &data.join("lake-pull-mysql"),
            "mysql",
            &server.url(),
        )),
    );
    if has_duckdb {
        let out = data.join("duckdb.parquet");
        // `--batch` writes tab-separated text with `\N` for null; `--quick`
        // streams rows instead of holding the result in the client.
        let pipe = format!(
            "mariadb --no-defaults --socket={} -u root --batch --quick \
             -e 'SELECT * FROM exchange.settlements' \
             | duckdb :memory: -c \"COPY (SELECT * FROM read_csv('/dev/stdin', delim='\\t', \
             header=true, nullstr='\\N', quote='')) TO '{}' (FORMAT parquet, COMPRESSION zstd)\"",
            server.socket().display(),
            out.display()
        );
        report(
            "mariadb --batch | duckdb → zstd parquet",
            measure(Command::new("sh").args(["-c", &pipe])),
        );
    }
}

/// A throw-away MariaDB server under `dir`, on a localhost port, with a
/// `puller` account for the pull; killed when dropped.
struct MariaDb {
    dir: PathBuf,
    child: std::process::Child,
    port: u16,
}

impl MariaDb {
    fn start(dir: &Path) -> MariaDb {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let data = dir.join("data");
        let root = unsafe { libc::geteuid() } == 0;
        run_ok(
            Command::new("mariadb-install-db")
                .args(["--no-defaults", "--auth-root-authentication-method=normal"])
                .arg(format!("--datadir={}", data.display()))
                .args(root.then_some("--user=root")),
            "mariadb-install-db (apt-get install mariadb-server)",
        );
        let port = free_port();
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.join("mysql.sock").display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            // The load reads the extract with LOAD DATA LOCAL; a bench has
            // no need of durability.
            .args(["--local-infile=1", "--innodb-flush-log-at-trx-commit=0"])
            .arg("--innodb-buffer-pool-size=1G")
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--log-error={}", dir.join("log").display()))
            .args(root.then_some("--user=root"))
            .spawn()
            .expect("mariadbd starts (apt-get install mariadb-server)");
        let server = MariaDb {
            dir: dir.to_path_buf(),
            child,
            port,
        };
        for _ in 0..150 {
            if server
                .client()
                .args(["-e", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                server.sql(
                    "CREATE DATABASE exchange; CREATE USER 'puller'@'%' IDENTIFIED BY 'bench';
                     GRANT ALL ON exchange.* TO 'puller'@'%';",
                );
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!(
            "mariadbd did not start: {}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("mysql.sock")
    }

    fn url(&self) -> String {
        format!("mysql://puller:bench@127.0.0.1:{}/exchange", self.port)
    }

    /// The server's client, as root over the socket.
    fn client(&self) -> Command {
        let mut cmd = Command::new("mariadb");
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "--local-infile=1"]);
        cmd
    }

    fn sql(&self, sql: &str) {
        run_ok(self.client().args(["-e", sql]), sql);
    }

    /// `exchange.settlements`: the columns of the extract `csv`, as text,
    /// an empty cell read as NULL (as the PostgreSQL table has it).
    fn load(&self, csv: &Path) {
        let columns = header_of(csv);
        let variables: Vec<String> = (0..columns.len()).map(|i| format!("@v{i}")).collect();
        let assignments: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("`{c}` = NULLIF(@v{i}, '')"))
            .collect();
        self.sql(&format!(
            "CREATE TABLE exchange.settlements ({}) CHARACTER SET utf8mb4;
             LOAD DATA LOCAL INFILE '{}' INTO TABLE exchange.settlements CHARACTER SET utf8mb4
             FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n'
             IGNORE 1 LINES ({}) SET {}",
            columns
                .iter()
                .map(|c| format!("`{c}` TEXT"))
                .collect::<Vec<_>>()
                .join(", "),
            csv.display(),
            variables.join(","),
            assignments.join(", ")
        ));
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The column names on the first line of `csv`. The first line only: a
/// bench that held the whole file would lend its size to every child's
/// peak (a fork starts at the parent's resident set).
fn header_of(csv: &Path) -> Vec<String> {
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(std::fs::File::open(csv).unwrap()),
        &mut first,
    )
    .unwrap();
    first
        .trim_end()
        .trim_start_matches('\u{feff}')
        .split(',')
        .map(str::to_string)
        .collect()
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
        run_ok(
            server_tool("initdb").arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ]),
            "initdb (apt-get install postgresql)",
        );
        let port = free_port();
        run_ok(
            server_tool("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                    dir.display()
                ))
                .args(["-w", "start"]),
            "pg_ctl start",
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
        let columns: Vec<String> = header_of(csv).iter().map(|h| format!("\"{h}\"")).collect();
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
            run_ok(
                Command::new("psql").arg(self.url()).args([
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-q",
                    "-c",
                    &sql,
                ]),
                &sql,
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

/// A free TCP port on localhost for a server to listen on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run `command` to the end; panic with its error output if it fails.
fn run_ok(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
