//! Load and abuse, bounded and on localhost only: `safetynet serve` over
//! the sample lake under a burst of SQL connections (each connecting,
//! querying, disconnecting, again) and API calls (the household timeline
//! and the warning list), with `/healthz` polled throughout.
//!
//!   cargo bench --bench load -- [--connections 200] [--requests 500] [--seconds 60]
//!
//! Every call must end one of three ways: answered, refused for capacity
//! (PostgreSQL 53300, HTTP 503), or stopped by the server's own statement
//! timeout. A client that waits 30 s for anything counts as a hang; the
//! bar is zero hangs, `/healthz` p99 under 200 ms, and normal answers
//! within 5 s after the burst.
//!
//! `SAFETYNET_BIN=/path/to/safetynet` runs the same load against another
//! build of the program.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "load-test-passw0rd";
/// Any wait longer than this is a hang.
const HANG: Duration = Duration::from_secs(30);

/// The program under test: this build, or another one named by
/// SAFETYNET_BIN (to measure an older release the same way).
fn program() -> String {
    std::env::var("SAFETYNET_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_safetynet").to_string())
}

fn safetynet(root: &str) -> Command {
    let mut cmd = Command::new(program());
    cmd.current_dir(root).env("SAFETYNET_LOG", "warn");
    cmd
}

fn must(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Start the service and read its two ports from the log.
fn serve(root: &str, pipeline: &Path) -> (Service, u16, u16) {
    let mut child = Command::new(program())
        .current_dir(root)
        .env("SAFETYNET_LOG", "safetynet=info")
        .args(["--log-format", "json", "serve"])
        .arg(pipeline)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let (mut api, mut sql) = (None, None);
    for line in lines.by_ref().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let port = || {
            v["fields"]["address"]
                .as_str()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
        };
        match v["fields"]["message"].as_str() {
            Some("HTTP API listening") => api = port(),
            Some("SQL endpoint listening") => sql = port(),
            _ => {}
        }
        if let (Some(a), Some(s)) = (api, sql) {
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
            return (Service(child), a, s);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the service did not start");
}

/// Outcomes by kind.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, kind: impl Into<String>) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(kind.into()).or_default() += 1;
        }
    }
    fn get(&self, kind: &str) -> u64 {
        self.0
            .lock()
            .map(|m| m.get(kind).copied().unwrap_or(0))
            .unwrap_or(0)
    }
    fn show(&self) -> String {
        self.0
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(" · ")
            })
            .unwrap_or_default()
    }
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| "io".into())
}

async fn sql_worker(port: u16, until: Instant, tally: Arc<Tally>) {
    let config = format!("host=127.0.0.1 port={port} user=analyst password={PASSWORD} dbname=lake");
    while Instant::now() < until {
        let connected = tokio::time::timeout(
            HANG,
            tokio_postgres::connect(&config, tokio_postgres::NoTls),
        )
        .await;
        let client = match connected {
            Err(_) => {
                tally.add("sql hang");
                continue;
            }
            Ok(Err(e)) => {
                tally.add(format!("sql connect {}", sqlstate(&e)));
                // A refused client backs off, as pools do.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Ok(Ok((client, connection))) => {
                tokio::spawn(connection);
                client
            }
        };
        for query in [
            "SELECT count(*) FROM warnings",
            "SELECT county_code, count(*) FROM warnings GROUP BY county_code",
            "SELECT count(*) FROM link_health l JOIN staged_health s ON l.settlement_id = s.settlement_id",
        ] {
            match tokio::time::timeout(HANG, client.query(query, &[])).await {
                Err(_) => tally.add("sql hang"),
                Ok(Ok(_)) => tally.add("sql query ok"),
                Ok(Err(e)) => tally.add(format!("sql query {}", sqlstate(&e))),
            }
        }
        drop(client);
    }
}

async fn api_worker(
    base: String,
    token: String,
    households: Arc<Vec<String>>,
    until: Instant,
    tally: Arc<Tally>,
    n: usize,
) {
    let http = reqwest::Client::builder()
        .timeout(HANG)
        .build()
        .expect("client");
    let mut i = n;
    while Instant::now() < until {
        i += 1;
        let path = if i.is_multiple_of(2) {
            format!(
                "/api/v1/households/{}/timeline",
                households[i % households.len()]
            )
        } else {
            "/api/v1/warnings?limit=100".to_string()
        };
        match http
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await
        {
            Err(e) if e.is_timeout() => tally.add("api hang"),
            Err(_) => tally.add("api io error"),
            Ok(r) => {
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                tally.add(format!("api {status}"));
                if status == 503 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let connections = arg("--connections", 200) as usize;
    let requests = arg("--requests", 500) as usize;
    let seconds = arg("--seconds", 60);
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = dir.path().join("lake");
    let users = dir.path().join("users.toml");

    must(
        safetynet(root)
            .args([
                "run",
                "pipelines/sample.toml",
                "--as-of",
                "2026-11-20",
                "--lake",
            ])
            .arg(&lake),
    );
    for (name, role) in [("analyst", "analyst"), ("admin", "admin")] {
        let mut child = safetynet(root)
            .args(["user", "add", "--users"])
            .arg(&users)
            .args(["--name", name, "--role", role])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("user add");
        writeln!(child.stdin.take().expect("stdin"), "{PASSWORD}").expect("password");
        assert!(child.wait().expect("waits").success());
    }
    let token = must(
        safetynet(root)
            .args([
                "token", "create", "--name", "load", "--role", "admin", "--lake",
            ])
            .arg(&lake),
    )
    .trim()
    .to_string();
    let households: Vec<String> = must(
        safetynet(root)
            .args([
                "sql",
                "--format",
                "csv",
                "-c",
                "SELECT household_id FROM roster_household ORDER BY household_id LIMIT 200",
                "--lake",
            ])
            .arg(&lake),
    )
    .lines()
    .skip(1)
    .map(str::to_string)
    .collect();
    let pipeline = dir.path().join("load.toml");
    let text = std::fs::read_to_string(Path::new(root).join("pipelines/sample.toml"))
        .expect("sample pipeline")
        .replace(
            "lake = \"../lake/sample\"",
            &format!("lake = \"{}\"", lake.display()),
        )
        .replace("../", &format!("{root}/"))
        .replace("schedule = [\"0 2 1,11,21 * *\"]", "schedule = []");
    let text = format!(
        "{text}\n[sql]\nlisten = \"127.0.0.1:0\"\nusers = \"{}\"\nstatement_timeout_seconds = 20\n",
        users.display()
    )
    .replacen(
        "name = \"sample\"",
        &format!(
            "name = \"sample\"\nschemas = \"{root}/schemas\"\nlinkage = \"{root}/pipelines/linkage.toml\"\nrules = \"{root}/pipelines/rules\"\nthresholds = \"{root}/pipelines/thresholds.csv\"\npopulation_groups = \"{root}/pipelines/population_groups.csv\""
        ),
        1,
    );
    std::fs::write(&pipeline, text).expect("pipeline");
    let (_service, api_port, sql_port) = serve(root, &pipeline);
    let base = format!("http://127.0.0.1:{api_port}");
    println!(
        "load: {connections} SQL clients and {requests} API clients for {seconds} s against serve (limits: 32 SQL connections, 64 API requests)"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let sql_tally = Arc::new(Tally::default());
        let api_tally = Arc::new(Tally::default());
        let health: Arc<Mutex<Vec<f64>>> = Arc::default();
        let health_bad = Arc::new(Tally::default());
        let started = Instant::now();
        let until = started + Duration::from_secs(seconds);
        let households = Arc::new(households);

        let poller = {
            let (base, health, bad) = (base.clone(), health.clone(), health_bad.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .expect("client");
                while Instant::now() < until {
                    let t = Instant::now();
                    match http.get(format!("{base}/healthz")).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            health.lock().expect("lock").push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        Ok(r) => bad.add(format!("healthz {}", r.status().as_u16())),
                        Err(_) => bad.add("healthz no answer in 5 s"),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let mut workers = Vec::new();
        for _ in 0..connections {
            workers.push(tokio::spawn(sql_worker(sql_port, until, sql_tally.clone())));
        }
        for n in 0..requests {
            workers.push(tokio::spawn(api_worker(
                base.clone(),
                token.clone(),
                households.clone(),
                until,
                api_tally.clone(),
                n,
            )));
        }
        for w in workers {
            let _ = w.await;
        }
        let _ = poller.await;
        let burst = started.elapsed().as_secs_f64();

        // After the burst: how long until a SQL query, an API call and the
        // health check all answer normally?
        let after = Instant::now();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
        let mut recovered = None;
        while after.elapsed() < Duration::from_secs(30) {
            let health = http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success());
            let api = http
                .get(format!("{base}/api/v1/warnings?limit=1"))
                .bearer_auth(&token)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let sql = async {
                let (c, conn) = tokio_postgres::connect(
                    &format!("host=127.0.0.1 port={sql_port} user=analyst password={PASSWORD} dbname=lake"),
                    tokio_postgres::NoTls,
                )
                .await
                .ok()?;
                tokio::spawn(conn);
                c.query_one("SELECT count(*) FROM warnings", &[]).await.ok()
            };
            let sql = tokio::time::timeout(Duration::from_secs(5), sql).await.ok().flatten().is_some();
            if health && api && sql {
                recovered = Some(after.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let mut h = health.lock().expect("lock").clone();
        h.sort_by(f64::total_cmp);
        println!("burst ran {burst:.1} s");
        println!("SQL: {}", sql_tally.show());
        println!("API: {}", api_tally.show());
        println!(
            "/healthz: {} answers, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; failures: {}",
            h.len(),
            percentile(&h, 0.5),
            percentile(&h, 0.99),
            h.last().copied().unwrap_or(f64::NAN),
            match health_bad.show() {
                s if s.is_empty() => "none".into(),
                s => s,
            }
        );
        match recovered {
            Some(s) => println!("normal answers {s:.2} s after the burst"),
            None => println!("NOT RECOVERED within 30 s of the burst"),
        }
        let hangs = sql_tally.get("sql hang") + api_tally.get("api hang");
        let p99 = percentile(&h, 0.99);
        let ok = hangs == 0 && p99 < 200.0 && recovered.is_some_and(|s| s < 5.0);
        println!(
            "bars: hangs {hangs} (0) · healthz p99 {p99:.1} ms (< 200) · recovery {} (< 5 s) → {}",
            recovered.map_or("none".to_string(), |s| format!("{s:.2} s")),
            if ok { "met" } else { "NOT MET" }
        );
    });
}
