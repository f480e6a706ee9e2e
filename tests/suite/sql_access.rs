//! `safetynet sql` as analysts use it: read-only (writes and COPY to server
//! files refused), masking by role, region scoping in every table, export
//! rights, and every statement in `audit_log`.

use crate::common::*;

fn lake_with_a_run(tmp: &tempfile::TempDir) -> String {
    let file = pipeline_file(tmp.path(), 150, "");
    let lake = tmp.path().join("lake").display().to_string();
    ok(bin()
        .arg("run")
        .arg(&file)
        .args(["--lake", &lake, "--as-of", "2026-11-20"]));
    lake
}

fn sql_as(lake: &str, role: &str, region: Option<&str>, query: &str) -> std::process::Output {
    let mut cmd = bin();
    cmd.args([
        "sql", "--lake", lake, "--format", "csv", "--role", role, "-c", query,
    ]);
    if let Some(r) = region {
        cmd.args(["--region", r]);
    }
    run(&mut cmd)
}

fn rows_as(lake: &str, role: &str, region: Option<&str>, query: &str) -> Vec<Vec<String>> {
    let out = sql_as(lake, role, region, query);
    assert!(
        out.status.success(),
        "{query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    csv::Reader::from_reader(out.stdout.as_slice())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn writes_and_server_files_are_refused_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake_with_a_run(&tmp);
    let target = tmp.path().join("stolen.csv");
    for statement in [
        format!(
            "COPY (SELECT * FROM roster_person) TO '{}'",
            target.display()
        ),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "DROP TABLE warnings".to_string(),
        "INSERT INTO warnings SELECT * FROM warnings".to_string(),
        format!(
            "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '{}'",
            target.display()
        ),
    ] {
        let out = sql_as(&lake, "admin", None, &statement);
        assert!(!out.status.success(), "{statement} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("read-only"), "{statement}: {err}");
    }
    assert!(!target.exists(), "COPY wrote a server file");
    assert!(count(&lake, "SELECT count(*) FROM warnings") > 0);
    let refused = count(
        &lake,
        "SELECT count(*) FROM audit_log WHERE interface = 'sql' AND outcome = 'error' AND error LIKE '%read-only%'",
    );
    assert_eq!(refused, 5);
    let ok_rows = rows_as(
        &lake,
        "admin",
        None,
        "SELECT user_name, role, rows_returned FROM audit_log WHERE request = 'SELECT count(*) FROM warnings'",
    );
    assert_eq!(ok_rows.len(), 1);
    assert!(ok_rows[0][0].starts_with("os:") && ok_rows[0][1] == "admin" && ok_rows[0][2] == "1");
}

#[test]
fn masking_and_region_scoping_hold_in_every_table() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake_with_a_run(&tmp);
    let county = sql(&lake, "SELECT min(county_code) FROM warnings")[0][0].clone();

    // Analysts see every region with names and ID numbers masked.
    let raw = rows_as(
        &lake,
        "admin",
        None,
        "SELECT name, id_number FROM roster_person ORDER BY person_id LIMIT 20",
    );
    let masked = rows_as(
        &lake,
        "analyst",
        None,
        "SELECT name, id_number FROM roster_person ORDER BY person_id LIMIT 20",
    );
    for (r, m) in raw.iter().zip(&masked) {
        assert!(m[0].ends_with('*') && m[0] != r[0], "{m:?}");
        assert_eq!(m[1].len(), r[1].len());
        assert_eq!(
            (&m[1][..6], &m[1][m[1].len() - 4..]),
            (&r[1][..6], &r[1][r[1].len() - 4..])
        );
        assert!(m[1][6..m[1].len() - 4].chars().all(|c| c == '*'));
    }
    let staged = rows_as(
        &lake,
        "analyst",
        None,
        "SELECT name, name_raw, id_number_raw FROM staged_health WHERE name IS NOT NULL LIMIT 5",
    );
    assert!(
        staged.iter().all(|r| r[0].ends_with('*')
            && r[1].ends_with('*')
            && (r[2].is_empty() || r[2].contains('*'))),
        "{staged:?}"
    );
    let quarantined = rows_as(
        &lake,
        "analyst",
        None,
        "SELECT DISTINCT raw_text FROM quarantine_health",
    );
    assert!(
        quarantined.iter().all(|r| r[0].contains("masked")),
        "{quarantined:?}"
    );
    // The audit log is admin's alone.
    let out = sql_as(&lake, "analyst", None, "SELECT * FROM audit_log");
    assert!(!out.status.success());

    // A county reader sees only its county, in every table it can see.
    let scoped = |q: &str| rows_as(&lake, "reader", Some(&county), q);
    let counties = scoped("SELECT DISTINCT county_code FROM warnings");
    assert_eq!(counties, vec![vec![county.clone()]]);
    let households = scoped("SELECT DISTINCT substr(village_code, 1, 6) FROM roster_household");
    assert_eq!(households, vec![vec![county.clone()]]);
    let persons = scoped(&format!(
        "SELECT count(*) FROM roster_person WHERE NOT starts_with(village_code, '{county}')"
    ));
    assert_eq!(persons[0][0], "0");
    let all_links = count(
        &lake,
        "SELECT count(*) FROM link_health WHERE status = 'linked'",
    );
    let in_county = count(
        &lake,
        &format!(
            "SELECT count(*) FROM link_health l JOIN roster_household h ON l.household_id = h.household_id WHERE starts_with(h.village_code, '{county}')"
        ),
    );
    assert!(in_county > 0 && in_county < all_links);
    assert_eq!(
        scoped("SELECT count(*) FROM link_health")[0][0],
        in_county.to_string()
    );
    assert_eq!(
        scoped("SELECT count(*) FROM staged_health")[0][0],
        in_county.to_string()
    );
    let events = scoped(
        "SELECT count(*) FROM warning_events e WHERE e.warning_id NOT IN (SELECT warning_id FROM warnings)",
    );
    assert_eq!(events[0][0], "0");
    // Tables with no way to tell a row's region are not shown at all.
    let tables: Vec<String> =
        scoped("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
    assert!(tables.contains(&"warnings".to_string()) && tables.contains(&"runs".to_string()));
    assert!(
        !tables
            .iter()
            .any(|t| t.starts_with("quarantine_") || t == "audit_log"),
        "{tables:?}"
    );

    // Analysts may export; readers may not.
    let out_file = tmp.path().join("warnings.parquet");
    let export = |role: &str| {
        run(bin()
            .args(["sql", "--lake", &lake, "--role", role, "--out"])
            .arg(&out_file)
            .args(["-c", "SELECT * FROM warnings"]))
    };
    let out = export("reader");
    assert!(!out.status.success() && !out_file.exists());
    let out = export("analyst");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reader = datafusion::parquet::file::reader::SerializedFileReader::new(
        std::fs::File::open(&out_file).unwrap(),
    )
    .unwrap();
    let n = datafusion::parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .num_rows();
    assert_eq!(n, count(&lake, "SELECT count(*) FROM warnings"));
}

/// A source ingested with its own schema file, whose ID-number and name
/// columns have names no file in `schemas/` knows, is masked all the same:
/// the access layer reads the schema the lake recorded.
#[test]
fn columns_named_by_a_recorded_schema_are_masked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 40, &["--only", "civil_affairs"]);
    let lake = lake_dir(&tmp);
    let schema = std::fs::read_to_string(repo().join("schemas/civil_affairs.toml"))
        .unwrap()
        .replace("name = \"id_number\"", "name = \"sfzh\"")
        .replace("name = \"name\"", "name = \"xm\"");
    let schema_file = tmp.path().join("civil_county.toml");
    std::fs::write(&schema_file, &schema).unwrap();
    ingest_with_schema(
        &lake,
        "civil_affairs",
        &schema_file,
        data.join("civil_affairs.csv"),
    );
    let query = "SELECT xm, sfzh FROM staged_civil_affairs WHERE sfzh IS NOT NULL AND xm IS NOT NULL LIMIT 20";
    let raw = rows_as(&lake, "admin", None, query);
    let masked = rows_as(&lake, "analyst", None, query);
    assert!(!raw.is_empty());
    for (r, m) in raw.iter().zip(&masked) {
        assert!(m[0].ends_with('*') && m[0] != r[0], "{m:?}");
        assert!(m[1].contains('*') && m[1] != r[1], "{m:?}");
    }
}

/// The interactive shell's `\d TABLE` binds the table name as a value;
/// the audit log shows the value beside the statement, as the SQL
/// endpoint does for prepared statements.
#[test]
fn shell_catalog_commands_are_audited_with_their_values() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake_with_a_run(&tmp);
    let mut child = bin()
        .args(["sql", "--lake", &lake, "--format", "csv", "--role", "admin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\\d warnings\n\\q\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("household_id"),
        "{stdout}"
    );
    let rows = rows_as(
        &lake,
        "admin",
        None,
        "SELECT request FROM audit_log WHERE request LIKE '%information_schema.columns%'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0][0].ends_with("-- parameters: [warnings]"),
        "{}",
        rows[0][0]
    );
}
