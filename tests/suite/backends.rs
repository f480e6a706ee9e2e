//! The two places a lake can live, for the lake tests: a local directory
//! and a bucket on a local S3-compatible server (moto), as delta-rs's
//! shared integration harness does. A test written against [`TestLake`]
//! runs unchanged on both; [`backends`] lists the ones this machine has.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A moto server on a loopback port, stopped when dropped.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start moto on a free loopback port. Outside CI a machine without moto
/// skips the S3 half with a note; in CI (CI=true) a missing server is a
/// failure.
pub fn start_s3() -> Option<S3Server> {
    let has_moto = Command::new("python3")
        .args(["-c", "import moto.server, boto3"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_moto {
        if std::env::var("CI").is_ok() {
            panic!("moto is not installed: pip install 'moto[server]'");
        }
        eprintln!("skipping S3: moto is not installed (pip install 'moto[server]')");
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

/// The environment the binary reads S3 settings from.
pub fn with_s3_env(cmd: &mut Command, endpoint: &str) {
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ALLOW_HTTP", "true");
}

fn boto3(endpoint: &str, body: &str) -> std::process::Output {
    let script = format!(
        "import boto3,sys\ns3 = boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')\n{body}"
    );
    Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs")
}

/// Upload local files into a new bucket with boto3 (the test's own set-up).
pub fn upload(endpoint: &str, bucket: &str, files: &[(&Path, &str)]) {
    let mut body = format!("s3.create_bucket(Bucket='{bucket}')\n");
    for (path, key) in files {
        body.push_str(&format!(
            "s3.upload_file(r'{}', '{bucket}', '{key}')\n",
            path.display()
        ));
    }
    let out = boto3(endpoint, &body);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether any object's key starts with `key`.
pub fn object_exists(endpoint: &str, bucket: &str, key: &str) -> bool {
    boto3(
        endpoint,
        &format!(
            "sys.exit(0 if s3.list_objects_v2(Bucket='{bucket}', Prefix='{key}').get('KeyCount', 0) > 0 else 1)\n"
        ),
    )
    .status
    .success()
}

/// Where a lake lives.
pub enum Backend {
    /// A directory on this machine.
    Local,
    /// A bucket on a moto server.
    S3(S3Server),
}

/// The bucket every S3 test lake is made in.
const BUCKET: &str = "lakes";

impl Backend {
    /// `local` or `s3`, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::S3(_) => "s3",
        }
    }

    /// A new, empty lake called `name`: under `tmp` for a local lake, under
    /// a prefix of `tmp`'s own name in the bucket for S3.
    pub fn lake(&self, tmp: &Path, name: &str) -> TestLake {
        match self {
            Backend::Local => TestLake {
                url: tmp.join(name).display().to_string(),
                endpoint: None,
            },
            Backend::S3(server) => {
                let prefix = tmp.file_name().unwrap().to_string_lossy();
                TestLake {
                    url: format!("s3://{BUCKET}/{prefix}/{name}"),
                    endpoint: Some(server.endpoint.clone()),
                }
            }
        }
    }
}

/// Every backend this machine can run: a local directory always, and S3
/// when moto is installed (in CI it must be).
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Local];
    if let Some(server) = start_s3() {
        upload(&server.endpoint, BUCKET, &[]);
        out.push(Backend::S3(server));
    }
    out
}

/// A lake a test works on, wherever it lives.
pub struct TestLake {
    /// The lake's location as `--lake` takes it.
    pub url: String,
    endpoint: Option<String>,
}

impl TestLake {
    /// The binary, with the settings this lake's store needs.
    pub fn cmd(&self) -> Command {
        let mut cmd = bin();
        if let Some(endpoint) = &self.endpoint {
            with_s3_env(&mut cmd, endpoint);
        }
        cmd
    }

    /// Rows of a query, as strings.
    pub fn sql(&self, query: &str) -> Vec<Vec<String>> {
        sql_with(&mut self.cmd(), &self.url, query)
    }

    /// A query's single number.
    pub fn count(&self, query: &str) -> i64 {
        self.sql(query)[0][0].parse().expect("a count")
    }

    /// Ingest `inputs` as `source`, insisting on success.
    pub fn ingest_ok(&self, source: &str, inputs: &[&Path]) -> String {
        ok(self
            .cmd()
            .args(["ingest", "--lake", &self.url, "--source", source])
            .args(inputs))
    }

    /// Each table's number of Delta log entries, but `runs` and
    /// `audit_log` (which grow by design): a write to any other table
    /// changes this.
    pub fn versions(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = match &self.endpoint {
            None => std::fs::read_dir(&self.url)
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("_delta_log").is_dir())
                .map(|e| {
                    let n = std::fs::read_dir(e.path().join("_delta_log"))
                        .unwrap()
                        .count();
                    (e.file_name().to_string_lossy().into_owned(), n)
                })
                .collect(),
            Some(endpoint) => {
                let prefix = self.url.trim_start_matches(&format!("s3://{BUCKET}/"));
                let out = boto3(
                    endpoint,
                    &format!(
                        "import collections\nn = collections.Counter()\n\
                         for page in s3.get_paginator('list_objects_v2').paginate(Bucket='{BUCKET}', Prefix='{prefix}/'):\n\
                         \x20   for o in page.get('Contents', []):\n\
                         \x20       parts = o['Key'][len('{prefix}/'):].split('/')\n\
                         \x20       if len(parts) > 2 and parts[1] == '_delta_log': n[parts[0]] += 1\n\
                         for t, c in n.items(): print(t, c)\n"
                    ),
                );
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter_map(|l| {
                        let (t, n) = l.split_once(' ')?;
                        Some((t.to_string(), n.parse().ok()?))
                    })
                    .collect()
            }
        };
        out.retain(|(t, _)| t != "runs" && t != "audit_log");
        out.sort();
        out
    }
}
