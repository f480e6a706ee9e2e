//! The pipeline on two `safetynet worker` processes on localhost gives the
//! same links and warnings as the local engine, its queries reach the
//! workers, and a dead worker stops a run with an error naming it, never
//! with wrong rows.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use crate::common::*;

/// The coordinator: tasks of 1 byte, so that this small lake is spread
/// over the workers rather than planned as one local task.
fn coordinator(workers: &str) -> std::process::Command {
    let mut cmd = bin();
    cmd.env("SAFETYNET_BYTES_PER_TASK", "1")
        .args(["--workers", workers]);
    cmd
}

/// A worker process, stopped when dropped.
struct WorkerProcess {
    child: Child,
    url: String,
}

impl WorkerProcess {
    /// Start a worker on a free port and wait for its "listening" line.
    fn start() -> WorkerProcess {
        let mut child = bin()
            .args(["worker", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the worker starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("worker listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        WorkerProcess { child, url }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn two_workers_link_and_warn_as_the_local_engine_does() {
    let tmp = tempfile::tempdir().unwrap();
    let file = pipeline_file(tmp.path(), 200, "");
    let mut workers = [WorkerProcess::start(), WorkerProcess::start()];
    let listed = format!("{},{}", workers[0].url, workers[1].url);

    let local = tmp.path().join("lake_local").to_string_lossy().into_owned();
    let spread = tmp
        .path()
        .join("lake_workers")
        .to_string_lossy()
        .into_owned();
    let args = |lake: &str| -> Vec<String> {
        [
            "run",
            &file.to_string_lossy(),
            "--lake",
            lake,
            "--as-of",
            "2026-11-20",
        ]
        .map(String::from)
        .to_vec()
    };
    ok(bin().args(args(&local)));
    let out = ok(coordinator(&listed).args(args(&spread)));
    assert!(out.contains("linked 关联"), "{out}");

    let (a, b) = (
        link_and_warning_outcome(&local),
        link_and_warning_outcome(&spread),
    );
    assert!(a[1].len() > 100, "health links: {}", a[1].len());
    assert!(!a[4].is_empty(), "some warnings");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "table {i} differs between the engines");
    }

    // A dead worker: the run fails naming it; the lake keeps the last
    // good run's rows.
    workers[1].stop();
    let out = run(coordinator(&listed)
        .args(args(&spread))
        .args(["--wait", "0"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Distributed DataFusion worker") && err.contains(&workers[1].url),
        "{err}"
    );
    assert_eq!(link_and_warning_outcome(&spread), b);

    // An analyst's query goes to the workers too: with one of them gone it
    // fails naming it (DataFusion's EXPLAIN shows the plan before the
    // distributed planner cuts it, so the failure is the evidence).
    let out = run(coordinator(&listed).args([
        "sql",
        "--lake",
        &spread,
        "-c",
        "SELECT count(*) FROM link_health h JOIN roster_person p ON h.person_id = p.person_id",
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&workers[1].url), "{err}");
    // ...and with the survivor alone it answers.
    let alone = sql_with(
        &mut coordinator(&workers[0].url),
        &spread,
        "SELECT count(*) FROM link_health h JOIN roster_person p ON h.person_id = p.person_id",
    );
    assert_eq!(
        alone,
        sql(
            &local,
            "SELECT count(*) FROM link_health h JOIN roster_person p ON h.person_id = p.person_id"
        )
    );

    // Asking for the Delta scan with workers is refused, not ignored.
    let out = run(bin()
        .env("SAFETYNET_SCAN", "delta")
        .args(["--workers", &workers[0].url])
        .args(["sql", "--lake", &spread, "-c", "SELECT 1"]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with workers"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bad_worker_address_is_refused_before_anything_runs() {
    let out = run(bin().args(["--workers", "ftp://x:1", "runs", "--lake", "/nonexistent"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--workers") && err.contains("bad worker address"),
        "{err}"
    );
}
