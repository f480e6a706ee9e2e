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

/// A certificate authority and server certificates it signed, made with
/// openssl: `server` names only `exchange.example`, `web` only 127.0.0.1.
struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    fn make() -> Certificates {
        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .current_dir(dir.path())
                .args(args)
                .output()
                .expect("openssl is installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let self_signed = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ];
        for ca in ["ca", "other_ca"] {
            let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
            let subject = format!("/CN=test {ca}");
            openssl(
                &[
                    &self_signed[..],
                    &["-subj", &subject, "-keyout", &key, "-out", &pem],
                ]
                .concat(),
            );
        }
        // The database servers' names only exchange.example; the web
        // server's, reached as https://127.0.0.1, names that address.
        for (server, names) in [("server", "DNS:exchange.example"), ("web", "IP:127.0.0.1")] {
            let (key, csr, pem, ext) = (
                format!("{server}.key"),
                format!("{server}.csr"),
                format!("{server}.pem"),
                format!("{server}.ext"),
            );
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=exchange.example",
                "-keyout",
                &key,
                "-out",
                &csr,
            ]);
            std::fs::write(
                dir.path().join(&ext),
                format!("subjectAltName={names}\nextendedKeyUsage=serverAuth\n"),
            )
            .unwrap();
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext,
            ]);
        }
        Certificates { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

impl PgServer {
    fn start() -> PgServer {
        PgServer::start_with(None)
    }

    /// With `tls`, the server speaks TLS with `tls`'s server certificate
    /// and accepts only encrypted connections over TCP.
    fn start_with(tls: Option<&Certificates>) -> PgServer {
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
        let mut options = String::new();
        if let Some(tls) = tls {
            for file in ["server.pem", "server.key"] {
                let copy = dir.path().join(file);
                std::fs::copy(tls.path(file), &copy).unwrap();
                std::fs::set_permissions(
                    &copy,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
                if is_root() {
                    let owned = Command::new("chown").arg("postgres").arg(&copy).status();
                    assert!(owned.unwrap().success());
                }
            }
            options = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                dir.path().join("server.pem").display(),
                dir.path().join("server.key").display()
            );
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .unwrap();
        }
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
                "-p {port} -k {} -c listen_addresses=127.0.0.1{options}",
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

    /// `exchange.settlements`: a `seq` column, then the columns of the
    /// extract `csv`, all text, holding its rows. Returns how many.
    fn load_settlements(&self, csv: &Path) -> usize {
        let header = std::fs::read_to_string(csv)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim_start_matches('\u{feff}')
            .to_string();
        let columns: Vec<String> = header.split(',').map(|h| format!("\"{h}\"")).collect();
        self.psql(&format!(
            "CREATE SCHEMA exchange; CREATE TABLE exchange.settlements (seq bigserial, {})",
            columns
                .iter()
                .map(|c| format!("{c} text"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.psql(&format!(
            "\\copy exchange.settlements({}) FROM '{}' WITH (FORMAT csv, HEADER true)",
            columns.join(","),
            csv.display()
        ));
        csv_rows(csv)
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

/// `ingest --pull KIND` of the health source, the URL in HEALTH_DB_URL.
fn database_pull(kind: &str, lake: &str, url: &str, extra: &[&str]) -> std::process::Output {
    let mut cmd = bin();
    cmd.env("HEALTH_DB_URL", url)
        .args([
            "ingest", "--lake", lake, "--source", "health", "--pull", kind,
        ])
        .args(["--url-env", "HEALTH_DB_URL"])
        .args(extra);
    run(&mut cmd)
}

fn pull(lake: &str, url: &str, extra: &[&str]) -> std::process::Output {
    database_pull("postgres", lake, url, extra)
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
    let rows = server.load_settlements(&data.join("health.csv"));
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
        .env_remove("HEALTH_DB_URL")
        .args([
            "ingest", "--lake", &lake, "--source", "health", "--pull", "postgres",
        ])
        .args([
            "--url-env",
            "HEALTH_DB_URL",
            "--table",
            "exchange.settlements",
        ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HEALTH_DB_URL is not set"));
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
        &["source health", "结算日期", "bool", "expected a date"],
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
            .env("HEALTH_DB_URL", &url)
            .env("SAFETYNET_FAILPOINT", point)
            .args([
                "ingest", "--lake", &lake, "--source", "health", "--pull", "postgres",
            ])
            .args(["--url-env", "HEALTH_DB_URL"])
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

    // A text watermark whose values hold a quote, a backslash and SQL:
    // bound as values, they select their windows and nothing else. A
    // regression guard: the earlier quoting escaped these correctly too,
    // and this keeps any later change to how watermarks reach the server
    // from breaking them.
    server.psql(
        "CREATE TABLE exchange.quoted AS SELECT * FROM exchange.settlements ORDER BY seq LIMIT 20;
         ALTER TABLE exchange.quoted ADD COLUMN mark text;
         UPDATE exchange.quoted SET mark = 'Q' || lpad(seq::text, 4, '0') || chr(39) || chr(92) || ' OR 1=1 --'",
    );
    let apart = tmp.path().join("quoted-lake").display().to_string();
    let quoted = [
        "--table",
        "exchange.quoted",
        "--watermark",
        "mark",
        "--batch-rows",
        "7",
    ];
    pull_ok(&apart, &url, &quoted);
    assert_eq!(count(&apart, "SELECT count(*) FROM batches"), 3);
    assert_eq!(
        count(
            &apart,
            "SELECT sum(rows_read) FROM batches b JOIN pulls p ON p.batch_id = b.batch_id WHERE p.origin = 'exchange.quoted'"
        ),
        20
    );
    let out = pull_ok(&apart, &url, &quoted);
    assert!(out.contains("no new rows above watermark"), "{out}");

    // The same source in a pipeline file: the roster from files, health
    // pulled, then linked and warned on in one run.
    let repo = repo();
    let pipeline = tmp.path().join("pull.toml");
    let piped = tmp.path().join("piped-lake");
    std::fs::write(
        &pipeline,
        format!(
            r#"name = "pull"
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
[source.pull]
kind = "postgres"
url_env = "HEALTH_DB_URL"
table = "exchange.settlements"
watermark = "seq"
batch_rows = 1000
"#,
            lake = piped.display(),
            schemas = repo.join("schemas").display(),
            linkage = repo.join("pipelines/linkage.toml").display(),
            rules = repo.join("pipelines/rules").display(),
            assessment = repo.join("pipelines/assessment").display(),
            thresholds = repo.join("pipelines/thresholds.csv").display(),
            groups = repo.join("pipelines/population_groups.csv").display(),
            roster = data.join("roster.csv").display(),
        ),
    )
    .unwrap();
    let piped = piped.display().to_string();
    ok(bin()
        .env("HEALTH_DB_URL", &url)
        .arg("run")
        .arg(&pipeline)
        .args(["--as-of", "2026-11-20"]));
    assert_eq!(
        count(&piped, "SELECT count(*) FROM staged_health"),
        count(&lake, "SELECT count(*) FROM staged_health")
    );
    assert_eq!(
        count(&piped, "SELECT count(*) FROM link_health"),
        count(&piped, "SELECT count(*) FROM staged_health")
    );
    assert_eq!(count(&piped, "SELECT count(*) FROM pulls"), 1);
}

/// A department's server that accepts only encrypted connections, with a
/// certificate issued by its own authority for `exchange.example`: the
/// URL's `sslmode` and `sslrootcert` say how much to check, as for psql.
#[test]
fn postgres_pulls_are_encrypted_and_check_the_server_as_sslmode_says() {
    let certificates = Certificates::make();
    let server = PgServer::start_with(Some(&certificates));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 20, &["--only", "health"]);
    let rows = server.load_settlements(&data.join("health.csv"));
    let lake = lake_dir(&tmp);
    let table = ["--table", "exchange.settlements"];
    let at = |host: &str, params: &str| {
        format!(
            "postgresql://postgres:{}@{host}:{}/postgres?{params}",
            server.password, server.port
        )
    };
    let ca = certificates.path("ca.pem");
    let other_ca = certificates.path("other_ca.pem");

    // The server refuses plaintext; a certificate from another authority,
    // or for another name, is refused by the pull.
    refused(
        &lake,
        &at("127.0.0.1", "sslmode=disable"),
        &table,
        &["cannot connect to PostgreSQL", "no encryption"],
    );
    refused(
        &lake,
        &at(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={other_ca}"),
        ),
        &table,
        &["cannot connect to PostgreSQL", "invalid peer certificate"],
    );
    refused(
        &lake,
        &at(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        &table,
        &["cannot connect to PostgreSQL", "not valid for name"],
    );
    refused(
        &lake,
        &at(
            "127.0.0.1",
            "sslmode=verify-full&sslrootcert=/no/such/ca.pem",
        ),
        &table,
        &["sslrootcert /no/such/ca.pem"],
    );
    assert!(!Path::new(&lake).join("batches").exists());

    // The right authority: verify-ca accepts the server whatever its name,
    // verify-full when the URL names the host the certificate names.
    let out = pull(
        &lake,
        &at("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        &table,
    );
    pulled_securely(&out, &lake, rows);
    let out = pull(
        &lake,
        &at(
            "exchange.example",
            &format!("hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"),
        ),
        &table,
    );
    let text = text_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("already ingested"), "{text}");

    // Encrypted but unchecked (libpq's require, and prefer when the server
    // offers TLS): it works, and the log says the server was not checked.
    for mode in ["require", "prefer"] {
        let out = pull(&lake, &at("127.0.0.1", &format!("sslmode={mode}")), &table);
        assert!(pulled_unchecked(&out).contains("encrypted=true"), "{mode}");
    }
    assert_eq!(
        count(&lake, "SELECT count(*) FROM staged_health") as usize,
        rows,
        "re-pulls of an unchanged table add nothing"
    );
}

/// A pull that succeeded over an encrypted connection to a checked server
/// (no warning about either), with the extract's `rows` staged.
fn pulled_securely(out: &std::process::Output, lake: &str, rows: usize) {
    let text = text_of(out);
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("not checked") && !text.contains("not encrypted"),
        "{text}"
    );
    assert_eq!(
        count(lake, "SELECT count(*) FROM staged_health") as usize,
        rows
    );
}

/// A pull that succeeded over an encrypted connection to a server whose
/// certificate was not checked, which the log says. Returns its output.
fn pulled_unchecked(out: &std::process::Output) -> String {
    let text = text_of(out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("certificate is not checked"), "{text}");
    text
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A paging JSON interface that fails and rate-limits: each page's first
/// request is a 503, the third request of all a 429 with Retry-After, and
/// a wrong token a 401. It remembers when requests came.
mod exchange {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use serde_json::{Value, json};

    pub const TOKEN: &str = "exchange-token-1";

    #[derive(Default)]
    pub struct Seen {
        pub requests: Vec<Instant>,
        pub pages_failed: std::collections::HashSet<String>,
    }

    #[derive(Clone)]
    struct App {
        records: Arc<Vec<Value>>,
        seen: Arc<Mutex<Seen>>,
    }

    impl App {
        fn page(&self, from: usize, limit: usize) -> Vec<Value> {
            self.records
                .iter()
                .skip(from)
                .take(limit)
                .cloned()
                .collect()
        }
    }

    #[derive(serde::Deserialize)]
    struct Page {
        limit: usize,
        offset: Option<usize>,
        cursor: Option<usize>,
    }

    fn gate(app: &App, headers: &HeaderMap, key: String) -> Option<Response> {
        let mut seen = app.seen.lock().unwrap();
        seen.requests.push(Instant::now());
        let authorised = headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"));
        if !authorised {
            return Some((StatusCode::UNAUTHORIZED, "bad token").into_response());
        }
        if seen.requests.len() == 3 {
            return Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    "slow down",
                )
                    .into_response(),
            );
        }
        if seen.pages_failed.insert(key) {
            return Some((StatusCode::SERVICE_UNAVAILABLE, "busy").into_response());
        }
        None
    }

    async fn offset(State(app): State<App>, headers: HeaderMap, Query(p): Query<Page>) -> Response {
        let from = p.offset.unwrap_or(0);
        if let Some(refused) = gate(&app, &headers, format!("o{from}")) {
            return refused;
        }
        let page = app.page(from, p.limit);
        axum::Json(json!({ "items": page })).into_response()
    }

    async fn cursor(State(app): State<App>, headers: HeaderMap, Query(p): Query<Page>) -> Response {
        let from = p.cursor.unwrap_or(0);
        if let Some(refused) = gate(&app, &headers, format!("c{from}")) {
            return refused;
        }
        let page = app.page(from, p.limit);
        let next = (from + p.limit < app.records.len()).then(|| (from + p.limit).to_string());
        axum::Json(json!({ "data": { "items": page, "next": next } })).into_response()
    }

    /// Serve `records` on a localhost port: (base URL, what it saw).
    pub fn start(records: Vec<Value>) -> (String, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = App {
            records: Arc::new(records),
            seen: seen.clone(),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let router = axum::Router::new()
                    .route("/offset", axum::routing::get(offset))
                    .route("/cursor", axum::routing::get(cursor))
                    .with_state(app);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, router).await.unwrap();
            });
        });
        (base, seen)
    }
}

fn http_pull(lake: &str, url: &str, token: &str, extra: &[&str]) -> std::process::Output {
    let mut cmd = bin();
    cmd.env("EXCHANGE_TOKEN", token)
        .args([
            "ingest", "--lake", lake, "--source", "health", "--pull", "http",
        ])
        .args([
            "--url",
            url,
            "--token-env",
            "EXCHANGE_TOKEN",
            "--page-size",
            "40",
        ])
        .args(["--requests-per-second", "20"])
        .args(extra);
    run(&mut cmd)
}

/// Each row as a JSON object keyed by the headers, as an exchange
/// interface serves records.
fn json_records(headers: &[String], rows: &[Vec<String>]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| {
            serde_json::Value::Object(
                headers
                    .iter()
                    .zip(r)
                    .map(|(h, v)| (h.clone(), serde_json::Value::String(v.clone())))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn http_pulls_page_retry_keep_to_the_rate_and_explain_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, headers, rows) = generated_health(&tmp, 80);
    let records = json_records(&headers, &rows);
    let total = records.len();
    assert!(total > 80, "several pages: {total}");
    let (base, seen) = exchange::start(records);

    // A wrong token is refused at once (no retries on 401), naming the
    // source and the answer; nothing is written.
    let lake = lake_dir(&tmp);
    let out = http_pull(&lake, &format!("{base}/offset"), "wrong", &[]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("source health") && text.contains("401"),
        "{text}"
    );
    assert!(!Path::new(&lake).join("batches").exists());
    seen.lock().unwrap().requests.clear();

    // Offset paging through a 503 on every page and a 429: every record once.
    let started = std::time::Instant::now();
    let out = http_pull(&lake, &format!("{base}/offset"), exchange::TOKEN, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count(&lake, "SELECT count(*) FROM staged_health") as usize,
        total
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After was kept"
    );
    let times = seen.lock().unwrap().requests.clone();
    let pages = total / 40 + 1;
    assert!(
        times.len() >= 2 * pages,
        "each page failed once: {} requests",
        times.len()
    );
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= std::time::Duration::from_millis(45),
            "at most 20 requests a second"
        );
    }
    assert_eq!(
        sql(&lake, "SELECT kind, rows FROM pulls"),
        vec![vec!["http".to_string(), total.to_string()]]
    );

    // The same records again: a reported no-op.
    let out = http_pull(&lake, &format!("{base}/offset"), exchange::TOKEN, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("already ingested"));
    assert_eq!(count(&lake, "SELECT count(*) FROM batches"), 1);

    // Cursor paging, records under data.items, into another lake.
    let other = tmp.path().join("cursor-lake").display().to_string();
    let out = http_pull(
        &other,
        &format!("{base}/cursor"),
        exchange::TOKEN,
        &[
            "--paging",
            "cursor",
            "--items",
            "data.items",
            "--next-cursor",
            "data.next",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count(&other, "SELECT count(*) FROM staged_health") as usize,
        total
    );

    // Records somewhere else than `items`: refused, saying where it looked.
    let out = http_pull(
        &other,
        &format!("{base}/cursor"),
        exchange::TOKEN,
        &["--paging", "cursor"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no array at \"items\""));
}

/// An exchange interface over HTTPS, with rustls: offset paging of
/// `records` under `items`, one request per connection. A client that
/// refuses the certificate just ends its connection.
mod https_exchange {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use serde_json::{Value, json};

    /// Serve on a localhost port with the certificate and key files;
    /// the base URL.
    pub fn start(records: Vec<Value>, cert: &str, key: &str) -> String {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                let _ = answer(&mut tls, &records);
            }
        });
        base
    }

    type Tls = rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>;

    fn answer(tls: &mut Tls, records: &[Value]) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&head);
        let target = head.split(' ').nth(1).unwrap_or("/");
        let param = |name: &str| -> usize {
            url::form_urlencoded::parse(target.split_once('?').map_or("", |q| q.1).as_bytes())
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        };
        let page: Vec<&Value> = records
            .iter()
            .skip(param("offset"))
            .take(param("limit"))
            .collect();
        let body = json!({ "items": page }).to_string();
        write!(
            tls,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        tls.conn.send_close_notify();
        tls.flush()
    }
}

#[test]
fn https_pulls_trust_the_authority_in_ca_file_and_only_it() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = Certificates::make();
    let (_, headers, rows) = generated_health(&tmp, 20);
    let records = json_records(&headers, &rows);
    let base = https_exchange::start(
        records.clone(),
        &certs.path("web.pem"),
        &certs.path("web.key"),
    );
    let url = format!("{base}/offset");
    let lake = lake_dir(&tmp);
    let secure_pull = |ca: Option<&str>| {
        let ca_args: Vec<String> = ca.map_or(Vec::new(), |f| vec!["--ca-file".into(), f.into()]);
        let ca_args: Vec<&str> = ca_args.iter().map(String::as_str).collect();
        http_pull(&lake, &url, exchange::TOKEN, &ca_args)
    };

    // The system does not know the province's authority: refused at once
    // (no retries: it would not pass), saying what to do; nothing written.
    let started = std::time::Instant::now();
    let out = secure_pull(None);
    let text = text_of(&out);
    assert!(!out.status.success());
    assert!(
        text.contains("source health")
            && text.contains("certificate is not trusted")
            && text.contains("ca_file"),
        "{text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "not retried"
    );
    assert!(!Path::new(&lake).join("batches").exists());

    // Another authority in ca_file: refused too.
    let out = secure_pull(Some(&certs.path("other_ca.pem")));
    assert!(!out.status.success());
    assert!(
        text_of(&out).contains("certificate is not trusted"),
        "{}",
        text_of(&out)
    );

    // A ca_file that is not there, or holds no certificate: named.
    let out = secure_pull(Some("/nonexistent/ca.pem"));
    assert!(
        text_of(&out).contains("ca_file /nonexistent/ca.pem"),
        "{}",
        text_of(&out)
    );
    let out = secure_pull(Some(&certs.path("server.ext")));
    assert!(
        text_of(&out).contains("holds no certificate"),
        "{}",
        text_of(&out)
    );

    // The authority that signed the server's certificate: every record.
    let out = secure_pull(Some(&certs.path("ca.pem")));
    assert!(out.status.success(), "{}", text_of(&out));
    assert_eq!(
        count(&lake, "SELECT count(*) FROM staged_health") as usize
            + count(&lake, "SELECT count(*) FROM quarantine_health") as usize,
        records.len()
    );

    // ca_file on a plain http:// url is a mistake, said before any request.
    let out = http_pull(
        &lake,
        "http://127.0.0.1:9/offset",
        exchange::TOKEN,
        &["--ca-file", &certs.path("ca.pem")],
    );
    assert!(
        text_of(&out).contains("ca_file is for an https:// url"),
        "{}",
        text_of(&out)
    );
}

/// A throw-away MariaDB server on a localhost port; stopped when dropped.
struct MariaDb {
    dir: tempfile::TempDir,
    child: std::process::Child,
    port: u16,
}

impl MariaDb {
    fn start() -> MariaDb {
        MariaDb::start_with(None)
    }

    /// With `tls`, the server speaks TLS with `tls`'s server certificate
    /// and refuses plaintext over TCP.
    fn start_with(tls: Option<&Certificates>) -> MariaDb {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let user = if is_root() {
            "--user=root"
        } else {
            "--no-defaults"
        };
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--auth-root-authentication-method=normal"])
            .arg(format!("--datadir={}", data.display()))
            .arg(user)
            .output()
            .expect("mariadb-install-db runs (apt-get install mariadb-server)");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let socket = dir.path().join("mysql.sock");
        let mut cmd = Command::new("/usr/sbin/mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--log-error={}", dir.path().join("log").display()));
        if is_root() {
            cmd.arg("--user=root");
        }
        if let Some(tls) = tls {
            cmd.arg(format!("--ssl-ca={}", tls.path("ca.pem")))
                .arg(format!("--ssl-cert={}", tls.path("server.pem")))
                .arg(format!("--ssl-key={}", tls.path("server.key")))
                .arg("--require-secure-transport=ON");
        }
        let child = cmd.spawn().expect("mariadbd starts");
        let server = MariaDb { dir, child, port };
        for _ in 0..100 {
            if server.client_as_root("SELECT 1").status.success() {
                server.sql_as_root(
                    "CREATE DATABASE exchange; CREATE USER 'puller'@'%' IDENTIFIED BY 'pull-test-secret';
                     GRANT ALL ON exchange.* TO 'puller'@'%';",
                );
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!(
            "mariadbd did not start: {}",
            std::fs::read_to_string(server.dir.path().join("log")).unwrap_or_default()
        );
    }

    /// `exchange.settlements`: a `seq` column, then `headers`, holding
    /// `rows`.
    fn load_settlements(&self, headers: &[String], rows: &[Vec<String>]) {
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"));
        let columns: Vec<String> = headers.iter().map(|h| format!("`{h}`")).collect();
        self.sql_as_root(&format!(
            "CREATE TABLE exchange.settlements (seq BIGINT AUTO_INCREMENT PRIMARY KEY, {}) CHARACTER SET utf8mb4",
            columns.iter().map(|c| format!("{c} VARCHAR(200)")).collect::<Vec<_>>().join(", ")
        ));
        let values: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "({})",
                    r.iter()
                        .map(|v| if v.is_empty() {
                            "NULL".to_string()
                        } else {
                            quote(v)
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .collect();
        self.sql_as_root(&format!(
            "SET NAMES utf8mb4; INSERT INTO exchange.settlements ({}) VALUES {}",
            columns.join(","),
            values.join(",")
        ));
    }

    fn client_as_root(&self, sql: &str) -> std::process::Output {
        Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("mysql.sock").display()
            ))
            .args(["-u", "root", "-e", sql])
            .output()
            .unwrap()
    }

    fn sql_as_root(&self, sql: &str) {
        let out = self.client_as_root(sql);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!(
            "mysql://puller:pull-test-secret@127.0.0.1:{}/exchange",
            self.port
        )
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn maria_pull(lake: &str, url: &str, extra: &[&str]) -> std::process::Output {
    database_pull("mysql", lake, url, extra)
}

/// A generated health extract in `tmp/data`: (directory, headers, rows).
fn generated_health(
    tmp: &tempfile::TempDir,
    households: usize,
) -> (PathBuf, Vec<String>, Vec<Vec<String>>) {
    let data = tmp.path().join("data");
    generate(&data, households, &["--only", "health"]);
    let mut reader = csv::Reader::from_path(data.join("health.csv")).unwrap();
    let headers = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (data, headers, rows)
}

fn text_of(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn mariadb_pulls_are_incremental_idempotent_crash_safe_and_explained() {
    let server = MariaDb::start();
    let tmp = tempfile::tempdir().unwrap();
    let (_, headers, rows) = generated_health(&tmp, 100);
    server.load_settlements(&headers, &rows);
    let lake = lake_dir(&tmp);
    let url = server.url();
    let window = (rows.len() / 3 + 1).to_string();
    let incremental = [
        "--table",
        "exchange.settlements",
        "--watermark",
        "seq",
        "--batch-rows",
        window.as_str(),
    ];

    // Refusals that write nothing and never print the password.
    for (url, extra, says) in [
        (
            url.replace("pull-test-secret", "wrong"),
            &incremental[..],
            vec!["source health", "cannot connect to MySQL", "Access denied"],
        ),
        (
            url.clone(),
            &["--table", "exchange.no_such_table"][..],
            vec!["source health", "exchange.no_such_table", "doesn't exist"],
        ),
    ] {
        let out = maria_pull(&lake, &url, extra);
        let text = text_of(&out);
        assert!(!out.status.success(), "{text}");
        for s in says {
            assert!(text.contains(s), "expected {s:?} in: {text}");
        }
        assert!(!text.contains("pull-test-secret"), "{text}");
    }
    server.sql_as_root("CREATE TABLE exchange.typed (`结算流水号` VARCHAR(20), `结算日期` TINYINT, `个人自付` DECIMAL(10,2))");
    let out = maria_pull(&lake, &url, &["--table", "exchange.typed"]);
    let text = text_of(&out);
    assert!(
        !out.status.success() && text.contains("结算日期") && text.contains("expected a date"),
        "{text}"
    );
    assert!(
        !Path::new(&lake).join("batches").exists(),
        "a refused pull writes nothing"
    );

    // Every row, a window at a time; again, nothing new.
    let out = maria_pull(&lake, &url, &incremental);
    assert!(out.status.success(), "{}", text_of(&out));
    assert_eq!(
        count(&lake, "SELECT count(*) FROM staged_health") as usize,
        rows.len()
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM batches"), 3);
    assert_eq!(count(&lake, "SELECT count(*) FROM quarantine_health"), 0);
    let out = maria_pull(&lake, &url, &incremental);
    assert!(
        text_of(&out).contains("no new rows above watermark"),
        "{}",
        text_of(&out)
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM batches"), 3);

    // New rows, then a crash after their batch and before its window is
    // noted: the re-run ends with every row once.
    server.sql_as_root(
        "INSERT INTO exchange.settlements (`结算流水号`, `结算日期`, `个人自付`)
         VALUES ('M1', '2026-06-01', '10.00'), ('M2', '2026-06-02', '12.50'), ('M3', '2026-06-03', '8.00')",
    );
    let mut crash = bin();
    let crashed = run(crash
        .env("HEALTH_DB_URL", &url)
        .env("SAFETYNET_FAILPOINT", "pull:after-batch")
        .args([
            "ingest", "--lake", &lake, "--source", "health", "--pull", "mysql",
        ])
        .args(["--url-env", "HEALTH_DB_URL"])
        .args(incremental));
    assert!(
        !crashed.status.success(),
        "the failpoint is reached: {}",
        text_of(&crashed)
    );
    let out = maria_pull(&lake, &url, &incremental);
    assert!(out.status.success(), "{}", text_of(&out));
    assert_eq!(
        count(&lake, "SELECT count(*) FROM staged_health") as usize,
        rows.len() + 3
    );
    assert_eq!(
        count(&lake, "SELECT sum(rows) FROM pulls"),
        count(&lake, "SELECT sum(rows_read) FROM batches"),
        "the window re-pulled after the crash counts its rows"
    );
    assert_eq!(
        sql(
            &lake,
            "SELECT CAST(self_paid AS VARCHAR) FROM staged_health WHERE settlement_id = 'M2'"
        ),
        vec![vec!["12.50".to_string()]]
    );
}

/// A MariaDB server that refuses plaintext over TCP, with the certificate
/// of its own authority: `ssl-mode` and `ssl-ca` in the URL say how much
/// to check, as for the mysql client.
#[test]
fn mariadb_pulls_are_encrypted_and_check_the_server_as_ssl_mode_says() {
    let certificates = Certificates::make();
    let server = MariaDb::start_with(Some(&certificates));
    let tmp = tempfile::tempdir().unwrap();
    let (_, headers, rows) = generated_health(&tmp, 20);
    server.load_settlements(&headers, &rows);
    let lake = lake_dir(&tmp);
    let table = ["--table", "exchange.settlements"];
    let url = |params: &str| format!("{}?{params}", server.url());
    let ca = certificates.path("ca.pem");
    let refused = |params: &str, says: &[&str]| {
        let out = maria_pull(&lake, &url(params), &table);
        let text = text_of(&out);
        assert!(!out.status.success(), "{params}: {text}");
        for s in says {
            assert!(text.contains(s), "{params}: expected {s:?} in: {text}");
        }
        assert!(!text.contains("pull-test-secret"), "{text}");
    };
    refused("ssl-mode=DISABLED", &["cannot connect to MySQL"]);
    refused(
        &format!("ssl-ca={}", certificates.path("other_ca.pem")),
        &["cannot connect to MySQL", "invalid peer certificate"],
    );
    refused(
        &format!("ssl-ca={ca}"),
        &["cannot connect to MySQL", "not valid for name"],
    );
    refused("ssl-mode=PREFERRED", &["cannot fall back to plaintext"]);
    assert!(!Path::new(&lake).join("batches").exists());

    refused(
        &format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"),
        &["use VERIFY_IDENTITY"],
    );
    // The right authority, and the name the certificate was issued for
    // (ssl-ca alone means VERIFY_IDENTITY): no warning is due.
    let out = maria_pull(
        &lake,
        &url(&format!("ssl-ca={ca}&ssl-server-name=exchange.example")),
        &table,
    );
    pulled_securely(&out, &lake, rows.len());
    // Encrypted to whoever answers: it works, and the log says so.
    let out = maria_pull(&lake, &url("ssl-mode=REQUIRED"), &table);
    assert!(pulled_unchecked(&out).contains("already ingested"));
}
