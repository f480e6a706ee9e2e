//! Ingest from and into a local S3-compatible server (moto), through the
//! same object_store code the data office's buckets use.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start moto on a free loopback port. Outside CI a machine without moto
/// skips the test with a note; in CI (CI=true) a missing server is a failure.
fn start_s3() -> Option<S3Server> {
    let has_moto = Command::new("python3")
        .args(["-c", "import moto.server, boto3"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_moto {
        if std::env::var("CI").is_ok() {
            panic!("moto is not installed: pip install 'moto[server]'");
        }
        eprintln!("skipping: moto is not installed (pip install 'moto[server]')");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    let server = S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}

fn with_s3_env(cmd: &mut Command, endpoint: &str) {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ALLOW_HTTP", "true");
}

/// Upload local files into a new bucket with boto3 (the test's own set-up).
fn upload(endpoint: &str, bucket: &str, files: &[(&std::path::Path, &str)]) {
    let mut script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')\ns3.create_bucket(Bucket='{bucket}')\n"
    );
    for (path, key) in files {
        script.push_str(&format!(
            "s3.upload_file(r'{}', '{bucket}', '{key}')\n",
            path.display()
        ));
    }
    let status = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
}

fn object_exists(endpoint: &str, bucket: &str, key: &str) -> bool {
    let script = format!(
        "import boto3,sys\ns3 = boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')\n\
         sys.exit(0 if s3.list_objects_v2(Bucket='{bucket}', Prefix='{key}').get('KeyCount', 0) > 0 else 1)\n"
    );
    Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap()
        .success()
}

#[test]
fn ingest_from_s3_into_a_lake_on_s3() {
    let Some(server) = start_s3() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 40, &[]);
    upload(
        &server.endpoint,
        "county",
        &[
            (&data.join("roster.csv"), "incoming/roster/roster.csv"),
            (&data.join("health.csv"), "incoming/health/2026-10.csv"),
            (
                &repo().join("sample_data/health_broken.csv"),
                "incoming/health/2026-11.csv",
            ),
        ],
    );
    let lake = "s3://county/lake";
    for (source, input) in [
        ("roster", "s3://county/incoming/roster/roster.csv"),
        ("health", "s3://county/incoming/health/*.csv"),
    ] {
        let mut cmd = bin();
        with_s3_env(&mut cmd, &server.endpoint);
        ok(cmd.args(["ingest", "--lake", lake, "--source", source, input]));
    }
    let query = |sql_text: &str| {
        let mut cmd = bin();
        with_s3_env(&mut cmd, &server.endpoint);
        sql_with(&mut cmd, lake, sql_text)
    };
    let health_rows = csv_rows(&data.join("health.csv")) as i64;
    let batches = query(
        "SELECT file_name, rows_read, rows_staged + rows_quarantined FROM batches WHERE source = 'health' ORDER BY file_name",
    );
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0][0], "s3://county/incoming/health/2026-10.csv");
    assert_eq!(batches[0][1], health_rows.to_string());
    assert_eq!(batches[1][1], batches[1][2]);
    let staged: i64 = query("SELECT count(*) FROM staged_health")[0][0]
        .parse()
        .unwrap();
    let quarantined: i64 = query("SELECT count(*) FROM quarantine_health")[0][0]
        .parse()
        .unwrap();
    let read: i64 = query("SELECT sum(rows_read) FROM batches WHERE source = 'health'")[0][0]
        .parse()
        .unwrap();
    assert_eq!(staged + quarantined, read);
    assert!(quarantined > 0);
    let persons: i64 = query("SELECT count(*) FROM roster_person")[0][0]
        .parse()
        .unwrap();
    assert_eq!(persons, csv_rows(&data.join("roster.csv")) as i64);
    assert!(object_exists(
        &server.endpoint,
        "county",
        "lake/raw/health/"
    ));
    assert!(object_exists(
        &server.endpoint,
        "county",
        "lake/staged_health/_delta_log/"
    ));

    // Re-ingesting from the bucket is a no-op.
    let mut cmd = bin();
    with_s3_env(&mut cmd, &server.endpoint);
    let out = ok(cmd.args([
        "ingest",
        "--lake",
        lake,
        "--source",
        "health",
        "s3://county/incoming/health/*.csv",
    ]));
    assert!(out.contains("already ingested"), "{out}");
}

/// The rows of each query, sorted: the same lake content gives the same.
fn table_rows(query: &dyn Fn(&str) -> Vec<Vec<String>>, sql_text: &str) -> Vec<Vec<String>> {
    let mut rows = query(sql_text);
    rows.sort();
    rows
}

/// The whole pipeline (ingest, link, warn) gives the same tables on a lake
/// in a local directory and on a lake in an S3 bucket, and a second run on
/// the bucket changes nothing: the lake code is one code for both.
#[test]
fn the_pipeline_gives_the_same_tables_on_a_local_directory_and_on_s3() {
    let Some(server) = start_s3() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = pipeline_file(tmp.path(), 150, "");
    upload(&server.endpoint, "province", &[]);
    let local = tmp.path().join("lake").display().to_string();
    let remote = "s3://province/lake".to_string();
    let lake_cmd = |lake: &str| {
        let mut cmd = bin();
        if lake.starts_with("s3://") {
            with_s3_env(&mut cmd, &server.endpoint);
        }
        cmd
    };
    for lake in [&local, &remote] {
        ok(lake_cmd(lake)
            .args(["run", "--lake", lake, "--as-of", "2026-11-20"])
            .arg(&pipeline));
    }
    let queries = [
        "SELECT source, rows_read, rows_staged, rows_quarantined FROM batches",
        "SELECT person_id, household_id, name FROM roster_person",
        "SELECT settlement_id, status, person_id, CAST(round(match_weight, 6) AS VARCHAR) FROM link_health",
        "SELECT record_id, status, person_id FROM link_civil_affairs",
        "SELECT student_id, status, person_id FROM link_education",
        "SELECT household_id, kind, risk_type, severity, status, CAST(round(estimate_per_capita, 2) AS VARCHAR) FROM warnings",
        "SELECT event, CAST(count(*) AS VARCHAR) FROM warning_events GROUP BY event",
    ];
    let contents = |lake: &str| -> Vec<Vec<Vec<String>>> {
        let query = |q: &str| sql_with(&mut lake_cmd(lake), lake, q);
        queries.iter().map(|q| table_rows(&query, q)).collect()
    };
    let on_disk = contents(&local);
    let on_s3 = contents(&remote);
    for ((q, disk), s3) in queries.iter().zip(&on_disk).zip(&on_s3) {
        assert!(!disk.is_empty(), "the run filled: {q}");
        assert_eq!(disk, s3, "{q}");
    }
    assert!(object_exists(
        &server.endpoint,
        "province",
        "lake/warnings/_delta_log/"
    ));

    // A second run over the unchanged bucket changes nothing.
    let again = ok(lake_cmd(&remote)
        .args(["run", "--lake", &remote, "--as-of", "2026-11-20"])
        .arg(&pipeline));
    assert!(again.contains("already ingested"), "{again}");
    assert_eq!(contents(&remote), on_s3);
}
