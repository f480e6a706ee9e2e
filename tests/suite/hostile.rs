//! A careless or hostile analyst against the real service: one test for
//! each way the SQL endpoint, the API, the shell and the lake's files were
//! once found open, each asserting the refusal a user would check.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::sql_endpoint::{
    PASSWORD, Server, connect, fixture, psql, runtime, sqlstate, start, start_with,
};

/// The fixture's pipeline with lines added to its `[sql]` section.
fn variant(extra_sql: &str, extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&fixture().pipeline)
        .unwrap()
        .replace("[sql]\n", &format!("{extra}\n[sql]\n{extra_sql}\n"));
    let file = tmp.path().join("variant.toml");
    std::fs::write(&file, text).unwrap();
    (tmp, file)
}

/// Audit rows, as admin sees them through the CLI.
fn audit(lake: &str, filter: &str) -> Vec<Vec<String>> {
    sql(
        lake,
        &format!(
            "SELECT user_name, outcome, rows_returned, coalesce(error, ''), client, request FROM audit_log WHERE {filter} ORDER BY at"
        ),
    )
}

/// Wait until `check` holds (audit rows are committed just after a call).
fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..40 {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{what}: never happened");
}

#[test]
fn masked_ids_cannot_be_rebuilt_from_birth_dates() {
    let f = fixture();
    // The rebuild that once gave back every roster ID: region and tail
    // from the mask, the middle 8 digits from the birth date beside it.
    let rebuild = "SELECT substr(id_number, 1, 6) || replace(CAST(birth_date AS VARCHAR), '-', '') || substr(id_number, 15, 4) AS guess FROM roster_person";
    let guesses = sql(&f.lake, rebuild);
    let guesses_as_analyst = {
        let mut cmd = bin();
        cmd.args([
            "sql", "--role", "analyst", "--lake", &f.lake, "--format", "csv", "-c", rebuild,
        ]);
        let out = ok(&mut cmd);
        out.lines()
            .skip(1)
            .map(str::to_string)
            .collect::<std::collections::HashSet<_>>()
    };
    let real: std::collections::HashSet<String> =
        sql(&f.lake, "SELECT id_number FROM roster_person")
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
    assert!(guesses.len() as i64 > 100, "admin's own rebuild is exact");
    // Only people born on 1 January come out right, and nothing tells the
    // analyst which guesses those are.
    let born_new_year = count(
        &f.lake,
        "SELECT count(*) FROM roster_person WHERE date_part('month', birth_date) = 1 AND date_part('day', birth_date) = 1",
    );
    let rebuilt = guesses_as_analyst.intersection(&real).count() as i64;
    assert!(
        rebuilt <= born_new_year && rebuilt * 100 < real.len() as i64,
        "an analyst rebuilt {rebuilt} of {} IDs ({born_new_year} born on 1 January)",
        real.len()
    );

    // Every birth date an analyst sees is coarsened to its year, in every
    // table that has one, over the SQL endpoint too.
    let server = start(&f.pipeline).expect("serve starts");
    runtime().block_on(async {
        let analyst = connect(server.port, "analyst", PASSWORD).await.unwrap();
        for table in ["roster_person", "staged_health", "staged_civil_affairs", "staged_social_insurance"] {
            let rows = analyst
                .query(
                    &format!("SELECT CAST(birth_date AS VARCHAR) FROM {table} WHERE birth_date IS NOT NULL LIMIT 200"),
                    &[],
                )
                .await
                .unwrap();
            assert!(!rows.is_empty(), "{table}");
            for r in &rows {
                let d: String = r.get(0);
                assert!(d.ends_with("-01-01"), "{table}: {d}");
            }
        }
        let raw = analyst
            .query("SELECT birth_date_raw FROM staged_health WHERE birth_date_raw IS NOT NULL LIMIT 50", &[])
            .await
            .unwrap();
        for r in &raw {
            let d: String = r.get(0);
            assert!(d.len() <= 4 || d.contains("masked"), "raw birth text shown: {d}");
        }
    });
}

#[test]
fn engine_settings_cannot_be_set_and_into_is_refused_at_any_depth() {
    let f = fixture();
    let server = start(&f.pipeline).expect("serve starts");
    let target = std::env::temp_dir().join(format!("safetynet-spill-{}", std::process::id()));
    runtime().block_on(async {
        let analyst = connect(server.port, "analyst", PASSWORD).await.unwrap();
        for bad in [
            "SET datafusion.runtime.memory_limit = '6G'".to_string(),
            format!("SET datafusion.runtime.temp_directory = '{}'", target.display()),
            "SET datafusion.explain.show_statistics = true".to_string(),
            "(SELECT * INTO audit_log FROM warnings)".to_string(),
            "SELECT * FROM (SELECT * INTO t FROM warnings) x".to_string(),
            "EXPLAIN SET datafusion.execution.batch_size = 1".to_string(),
        ] {
            let e = analyst.batch_execute(&bad).await.expect_err(&bad);
            assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{bad}: {e:?}");
            assert!(analyst.prepare(&bad).await.is_err(), "prepared: {bad}");
        }
        assert!(!target.exists(), "the server made a directory of the caller's choosing");
        // What drivers send on connect still works.
        for fine in ["SET search_path = public", "SET application_name = 'DBeaver 24'", "SET extra_float_digits = 3"] {
            analyst.batch_execute(fine).await.unwrap_or_else(|e| panic!("{fine}: {e:?}"));
        }
        // No session table was made, under any name.
        let n: i64 = analyst
            .query_one("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('t', 'audit_log')", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
    });
}

#[test]
fn region_users_get_plain_explain_without_paths() {
    let f = fixture();
    let server = start(&f.pipeline).expect("serve starts");
    let lake_path = Path::new(&f.lake)
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    let out = psql(
        server.port,
        "county",
        "disable",
        "EXPLAIN SELECT * FROM warnings",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("plan"), "{text}");
    assert!(
        !text.contains(&lake_path) && !text.contains("file://"),
        "paths shown: {text}"
    );
    let out = psql(
        server.port,
        "county",
        "disable",
        "EXPLAIN ANALYZE SELECT * FROM warnings",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("EXPLAIN ANALYZE"));
    // The shell applies the same rule.
    let mut cmd = bin();
    cmd.args([
        "sql",
        "--lake",
        &f.lake,
        "--role",
        "reader",
        "--region",
        &f.county,
        "-c",
        "EXPLAIN VERBOSE SELECT * FROM warnings",
    ]);
    assert!(!run(&mut cmd).status.success());
}

#[test]
fn abandoned_results_and_failed_logins_are_on_record() {
    let f = fixture();
    let server = start(&f.pipeline).expect("serve starts");
    runtime().block_on(async {
        // Read a little of a huge result, then go away: psql killed while
        // rows arrive (tokio-postgres would drain the result first).
        let mut reader = std::process::Command::new("psql")
            .env("PGPASSWORD", PASSWORD)
            .args([
                &format!(
                    "host=127.0.0.1 port={} user=analyst dbname=lake",
                    server.port
                ),
                "-X",
                "-c",
                "SELECT value AS abandoned_marker FROM generate_series(1, 50000000) AS t(value)",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("psql is installed");
        tokio::time::sleep(Duration::from_secs(3)).await;
        reader.kill().unwrap();
        let _ = reader.wait();

        assert!(
            connect(server.port, "analyst", "not-the-password")
                .await
                .is_err()
        );
        assert!(connect(server.port, "nobody", PASSWORD).await.is_err());
    });
    eventually("the abandoned result is audited", || {
        let rows = audit(
            &f.lake,
            "interface = 'sql' AND request LIKE '%abandoned_marker%' AND outcome = 'abandoned'",
        );
        rows.iter().any(|r| {
            r[2].parse::<i64>().unwrap() >= 1000 && r[2].parse::<i64>().unwrap() < 50_000_000
        })
    });
    eventually("failed logins are audited", || {
        let rows = audit(&f.lake, "interface = 'sql' AND request = 'login'");
        let reasons: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r[0].as_str(), r[3].as_str()))
            .collect();
        reasons.contains(&("analyst", "wrong password"))
            && reasons.contains(&("nobody", "unknown user"))
            && rows
                .iter()
                .all(|r| r[1] == "error" && r[4].starts_with("127.0.0.1"))
    });
}

/// Speak the protocol by hand up to the server's first SCRAM message.
struct Raw(TcpStream);

impl Raw {
    fn open(port: u16, user: &str) -> Raw {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut body = Vec::new();
        body.extend_from_slice(&196_608i32.to_be_bytes());
        for (k, v) in [("user", user), ("database", "lake")] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        msg.extend_from_slice(&body);
        s.write_all(&msg).unwrap();
        Raw(s)
    }

    /// The next message: (type, body); None at the end of the stream.
    fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.0.read_exact(&mut head).ok()?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        self.0.read_exact(&mut body).ok()?;
        Some((head[0], body))
    }

    fn send(&mut self, kind: u8, body: &[u8]) {
        let mut msg = vec![kind];
        msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        msg.extend_from_slice(body);
        let _ = self.0.write_all(&msg);
    }

    /// Send a SCRAM client-first message and return the server-first one.
    fn server_first(mut self) -> String {
        let (kind, _) = self.read().unwrap();
        assert_eq!(kind, b'R', "AuthenticationSASL");
        let first = b"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL";
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&(first.len() as i32).to_be_bytes());
        body.extend_from_slice(first);
        self.send(b'p', &body);
        let (kind, body) = self.read().unwrap();
        assert_eq!(kind, b'R', "{}", String::from_utf8_lossy(&body));
        assert_eq!(
            &body[..4],
            &11i32.to_be_bytes(),
            "AuthenticationSASLContinue"
        );
        String::from_utf8_lossy(&body[4..]).into_owned()
    }
}

fn salt_of(server_first: &str) -> String {
    server_first
        .split(',')
        .find_map(|p| p.strip_prefix("s="))
        .expect("a salt")
        .to_string()
}

#[test]
fn unknown_users_cannot_be_told_apart_and_bad_sasl_messages_close_cleanly() {
    let f = fixture();
    let server = start(&f.pipeline).expect("serve starts");
    let timed = |user: &str| {
        let started = Instant::now();
        let first = Raw::open(server.port, user).server_first();
        (salt_of(&first), started.elapsed())
    };
    let (known, known_time) = timed("analyst");
    let (unknown, unknown_time) = timed("nobody");
    let (unknown_again, _) = timed("nobody");
    assert_eq!(
        unknown, unknown_again,
        "an unknown user's salt is the same every time"
    );
    assert_ne!(known, unknown);
    assert_eq!(known.len(), unknown.len(), "salts look alike");
    assert!(
        unknown_time < known_time * 10 + Duration::from_millis(200),
        "{unknown_time:?} vs {known_time:?}"
    );
    // The messages a client sees for both are the same.
    runtime().block_on(async {
        let wrong = connect(server.port, "analyst", "not-the-password")
            .await
            .unwrap_err();
        let unknown = connect(server.port, "nobody", "not-the-password")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&wrong), sqlstate(&unknown));
    });

    // A PasswordMessage where the SASL initial response belongs once
    // panicked inside pgwire's decoder: now an error, and the connection ends.
    let mut raw = Raw::open(server.port, "analyst");
    assert_eq!(raw.read().unwrap().0, b'R');
    raw.send(b'p', b"hunter2\0");
    let (kind, body) = raw.read().expect("an error response");
    assert_eq!(kind, b'E', "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("08P01"));
    // pgwire says ReadyForQuery after any error, then closes a fatal one.
    let mut after = Vec::new();
    while let Some((kind, _)) = raw.read() {
        after.push(kind as char);
    }
    assert!(
        after.iter().all(|k| *k == 'Z'),
        "the connection is closed: {after:?}"
    );
    // The service goes on.
    runtime().block_on(async {
        let c = connect(server.port, "analyst", PASSWORD).await.unwrap();
        assert_eq!(
            c.query_one("SELECT 1::BIGINT", &[])
                .await
                .unwrap()
                .get::<_, i64>(0),
            1
        );
    });
}

fn api_admin_token(lake: &str) -> String {
    ok(bin().args([
        "token",
        "create",
        "--lake",
        lake,
        "--name",
        "安全测试",
        "--role",
        "admin",
    ]))
    .trim()
    .to_string()
}

#[test]
fn guessing_passwords_is_slowed_then_locked_until_an_admin_lifts_it() {
    let f = fixture();
    let server = start(&f.pipeline).expect("serve starts");
    let token = api_admin_token(&f.lake);
    let rt = runtime();
    rt.block_on(async {
        let mut times = Vec::new();
        let mut last_error = None;
        for _ in 0..10 {
            let started = Instant::now();
            last_error = connect(server.port, "county", "guess").await.err();
            times.push(started.elapsed());
        }
        assert!(
            times[6] > times[0] + Duration::from_millis(500),
            "not slowed: {times:?}"
        );
        // Locked now: even the right password is refused, with a reason.
        let locked = connect(server.port, "county", PASSWORD)
            .await
            .expect_err("locked");
        assert!(
            format!("{locked:?}").contains("locked"),
            "{locked:?} (last guess: {last_error:?})"
        );
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{}/api/v1/logins/locks", server.api_port);
        let listed: serde_json::Value = http
            .get(&base)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            listed["locks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["key"] == "user:county"),
            "{listed}"
        );
        let lifted = http
            .delete(format!("{base}/county"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(lifted.status(), 200);
        connect(server.port, "county", PASSWORD)
            .await
            .expect("the lock is lifted");
    });
}

#[test]
fn connection_and_request_limits_refuse_clearly_and_health_answers() {
    let (_tmp, file) = variant("max_connections = 3", "[api]\nmax_requests = 2");
    let server: Server = start(&file).expect("serve starts");
    let rt = runtime();
    rt.block_on(async {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(connect(server.port, "analyst", PASSWORD).await.unwrap());
        }
        let e = connect(server.port, "analyst", PASSWORD)
            .await
            .expect_err("a fourth connection");
        assert_eq!(sqlstate(&e).as_deref(), Some("53300"), "{e:?}");
        held.pop();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let again = connect(server.port, "analyst", PASSWORD)
            .await
            .expect("a freed slot is taken");
        drop(again);
        drop(held);

        // A burst of API calls: each answered, or refused with 503, JSON and Retry-After.
        let token = api_admin_token(&fixture().lake);
        let http = reqwest::Client::new();
        let url = format!(
            "http://127.0.0.1:{}/api/v1/warnings?limit=1000",
            server.api_port
        );
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let (http, url, token) = (http.clone(), url.clone(), token.clone());
                tokio::spawn(async move {
                    let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
                    let status = r.status().as_u16();
                    let retry = r.headers().get("retry-after").is_some();
                    let body: serde_json::Value = r.json().await.unwrap();
                    (status, retry, body)
                })
            })
            .collect();
        let health = http
            .get(format!("http://127.0.0.1:{}/healthz", server.api_port))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .expect("/healthz answers during the burst");
        assert_eq!(health.status(), 200);
        let health: serde_json::Value = health.json().await.unwrap();
        assert_eq!(health["load"]["api_request_limit"], 2, "{health}");
        let mut refused = 0;
        for c in calls {
            let (status, retry, body) = c.await.unwrap();
            match status {
                200 => {}
                503 => {
                    refused += 1;
                    assert!(
                        retry && body["error"]["message"].as_str().unwrap().contains("limit"),
                        "{body}"
                    );
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert!(
            refused > 0,
            "40 calls at once against a limit of 2 were all served"
        );
    });
}

#[test]
fn statements_fail_when_the_audit_log_cannot_be_written() {
    let f = fixture();
    let server =
        start_with(&f.pipeline, &[("SAFETYNET_FAILPOINT", "audit:write")]).expect("serve starts");
    runtime().block_on(async {
        let analyst = connect(server.port, "analyst", PASSWORD).await.unwrap();
        let e = analyst
            .query("SELECT person_id FROM roster_person LIMIT 5", &[])
            .await
            .expect_err("no rows while the audit log cannot be written");
        assert_eq!(sqlstate(&e).as_deref(), Some("58000"), "{e:?}");
        assert!(format!("{e:?}").contains("audit"), "{e:?}");
        let e = analyst
            .simple_query("SELECT 1")
            .await
            .expect_err("simple protocol too");
        assert_eq!(sqlstate(&e).as_deref(), Some("58000"), "{e:?}");
    });
    // The shell does not show results it could not put on record.
    let mut cmd = bin();
    cmd.env("SAFETYNET_FAILPOINT", "audit:write").args([
        "sql",
        "--lake",
        &f.lake,
        "-c",
        "SELECT 'shown' AS x",
    ]);
    let out = run(&mut cmd);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("shown"));
}

#[test]
fn lake_files_are_private_and_the_shell_records_the_real_account() {
    let f = fixture();
    use std::os::unix::fs::PermissionsExt;
    let mut checked = 0;
    let mut stack = vec![std::path::PathBuf::from(&f.lake)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.path().display());
            checked += 1;
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    assert!(checked > 50, "{checked}");

    // $USER is the caller's to set; the audited user is the account.
    let account = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let marker = format!("SELECT 'spoof-{}' AS x", std::process::id());
    let mut cmd = bin();
    cmd.env("USER", "admin1")
        .env("LOGNAME", "admin1")
        .args(["sql", "--lake", &f.lake, "-c", &marker]);
    ok(&mut cmd);
    let rows = audit(
        &f.lake,
        &format!("request = '{}'", marker.replace('\'', "''")),
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], format!("os:{account}"));

    // Verifiers may not export, as docs/sql.md says.
    let target = std::env::temp_dir().join(format!("verifier-{}.csv", std::process::id()));
    let mut cmd = bin();
    cmd.args(["sql", "--lake", &f.lake, "--role", "verifier", "--out"])
        .arg(&target)
        .args(["-c", "SELECT 1"]);
    let out = run(&mut cmd);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not export"));
    assert!(!target.exists());
}

#[test]
fn oversized_bodies_get_json_errors() {
    let f = fixture();
    let server = start(&f.pipeline).expect("serve starts");
    let token = api_admin_token(&f.lake);
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let warning = sql(&f.lake, "SELECT min(warning_id) FROM warnings")[0][0].clone();
        let r = http
            .post(format!(
                "http://127.0.0.1:{}/api/v1/warnings/{warning}/verification",
                server.api_port
            ))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(vec![b'x'; 4 * 1024 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    });
}
