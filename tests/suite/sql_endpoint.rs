//! The PostgreSQL endpoint of `safetynet serve` with real clients:
//! tokio-postgres (simple and extended protocol, prepared statements with
//! parameters) and psql. Refused logins, refused writes, masking, region
//! scoping, audit rows and TLS, each asserted.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;

use crate::common::*;
use serde_json::Value;

pub(crate) const PASSWORD: &str = "s3cret-passw0rd";

pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    pub(crate) api_port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub(crate) struct Fixture {
    pub(crate) lake: String,
    pub(crate) county: String,
    pub(crate) pipeline: PathBuf,
    _tmp: tempfile::TempDir,
}

pub(crate) fn add_user(users: &Path, name: &str, role: &str, region: Option<&str>) {
    let mut cmd = bin();
    cmd.args(["user", "add", "--users"])
        .arg(users)
        .args(["--name", name, "--role", role]);
    if let Some(r) = region {
        cmd.args(["--region", r]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(child.wait().unwrap().success());
}

pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let users = tmp.path().join("users.toml");
        let file = pipeline_file(
            tmp.path(),
            150,
            &format!(
                "[sql]\nlisten = \"127.0.0.1:0\"\nusers = \"{}\"\n",
                users.display()
            ),
        );
        let lake = tmp.path().join("lake").display().to_string();
        ok(bin()
            .arg("run")
            .arg(&file)
            .args(["--lake", &lake, "--as-of", "2026-11-20"]));
        let county = sql(&lake, "SELECT min(county_code) FROM warnings")[0][0].clone();
        add_user(&users, "admin", "admin", None);
        add_user(&users, "analyst", "analyst", None);
        add_user(&users, "county", "reader", Some(&county));
        Fixture {
            lake,
            county,
            pipeline: file,
            _tmp: tmp,
        }
    })
}

/// Start `serve` on ephemeral ports and read the SQL port from its log.
pub(crate) fn start(pipeline: &Path) -> Result<Server, String> {
    start_with(pipeline, &[])
}

/// As [`start`], with extra environment variables for the service.
pub(crate) fn start_with(pipeline: &Path, env: &[(&str, &str)]) -> Result<Server, String> {
    let mut child = bin()
        .envs(env.iter().copied())
        .env("SAFETYNET_LOG", "safetynet=info")
        .args(["--log-format", "json", "serve"])
        .arg(pipeline)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut log = Vec::new();
    let (mut api_port, mut sql_port) = (None, None);
    let port_of = |v: &Value| -> u16 {
        let address = v["fields"]["address"].as_str().unwrap().to_string();
        address.rsplit(':').next().unwrap().parse().unwrap()
    };
    for line in lines.by_ref().map_while(Result::ok) {
        log.push(line.clone());
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["fields"]["message"] == "HTTP API listening" {
            api_port = Some(port_of(&v));
        }
        if v["fields"]["message"] == "SQL endpoint listening" {
            sql_port = Some(port_of(&v));
        }
        if let (Some(port), Some(api_port)) = (sql_port, api_port) {
            // Keep reading, so the service never writes to a closed pipe.
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
            return Ok(Server {
                child,
                port,
                api_port,
            });
        }
    }
    let _ = child.wait();
    Err(log.join("\n"))
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

pub(crate) async fn connect(
    port: u16,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let config = format!("host=127.0.0.1 port={port} user={user} password={password} dbname=lake");
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[test]
fn logins_need_a_known_user_and_the_right_password() {
    let server = start(&fixture().pipeline).expect("serve starts");
    let port = server.port;
    let rt = runtime();
    rt.block_on(async {
        let Err(wrong) = connect(port, "analyst", "not-the-password").await else {
            panic!("a wrong password was accepted");
        };
        assert!(
            wrong.to_string().contains("password") || format!("{wrong:?}").contains("28P01"),
            "{wrong:?}"
        );
        assert!(
            connect(port, "nobody", PASSWORD).await.is_err(),
            "unknown user refused"
        );
        let c = connect(port, "analyst", PASSWORD).await.unwrap();
        let one: i64 = c.query_one("SELECT 1::BIGINT", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
    });
}

#[test]
fn prepared_statements_masking_scoping_and_refused_writes() {
    let f = fixture();
    let server = start(&f.pipeline).expect("serve starts");
    let port = server.port;
    let rt = runtime();
    rt.block_on(async {
        // Extended protocol: a prepared statement with a parameter.
        let analyst = connect(port, "analyst", PASSWORD).await.unwrap();
        let statement = analyst
            .prepare("SELECT count(*) FROM warnings WHERE county_code = $1")
            .await
            .unwrap();
        let n: i64 = analyst.query_one(&statement, &[&f.county]).await.unwrap().get(0);
        let expected = count(&f.lake, &format!("SELECT count(*) FROM warnings WHERE county_code = '{}'", f.county));
        assert_eq!(n, expected);

        // Masked names and ID numbers for the analyst.
        let rows = analyst
            .query("SELECT name, id_number FROM roster_person ORDER BY person_id LIMIT 10", &[])
            .await
            .unwrap();
        for r in &rows {
            let (name, id): (String, String) = (r.get(0), r.get(1));
            assert!(name.ends_with('*'), "{name}");
            assert!(id[6..id.len() - 4].chars().all(|c| c == '*'), "{id}");
        }
        assert!(analyst.query("SELECT * FROM audit_log", &[]).await.is_err(), "audit log is admin's");

        // The county reader sees its county only.
        let county = connect(port, "county", PASSWORD).await.unwrap();
        let counties: Vec<String> = county
            .query("SELECT DISTINCT county_code FROM warnings", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(counties, vec![f.county.clone()]);

        // Writes and server files are refused, in both protocols.
        let target = std::env::temp_dir().join("safetynet-copy-test.csv");
        for sql in [
            format!("COPY (SELECT * FROM roster_person) TO '{}'", target.display()),
            "CREATE TABLE t AS SELECT 1".into(),
            "DROP TABLE warnings".into(),
            "INSERT INTO warnings SELECT * FROM warnings".into(),
        ] {
            let e = analyst.batch_execute(&sql).await.expect_err(&sql);
            let code = e.as_db_error().map(|d| d.code().code().to_string());
            assert_eq!(code.as_deref(), Some("42501"), "{sql}: {e:?}");
            assert!(analyst.prepare(&sql).await.is_err(), "prepared {sql}");
        }
        assert!(!target.exists());

        // Every statement above is on record: a `started` row before it
        // ran, then its outcome, with the value bound to $1 (written just
        // after it ends; a new connection sees the latest lake).
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let mut outcomes = Vec::new();
        for _ in 0..20 {
            let admin = connect(port, "admin", PASSWORD).await.unwrap();
            let rows = admin
                .query(
                    "SELECT outcome, rows_returned, request FROM audit_log WHERE interface = 'sql' AND user_name = 'analyst' AND request LIKE '%county_code = $1%' ORDER BY at",
                    &[],
                )
                .await
                .unwrap();
            outcomes = rows
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, String>(2)))
                .collect();
            if outcomes.len() >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let kinds: Vec<(&str, i64)> = outcomes.iter().map(|(o, n, _)| (o.as_str(), *n)).collect();
        assert_eq!(kinds, vec![("started", 0), ("ok", 1)], "{outcomes:?}");
        assert!(
            outcomes.iter().all(|(_, _, request)| request.contains(&format!("parameters: [{}]", f.county))),
            "the bound value is on record: {outcomes:?}"
        );
        let admin = connect(port, "admin", PASSWORD).await.unwrap();
        let refused: i64 = admin
            .query_one(
                "SELECT count(*) FROM audit_log WHERE interface = 'sql' AND user_name = 'analyst' AND outcome = 'error' AND error LIKE '%read-only%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(refused >= 4, "{refused}");
    });
}

pub(crate) fn psql(port: u16, user: &str, sslmode: &str, command: &str) -> std::process::Output {
    std::process::Command::new("psql")
        .env("PGPASSWORD", PASSWORD)
        .args([
            &format!("host=127.0.0.1 port={port} user={user} dbname=lake sslmode={sslmode}"),
            "-X",
            "-c",
            command,
        ])
        .output()
        .expect("psql is installed (apt-get install postgresql-client)")
}

#[test]
fn psql_lists_and_describes_tables() {
    let server = start(&fixture().pipeline).expect("serve starts");
    let port = server.port;
    let out = psql(port, "admin", "disable", "\\dt");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("warnings") && text.contains("roster_person"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = psql(port, "admin", "disable", "\\d warnings");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("household_id"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = psql(port, "county", "disable", "SELECT count(*) FROM audit_log");
    assert!(!out.status.success());
}

#[test]
fn tls_is_required_once_configured_and_bad_files_stop_start_up() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("c.pem"), tmp.path().join("k.pem"));
    let users = f.pipeline.parent().unwrap().join("users.toml");
    let write = |tls: &str| {
        let text = std::fs::read_to_string(&f.pipeline).unwrap();
        let text = text.replace(
            &format!("users = \"{}\"\n", users.display()),
            &format!("users = \"{}\"\n{tls}", users.display()),
        );
        let p = tmp.path().join("tls.toml");
        std::fs::write(&p, text).unwrap();
        p
    };
    // A certificate path that does not exist: start-up fails, naming it.
    let missing = write(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        tmp.path().join("nope.pem").display(),
        key.display()
    ));
    let err = start(&missing).err().expect("serve refuses to start");
    assert!(err.contains("nope.pem"), "{err}");

    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(made.status.success());
    let good = write(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let server = start(&good).expect("serve starts with TLS");
    let plain = psql(server.port, "admin", "disable", "SELECT 1");
    assert!(!plain.status.success(), "plaintext accepted");
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("TLS"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let secure = psql(server.port, "admin", "require", "SELECT 1");
    assert!(
        secure.status.success(),
        "{}",
        String::from_utf8_lossy(&secure.stderr)
    );
}

/// A query that would run for hours on the fixture.
const ENDLESS: &str = "SELECT count(*) FROM roster_person a, roster_person b, roster_person c, roster_person d \
                       WHERE a.member_id || b.member_id || c.member_id || d.member_id = 'x'";

pub(crate) fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_string())
}

#[test]
fn long_statements_are_cancelled_on_request_and_at_the_time_limit() {
    let f = fixture();
    let rt = runtime();

    // psql's Ctrl-C sends a cancel request; tokio-postgres sends the same.
    let server = start(&f.pipeline).expect("serve starts");
    rt.block_on(async {
        let client = connect(server.port, "analyst", PASSWORD).await.unwrap();
        let token = client.cancel_token();
        let started = std::time::Instant::now();
        let running =
            tokio::spawn(async move { client.query(ENDLESS, &[]).await.map(|r| r.len()) });
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
        let result = tokio::time::timeout(std::time::Duration::from_secs(30), running)
            .await
            .expect("the query stops soon after the cancel request")
            .unwrap();
        let e = result.expect_err("a cancelled query returns an error");
        assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    });
    drop(server);

    // The configured statement timeout ends it too.
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&f.pipeline)
        .unwrap()
        .replace("[sql]\n", "[sql]\nstatement_timeout_seconds = 2.0\n");
    let file = tmp.path().join("timeout.toml");
    std::fs::write(&file, text).unwrap();
    let server = start(&file).expect("serve starts");
    rt.block_on(async {
        let client = connect(server.port, "analyst", PASSWORD).await.unwrap();
        let started = std::time::Instant::now();
        let e = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            client.query(ENDLESS, &[]),
        )
        .await
        .expect("the time limit ends the query")
        .expect_err("a timed-out query returns an error");
        assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
        assert!(format!("{e:?}").contains("timeout"), "{e:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    });
}
