//! Pulls from a real PostgreSQL server, started for the test on a
//! localhost port from Debian's `postgresql` package (`.ci/run` installs
//! it): incremental by watermark, a re-pull that is a no-op, a crash and a
//! re-run with exact counts, and clear errors that write nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A throw-away PostgreSQL cluster; stopped when dropped.
struct PgServer {
    _dir: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    password: String,
}

fn pg_bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin").join(name))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from(name))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root: run its tools as `postgres` then.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

impl PgServer {
    fn start() -> PgServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let data = dir.path().join("data");
        let password = "pull-test-secret".to_string();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, &password).unwrap();
        std::fs::set_permissions(&pwfile, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let out = as_server_user(&pg_bin("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
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
        let out = as_server_user(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                dir.path().display()
            ))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
        PgServer {
            _dir: dir,
            data,
            port,
            password,
        }
    }

    fn url(&self) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// Run SQL (psql meta-commands too) as the superuser.
    fn psql(&self, sql: &str) {
        let out = Command::new("psql")
            .arg(self.url())
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_server_user(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn pull(lake: &str, url: &str, extra: &[&str]) -> std::process::Output {
    let mut cmd = bin();
    cmd.env("HEALTH_PG_URL", url)
        .args([
            "ingest", "--lake", lake, "--source", "health", "--pull", "postgres",
        ])
        .args(["--url-env", "HEALTH_PG_URL"])
        .args(extra);
    run(&mut cmd)
}

fn pull_ok(lake: &str, url: &str, extra: &[&str]) -> String {
    let out = pull(lake, url, extra);
    assert!(
        out.status.success(),
        "pull failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(lake: &str, url: &str, extra: &[&str], says: &[&str]) {
    let out = pull(lake, url, extra);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    for s in says {
        assert!(text.contains(s), "expected {s:?} in: {text}");
    }
    assert!(
        !text.contains("pull-test-secret"),
        "the password is never printed: {text}"
    );
}

#[test]
fn postgres_pulls_are_incremental_idempotent_crash_safe_and_explained() {
    let server = PgServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 120, &["--only", "health"]);
    let csv = data.join("health.csv");
    let rows = csv_rows(&csv);
    let header = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim_start_matches('\u{feff}')
        .to_string();
    let columns: Vec<String> = header.split(',').map(|h| format!("\"{h}\"")).collect();
    server.psql(&format!(
        "CREATE SCHEMA exchange; CREATE TABLE exchange.settlements (seq bigserial, {})",
        columns
            .iter()
            .map(|c| format!("{c} text"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    server.psql(&format!(
        "\\copy exchange.settlements({}) FROM '{}' WITH (FORMAT csv, HEADER true)",
        columns.join(","),
        csv.display()
    ));
    let lake = lake_dir(&tmp);
    let url = server.url();
    let window = (rows / 3 + 1).to_string();
    let incremental = [
        "--table",
        "exchange.settlements",
        "--watermark",
        "seq",
        "--batch-rows",
        window.as_str(),
    ];

    // Errors first: each names what is wrong, and nothing is written.
    let mut unset = bin();
    let out = run(unset
        .env_remove("HEALTH_PG_URL")
        .args([
            "ingest", "--lake", &lake, "--source", "health", "--pull", "postgres",
        ])
        .args([
            "--url-env",
            "HEALTH_PG_URL",
            "--table",
            "exchange.settlements",
        ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HEALTH_PG_URL is not set"));
    refused(
        &lake,
        &url.replace("pull-test-secret", "wrong"),
        &incremental,
        &["source health", "cannot connect to PostgreSQL", "password"],
    );
    refused(
        &lake,
        &format!("postgresql://postgres:x@127.0.0.1:{}/postgres", free_port()),
        &incremental,
        &["source health", "cannot connect to PostgreSQL"],
    );
    refused(
        &lake,
        &url,
        &["--table", "exchange.no_such_table"],
        &["source health", "exchange.no_such_table", "does not exist"],
    );
    server.psql("CREATE TABLE exchange.typed (\"结算流水号\" text, \"结算日期\" boolean, \"个人自付\" numeric)");
    refused(
        &lake,
        &url,
        &["--table", "exchange.typed"],
        &["source health", "结算日期", "bool", "expected date"],
    );
    refused(
        &lake,
        &url,
        &[
            "--table",
            "exchange.settlements",
            "--watermark",
            "no_column",
        ],
        &["watermark column no_column"],
    );
    assert!(
        !Path::new(&lake).join("batches").exists(),
        "a refused pull writes nothing"
    );

    // The first pull takes every row, a window at a time.
    let out = pull_ok(&lake, &url, &incremental);
    assert!(out.contains("postgres exchange.settlements"), "{out}");
    assert_eq!(
        count(&lake, "SELECT count(*) FROM staged_health") as usize,
        rows
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM batches"), 3, "{out}");
    assert_eq!(
        sql(&lake, "SELECT max(CAST(watermark_to AS BIGINT)) FROM pulls")[0][0],
        rows.to_string()
    );
    assert_eq!(
        count(&lake, "SELECT sum(rows_read) FROM batches"),
        count(
            &lake,
            "SELECT sum(rows_staged) + sum(rows_quarantined) FROM batches"
        )
    );

    // Again, with nothing new: a reported no-op.
    let out = pull_ok(&lake, &url, &incremental);
    assert!(out.contains("no new rows above watermark"), "{out}");
    assert_eq!(count(&lake, "SELECT count(*) FROM batches"), 3);

    // Ten new rows: only they are pulled.
    server.psql(
        "INSERT INTO exchange.settlements (\"结算流水号\", \"姓名\", \"证件号码\", \"结算日期\", \"个人自付\", \"参保地区划\")
         SELECT 'NEW' || \"结算流水号\", \"姓名\", \"证件号码\", \"结算日期\", \"个人自付\", \"参保地区划\"
         FROM exchange.settlements ORDER BY seq LIMIT 10",
    );
    pull_ok(&lake, &url, &incremental);
    assert_eq!(
        count(&lake, "SELECT count(*) FROM staged_health") as usize,
        rows + 10
    );
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM staged_health WHERE settlement_id LIKE 'NEW%'"
        ),
        10
    );

    // Killed mid-batch, and killed after a batch but before its window is
    // noted: each re-run ends with every row exactly once.
    for (n, point) in ["ingest:before-commit", "pull:after-batch"]
        .iter()
        .enumerate()
    {
        server.psql(&format!(
            "INSERT INTO exchange.settlements (\"结算流水号\", \"结算日期\", \"个人自付\")
             SELECT 'C{n}-' || g, '2026-06-02', '11.00' FROM generate_series(1, 5) g"
        ));
        let mut crash = bin();
        let crashed = run(crash
            .env("HEALTH_PG_URL", &url)
            .env("SAFETYNET_FAILPOINT", point)
            .args([
                "ingest", "--lake", &lake, "--source", "health", "--pull", "postgres",
            ])
            .args(["--url-env", "HEALTH_PG_URL"])
            .args(incremental));
        assert!(!crashed.status.success(), "{point} reached");
        pull_ok(&lake, &url, &incremental);
        assert_eq!(
            count(
                &lake,
                &format!("SELECT count(*) FROM staged_health WHERE settlement_id LIKE 'C{n}-%'")
            ),
            5,
            "{point}"
        );
        assert_eq!(
            count(&lake, "SELECT count(*) FROM staged_health") as usize,
            rows + 10 + 5 * (n + 1),
            "{point}"
        );
    }
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM (SELECT settlement_id FROM staged_health GROUP BY settlement_id HAVING count(*) > 1)"
        ),
        0
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
