//! Whole runs: `safetynet run` on generated data, re-runs, crashes at each
//! stage, the run lock and the runs table.

use std::path::{Path, PathBuf};

use crate::backends::{Backend, TestLake, backends};
use crate::common::*;

fn pipeline(tmp: &Path) -> PathBuf {
    pipeline_file(tmp, 150, "")
}

fn run_pipeline(file: &Path, lake: &TestLake, failpoint: Option<&str>) -> std::process::Output {
    let mut cmd = lake.cmd();
    cmd.arg("run")
        .arg(file)
        .args(["--lake", &lake.url, "--as-of", "2026-11-20"]);
    if let Some(f) = failpoint {
        cmd.env("SAFETYNET_FAILPOINT", f);
    }
    run(&mut cmd)
}

/// What a user would compare between two lakes: every data table's rows.
fn snapshot(lake: &TestLake) -> Vec<(String, Vec<Vec<String>>)> {
    let queries = [
        (
            "batches",
            "SELECT batch_id, rows_read, rows_staged, rows_quarantined FROM batches ORDER BY batch_id",
        ),
        ("staged_health", "SELECT count(*) FROM staged_health"),
        (
            "quarantine_health",
            "SELECT count(*) FROM quarantine_health",
        ),
        (
            "roster_person",
            "SELECT person_id, household_id FROM roster_person ORDER BY person_id",
        ),
        (
            "link_health",
            "SELECT settlement_id, person_id, status FROM link_health ORDER BY settlement_id",
        ),
        (
            "link_civil_affairs",
            "SELECT record_id, person_id, status FROM link_civil_affairs ORDER BY record_id",
        ),
        (
            "warnings",
            "SELECT warning_id, status, evidence_hash FROM warnings ORDER BY warning_id",
        ),
        (
            "warning_events",
            "SELECT event_id, event FROM warning_events ORDER BY event_id",
        ),
    ];
    queries
        .iter()
        .map(|(name, q)| (name.to_string(), lake.sql(q)))
        .collect()
}

/// A full run, a re-run that changes nothing, and a run killed in each
/// stage then re-run, on a local lake and on a lake in an S3 bucket: every
/// one ends with the tables of the first local run.
#[test]
fn full_run_rerun_and_crashes_on_every_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let file = pipeline(tmp.path());
    let mut expected = None;
    for backend in backends() {
        let name = backend.name();
        let reference = run_reference(&file, &backend, tmp.path());
        let tables = snapshot(&reference);
        let expected = expected.get_or_insert_with(|| tables.clone());
        assert_eq!(
            &tables, expected,
            "{name}: the same tables as the local run"
        );

        // A second run with no new files changes no data table.
        let before = reference.versions();
        assert!(
            before.iter().any(|(t, _)| t == "warnings"),
            "{name}: {before:?}"
        );
        let out = run_pipeline(&file, &reference, None);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(reference.versions(), before, "{name}");
        assert_eq!(
            reference.count("SELECT count(DISTINCT run_id) FROM runs"),
            2,
            "{name}"
        );
        let listing = ok(reference.cmd().args(["runs", "--lake", &reference.url]));
        assert!(
            listing.contains("ingest") && listing.contains("warn"),
            "{name}: {listing}"
        );

        // Killed in each stage, then re-run: the same tables as without a crash.
        for point in [
            "ingest:after-staged-commit",
            "roster:after-household",
            "run:after-link",
            "warn:after-events",
        ] {
            let lake = backend.lake(tmp.path(), &format!("{name}_{}", point.replace(':', "_")));
            let out = run_pipeline(&file, &lake, Some(point));
            assert!(
                !out.status.success(),
                "{name} {point}: the run should have died"
            );
            let out = run_pipeline(&file, &lake, None);
            assert!(
                out.status.success(),
                "{name} {point}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(&snapshot(&lake), expected, "{name} {point}");
        }
    }
}

/// A full run end to end on `backend`, recorded stage by stage.
fn run_reference(file: &Path, backend: &Backend, tmp: &Path) -> TestLake {
    let reference = backend.lake(tmp, &format!("{}_reference", backend.name()));
    let out = run_pipeline(file, &reference, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("top warnings") && text.contains("linked 关联"),
        "{text}"
    );
    let stages = reference.sql("SELECT stage, status FROM runs ORDER BY started_at");
    assert_eq!(
        stages,
        vec![
            vec!["ingest".to_string(), "ok".into()],
            vec!["link".into(), "ok".into()],
            vec!["warn".into(), "ok".into()]
        ]
    );
    assert!(reference.count("SELECT count(*) FROM warnings") > 0);
    // The link stage's row carries the model's expected precision and
    // recall over every source it linked.
    let expected =
        reference.sql("SELECT expected_precision, expected_recall FROM runs WHERE stage = 'link'");
    for figure in &expected[0] {
        let value: f64 = figure.parse().unwrap_or(-1.0);
        assert!((0.5..=1.0).contains(&value), "{expected:?}");
    }
    // And what the records whose ID number was hidden showed of the links
    // made without one, over the sources that have such records.
    let calibrated = reference.sql(
        "SELECT calibrated_precision_without_id, calibrated_recall_without_id FROM runs WHERE stage = 'link'",
    );
    let per_source = reference.count(
        "SELECT count(*) FROM link_history WHERE calibrated_precision_without_id IS NOT NULL",
    );
    assert!(per_source > 0);
    for figure in &calibrated[0] {
        let value: f64 = figure.parse().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&value), "{calibrated:?}");
    }
    reference
}

/// One run at a time: a live lock refuses, a dead holder's lock is taken
/// over, and of two processes started together one runs.
#[test]
fn one_run_holds_the_lake_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let file = pipeline(tmp.path());
    let lake = run_reference(&file, &Backend::Local, tmp.path());
    let reference = lake.url.clone();

    // One run at a time: a live lock refuses with a clear message…
    let locks = Path::new(&reference).join("_locks");
    std::fs::create_dir_all(&locks).unwrap();
    let lease = |minutes: i64| {
        let now = chrono::Utc::now();
        format!(
            r#"{{"holder":"another run","pid":1,"since":"{}","expires":"{}"}}"#,
            now.to_rfc3339(),
            (now + chrono::Duration::minutes(minutes)).to_rfc3339()
        )
    };
    std::fs::write(locks.join("run.json"), lease(10)).unwrap();
    let out = run_pipeline(&file, &lake, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another run holds this lake") && err.contains("another run"),
        "{err}"
    );
    // …and a lock whose holder died (lease expired) is taken over.
    std::fs::write(locks.join("run.json"), lease(-1)).unwrap();
    let out = run_pipeline(&file, &lake, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!locks.join("run.json").exists(), "released after the run");

    // Two processes at once: one runs, the other exits with the message.
    let mut first = bin();
    first
        .env("SAFETYNET_PAUSE_AFTER_LOCK_MS", "3000")
        .arg("run")
        .arg(&file)
        .args(["--lake", &reference, "--as-of", "2026-11-20"]);
    let mut a = first
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !locks.join("run.json").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = run_pipeline(&file, &lake, None);
    let status = a.wait().unwrap();
    assert!(status.success());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another run holds this lake"));
}

/// `serve` runs a missed scheduled run at once, does not repeat it on the
/// next start, and stops cleanly on SIGTERM.
#[test]
fn serve_catches_up_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let file = pipeline(tmp.path());
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "name = \"test\"",
        "name = \"test\"\nschedule = [\"0 3 * * *\"]",
    );
    std::fs::write(&file, text).unwrap();
    let lake = tmp.path().join("lake").display().to_string();

    let start = || {
        let mut cmd = bin();
        cmd.env("SAFETYNET_LOG", "safetynet=info")
            .arg("serve")
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let stop = |child: &mut std::process::Child| {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = child.wait().unwrap();
        let mut log = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
        (status, log)
    };
    let runs = || -> i64 {
        let out = run(bin().args([
            "sql",
            "--lake",
            &lake,
            "--format",
            "csv",
            "-c",
            "SELECT count(*) FROM runs WHERE stage = 'warn'",
        ]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0)
    };

    let mut first = start();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while runs() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the missed run did not happen"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let (status, log) = stop(&mut first);
    assert!(status.success(), "{log}");
    assert!(
        log.contains("catching up a missed run") && log.contains("service stopped"),
        "{log}"
    );

    // Started again right away: nothing was missed, so it waits; SIGTERM ends it.
    let mut second = start();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (status, log) = stop(&mut second);
    assert!(status.success(), "{log}");
    assert!(
        log.contains("waiting for the next scheduled run") && !log.contains("catching up"),
        "{log}"
    );
    assert_eq!(runs(), 1);
}
