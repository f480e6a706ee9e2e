//! Ingest from and into a local S3-compatible server (moto), through the
//! same object_store code the data office's buckets use.

use crate::backends::{object_exists, start_s3, upload, with_s3_env};
use crate::common::*;

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
