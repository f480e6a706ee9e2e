//! Whole runs: `safetynet run` on generated data, re-runs, crashes at each
//! stage, the run lock and the runs table.

use std::path::{Path, PathBuf};

use crate::common::*;

fn pipeline(tmp: &Path) -> PathBuf {
    pipeline_file(tmp, 150, "")
}

fn run_pipeline(file: &Path, lake: &str, failpoint: Option<&str>) -> std::process::Output {
    let mut cmd = bin();
    cmd.arg("run")
        .arg(file)
        .args(["--lake", lake, "--as-of", "2026-11-20"]);
    if let Some(f) = failpoint {
        cmd.env("SAFETYNET_FAILPOINT", f);
    }
    run(&mut cmd)
}

/// What a user would compare between two lakes: every data table's rows.
fn snapshot(lake: &str) -> Vec<(String, Vec<Vec<String>>)> {
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
        .map(|(name, q)| (name.to_string(), sql(lake, q)))
        .collect()
}

/// Delta log versions of every table but `runs` and `audit_log`.
fn versions(lake: &str) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = std::fs::read_dir(lake)
        .unwrap()
        .filter_map(|e| e.ok())
        // `runs` grows by design, and `audit_log` with every `sql` call.
        .filter(|e| {
            e.path().join("_delta_log").is_dir()
                && e.file_name() != "runs"
                && e.file_name() != "audit_log"
        })
        .map(|e| {
            let n = std::fs::read_dir(e.path().join("_delta_log"))
                .unwrap()
                .count();
            (e.file_name().to_string_lossy().into_owned(), n)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn full_run_rerun_crashes_and_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let file = pipeline(tmp.path());

    // A full run end to end, recorded stage by stage.
    let reference = tmp.path().join("reference").display().to_string();
    let out = run_pipeline(&file, &reference, None);
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
    let stages = sql(
        &reference,
        "SELECT stage, status FROM runs ORDER BY started_at",
    );
    assert_eq!(
        stages,
        vec![
            vec!["ingest".to_string(), "ok".into()],
            vec!["link".into(), "ok".into()],
            vec!["warn".into(), "ok".into()]
        ]
    );
    assert!(count(&reference, "SELECT count(*) FROM warnings") > 0);
    let expected = snapshot(&reference);

    // A second run with no new files changes no data table.
    let before = versions(&reference);
    let out = run_pipeline(&file, &reference, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(versions(&reference), before);
    assert_eq!(
        count(&reference, "SELECT count(DISTINCT run_id) FROM runs"),
        2
    );
    let listing = ok(bin().args(["runs", "--lake", &reference]));
    assert!(
        listing.contains("ingest") && listing.contains("warn"),
        "{listing}"
    );

    // Killed in each stage, then re-run: the same tables as without a crash.
    for point in [
        "ingest:after-staged-commit",
        "roster:after-household",
        "run:after-link",
        "warn:after-events",
    ] {
        let lake = tmp
            .path()
            .join(point.replace(':', "_"))
            .display()
            .to_string();
        let out = run_pipeline(&file, &lake, Some(point));
        assert!(!out.status.success(), "{point}: the run should have died");
        let out = run_pipeline(&file, &lake, None);
        assert!(
            out.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(snapshot(&lake), expected, "{point}");
    }

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
    let out = run_pipeline(&file, &reference, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another run holds this lake") && err.contains("another run"),
        "{err}"
    );
    // …and a lock whose holder died (lease expired) is taken over.
    std::fs::write(locks.join("run.json"), lease(-1)).unwrap();
    let out = run_pipeline(&file, &reference, None);
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
    let out = run_pipeline(&file, &reference, None);
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
