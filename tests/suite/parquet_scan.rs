//! The lake read as the plain Parquet files of each Delta snapshot
//! (`SAFETYNET_SCAN=parquet`, the scan a distributed engine can ship to
//! its workers) gives the same links and warnings as delta-rs's own scan.

use crate::common::*;

#[test]
fn the_lake_read_as_parquet_files_links_and_warns_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let file = pipeline_file(tmp.path(), 200, "");
    let mut outcomes = Vec::new();
    for scan in ["delta", "parquet"] {
        let lake = tmp.path().join(format!("lake_{scan}"));
        let lake = lake.to_string_lossy().into_owned();
        let out = ok(bin()
            .env("SAFETYNET_SCAN", scan)
            .arg("run")
            .arg(&file)
            .args(["--lake", &lake, "--as-of", "2026-11-20"]));
        assert!(out.contains("linked 关联"), "{scan}: {out}");
        outcomes.push(link_and_warning_outcome(&lake));
    }
    let (delta, parquet) = (&outcomes[0], &outcomes[1]);
    assert!(delta[1].len() > 100, "health links: {}", delta[1].len());
    assert!(!delta[4].is_empty(), "some warnings");
    for (i, (a, b)) in delta.iter().zip(parquet).enumerate() {
        assert_eq!(a, b, "table {i} differs between the scans");
    }

    // The plans say which scan read the tables: no Delta scan is left for
    // a worker to be unable to run.
    let lake = tmp.path().join("lake_delta").to_string_lossy().into_owned();
    let plan = |scan: &str| {
        sql_with(
            bin().env("SAFETYNET_SCAN", scan),
            &lake,
            "EXPLAIN SELECT count(*) FROM link_health WHERE status = 'linked'",
        )
        .concat()
        .concat()
    };
    let (delta_plan, parquet_plan) = (plan("delta"), plan("parquet"));
    assert!(delta_plan.contains("DeltaScan"), "{delta_plan}");
    assert!(!parquet_plan.contains("DeltaScan"), "{parquet_plan}");
    assert!(parquet_plan.contains("file_type=parquet"), "{parquet_plan}");

    // A name the program does not know is refused, not ignored.
    let out = run(bin()
        .env("SAFETYNET_SCAN", "files")
        .args(["sql", "--lake", &lake, "-c", "SELECT 1"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SAFETYNET_SCAN must be 'delta' or 'parquet'"),
        "{err}"
    );
}
