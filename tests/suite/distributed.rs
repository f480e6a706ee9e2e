//! The pipeline on two `safetynet worker` processes on localhost, over a
//! lake of more than 50,000 roster people, gives the same links and
//! warnings as the local engine; its plans show stages run as tasks on the
//! workers; and a worker stopped mid-run stops the run with an error naming
//! it, never with wrong rows.

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Stdio};

use crate::backends::{object_exists, start_s3, upload, with_s3_env};
use crate::common::*;

/// Households generated: enough for more than 50,000 roster people, the
/// size the issue asks the engines to agree on.
const HOUSEHOLDS: usize = 14_500;

/// The coordinator: tasks of 256 KiB of Parquet, so that this lake's
/// tables are cut into several tasks and spread over the workers rather
/// than planned as one local task (the default is 16 MiB).
fn coordinator(workers: &str) -> std::process::Command {
    let mut cmd = bin();
    cmd.env("SAFETYNET_BYTES_PER_TASK", "262144")
        .args(["--workers", workers]);
    cmd
}

/// A worker process, stopped when dropped.
struct WorkerProcess {
    child: Child,
    url: String,
    /// Its stdout after the "listening" line, kept open for its report.
    stdout: Lines<BufReader<ChildStdout>>,
}

impl WorkerProcess {
    /// Start a worker on a free port and wait for its "listening" line.
    fn start() -> WorkerProcess {
        WorkerProcess::start_with(&mut bin())
    }

    /// [`WorkerProcess::start`] with `cmd`'s environment.
    fn start_with(cmd: &mut std::process::Command) -> WorkerProcess {
        let mut child = cmd
            .args(["worker", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the worker starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = stdout.next().unwrap().unwrap();
        let url = line
            .trim()
            .strip_prefix("worker listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        WorkerProcess { child, url, stdout }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop it as an operator would (SIGTERM) and return what it said it
    /// sent and received: `(sent, received)` bytes.
    fn stop_and_report(&mut self) -> (u64, u64) {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped.
        let signalled = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(signalled, 0, "SIGTERM to the worker");
        let said: Vec<String> = self.stdout.by_ref().map(Result::unwrap).collect();
        assert!(self.child.wait().unwrap().success(), "{said:?}");
        let report = said
            .iter()
            .find(|l| l.starts_with(&format!("worker on {} stopped: sent ", self.url)))
            .unwrap_or_else(|| panic!("no traffic report in {said:?}"));
        let number_after = |word: &str| -> u64 {
            let rest = &report[report.find(word).unwrap() + word.len()..];
            rest.split(' ').next().unwrap().parse().unwrap()
        };
        (number_after("sent "), number_after("received "))
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Run `cmd` with its log on, and stop `worker` as soon as the log says
/// `moment`; return the exit status and the log.
fn stop_worker_when(
    cmd: &mut std::process::Command,
    moment: &[&str],
    worker: &mut WorkerProcess,
) -> (std::process::ExitStatus, String) {
    let mut child = cmd
        .env("SAFETYNET_LOG", "safetynet=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the coordinator starts");
    let mut log = String::new();
    let mut stopped = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if !stopped && moment.iter().all(|m| line.contains(m)) {
            worker.stop();
            stopped = true;
        }
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(stopped, "the log never said {moment:?}:\n{log}");
    (status, log)
}

const JOIN: &str =
    "SELECT count(*) FROM link_health h JOIN roster_person p ON h.person_id = p.person_id";

#[test]
fn two_workers_link_and_warn_as_the_local_engine_does() {
    let tmp = tempfile::tempdir().unwrap();
    let file = pipeline_file(tmp.path(), HOUSEHOLDS, "");
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
            "--wait",
            "0",
        ]
        .map(String::from)
        .to_vec()
    };
    ok(bin().args(args(&local)));
    let a = link_and_warning_outcome(&local);
    let people = count(&local, "SELECT count(*) FROM roster_person");
    assert!(people >= 50_000, "roster people: {people}");
    assert!(a[1].len() > 10_000, "health links: {}", a[1].len());
    assert!(!a[4].is_empty(), "some warnings");

    // A worker stopped mid-run: the run fails naming it, and every table
    // it committed before the failure holds the local engine's rows.
    let (status, log) = stop_worker_when(
        coordinator(&listed).args(args(&spread)),
        &["linking", "education"],
        &mut workers[1],
    );
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("the worker at {}", workers[1].url))
            && log.contains("cannot be reached")
            && log.contains("rerun"),
        "{log}"
    );
    let mut committed = 0;
    for (query, expected) in outcome_queries().iter().zip(&a) {
        let out = run(bin().args(["sql", "--lake", &spread, "--format", "csv", "-c", query]));
        if out.status.success() {
            committed += 1;
            assert_eq!(&sql(&spread, query), expected, "{query}");
        }
    }
    assert!(committed < a.len(), "the run stopped before its end");

    // With a worker in its place, the rerun completes the lake, equal to
    // the local engine's row for row.
    workers[1] = WorkerProcess::start();
    let listed = format!("{},{}", workers[0].url, workers[1].url);
    let out = ok(coordinator(&listed).args(args(&spread)));
    assert!(out.contains("linked 关联"), "{out}");
    let b = link_and_warning_outcome(&spread);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "table {i} differs between the engines");
    }

    // The plan text shows the work on the workers: stages cut into tasks,
    // with what each task did.
    let explained = ok(coordinator(&listed).args([
        "sql",
        "--lake",
        &spread,
        "-c",
        &format!("EXPLAIN ANALYZE {JOIN}"),
    ]));
    for shown in ["DistributedExec", "Stage 1", "tasks=", "t1: DataSourceExec"] {
        assert!(explained.contains(shown), "{shown} not in:\n{explained}");
    }

    // An analyst's query with a worker gone fails naming it; with the
    // survivor alone it gives the local answer.
    workers[1].stop();
    let out = run(coordinator(&listed).args(["sql", "--lake", &spread, "-c", JOIN]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&workers[1].url), "{err}");
    assert_eq!(
        sql_with(&mut coordinator(&workers[0].url), &spread, JOIN),
        sql(&local, JOIN)
    );

    // A table the workers cannot read (partitioned: its values live in the
    // Delta log) is read on this process, with the reason said, and the
    // answer is the local one.
    let roster_households = sql(&local, "SELECT household_id FROM roster_household");
    for lake in [&local, &spread] {
        write_partitioned_table(&format!("{lake}/county_extra"), &roster_households[..100]);
    }
    let extra = "SELECT count(*) FROM county_extra e JOIN roster_household h \
                 ON e.household_id = h.household_id";
    let out = run(coordinator(&workers[0].url).args(["sql", "--lake", &spread, "-c", extra]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("table county_extra cannot be read by workers")
            && err.contains("partitioned by household_id"),
        "{err}"
    );
    assert_eq!(
        sql_with(&mut coordinator(&workers[0].url), &spread, extra),
        vec![vec!["100".to_string()]]
    );
    assert_eq!(sql(&local, extra), vec![vec!["100".to_string()]]);
    // Stopped as an operator stops it, the worker that served the whole
    // rerun says what went over its connections: megabytes of stage
    // results sent, and the plans it was given. The plans stay small: a
    // table kept in memory (linking's scratch, the warning stage's
    // relations) would travel inside every plan that reads it.
    let (sent, received) = workers[0].stop_and_report();
    assert!(
        sent > 1_000_000 && received > 1_000 && received * 10 < sent,
        "sent {sent}, received {received}"
    );
    workers[0] = WorkerProcess::start();
    // Only the queries that read it stay here: the others of the same lake
    // still go to the workers (two again: one alone takes no stages),
    // without a word about county_extra.
    workers[1] = WorkerProcess::start();
    let listed = format!("{},{}", workers[0].url, workers[1].url);
    let analyse = |query: &str| {
        run(coordinator(&listed).args([
            "sql",
            "--lake",
            &spread,
            "-c",
            &format!("EXPLAIN ANALYZE {query}"),
        ]))
    };
    let elsewhere = analyse(JOIN);
    let (plan, log) = (
        String::from_utf8_lossy(&elsewhere.stdout),
        String::from_utf8_lossy(&elsewhere.stderr),
    );
    assert!(plan.contains("DistributedExec"), "{plan}");
    assert!(!log.contains("county_extra"), "{log}");
    let over_it = analyse(extra);
    let plan = String::from_utf8_lossy(&over_it.stdout);
    assert!(
        over_it.status.success() && !plan.contains("DistributedExec"),
        "{plan}"
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

/// The workers read the lake's tables from the bucket with the S3
/// settings of their own environment (started without them, the same run
/// fails fetching the first table); the coordinator commits to it.
#[test]
fn workers_read_and_the_coordinator_writes_a_lake_on_s3() {
    let Some(server) = start_s3() else { return };
    upload(&server.endpoint, "county", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let file = pipeline_file(tmp.path(), 80, "");
    let s3 = || {
        let mut cmd = bin();
        with_s3_env(&mut cmd, &server.endpoint);
        cmd
    };
    let workers = [
        WorkerProcess::start_with(&mut s3()),
        WorkerProcess::start_with(&mut s3()),
    ];
    let listed = format!("{},{}", workers[0].url, workers[1].url);
    let local = tmp.path().join("lake_local").to_string_lossy().into_owned();
    let lake = "s3://county/lake";
    let run_into = |cmd: &mut std::process::Command, lake: &str| {
        ok(cmd
            .args(["run", &file.to_string_lossy(), "--lake", lake])
            .args(["--as-of", "2026-11-20"]))
    };
    run_into(&mut bin(), &local);
    // Tasks of one byte: every table is read by the workers.
    let mut coordinator = s3();
    coordinator
        .env("SAFETYNET_BYTES_PER_TASK", "1")
        .args(["--workers", &listed]);
    run_into(&mut coordinator, lake);
    assert!(object_exists(
        &server.endpoint,
        "county",
        "lake/warnings/_delta_log/"
    ));
    for (query, expected) in outcome_queries()
        .iter()
        .zip(link_and_warning_outcome(&local))
    {
        let mut cmd = s3();
        cmd.args(["--workers", &listed]);
        assert_eq!(sql_with(&mut cmd, lake, query), expected, "{query}");
    }
}

/// A Delta table at `dir`, partitioned by `household_id`, one row per
/// household given, written as another tool would write it.
fn write_partitioned_table(dir: &str, households: &[Vec<String>]) {
    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    std::fs::create_dir_all(dir).unwrap();
    let ids: Vec<&str> = households.iter().map(|h| h[0].as_str()).collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("household_id", Arc::new(StringArray::from(ids)) as ArrayRef),
        (
            "v",
            Arc::new(Int64Array::from_iter_values(0..households.len() as i64)) as ArrayRef,
        ),
    ])
    .unwrap();
    let url = url::Url::from_directory_path(dir).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        deltalake::DeltaTableBuilder::from_url(url)
            .unwrap()
            .build()
            .unwrap()
            .write(vec![batch])
            .with_partition_columns(["household_id"])
            .await
            .unwrap();
    });
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
    let out = run(bin().env("SAFETYNET_BYTES_PER_TASK", "16M").args([
        "--workers",
        "127.0.0.1:1",
        "runs",
        "--lake",
        "/nonexistent",
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SAFETYNET_BYTES_PER_TASK must be a number of bytes, not '16M'"),
        "{err}"
    );
}
