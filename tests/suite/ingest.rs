//! Ingest end to end: the real binary, real Delta tables in a temp dir.

use std::path::Path;

use crate::common::*;

/// Every source of a generated data set is ingested with counts conserved,
/// the roster is split, and re-ingesting is a reported no-op.
#[test]
fn generated_sources_ingest_with_counts_conserved() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 300, &[]);
    let lake = lake_dir(&tmp);

    ingest_ok(&lake, "roster", &[&data.join("roster.csv")]);
    for source in ["civil_affairs", "health", "education", "social_insurance"] {
        let file = data.join(format!("{source}.csv"));
        ingest_ok(&lake, source, &[&file]);
        let rows = csv_rows(&file) as i64;
        let staged = count(&lake, &format!("SELECT count(*) FROM staged_{source}"));
        let quarantined = count(&lake, &format!("SELECT count(*) FROM quarantine_{source}"));
        assert_eq!(staged + quarantined, rows, "{source}");
        // Generated rows are well-formed: nothing should be quarantined.
        assert_eq!(quarantined, 0, "{source}");
        let batch = sql(
            &lake,
            &format!(
                "SELECT rows_read, rows_staged, rows_quarantined, file_sha256 FROM batches WHERE source = '{source}'"
            ),
        );
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0][0], rows.to_string());
        assert_eq!(batch[0][3].len(), 64);
    }

    let members = csv_rows(&data.join("roster.csv")) as i64;
    assert_eq!(count(&lake, "SELECT count(*) FROM roster_person"), members);
    assert_eq!(count(&lake, "SELECT count(*) FROM roster_household"), 300);
    assert_eq!(
        count(&lake, "SELECT count(DISTINCT person_id) FROM roster_person"),
        members
    );
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM roster_person p JOIN roster_household h USING (household_id)"
        ),
        members
    );
    // Region codes are derived from the village code.
    let codes = sql(
        &lake,
        "SELECT county_code, township_code, village_code FROM roster_household LIMIT 1",
    );
    assert_eq!(codes[0][0].len(), 6);
    assert!(codes[0][2].starts_with(&codes[0][1]) && codes[0][1].starts_with(&codes[0][0]));

    // Re-ingest: a no-op, reported as such, nothing duplicated.
    let persons_before = sql(
        &lake,
        "SELECT person_id FROM roster_person ORDER BY person_id",
    );
    let out = ingest_ok(&lake, "health", &[&data.join("health.csv")]);
    assert!(out.contains("already ingested"), "{out}");
    ingest_ok(&lake, "roster", &[&data.join("roster.csv")]);
    assert_eq!(count(&lake, "SELECT count(*) FROM batches"), 5);
    assert_eq!(
        count(&lake, "SELECT count(*) FROM staged_health"),
        csv_rows(&data.join("health.csv")) as i64
    );
    assert_eq!(
        sql(
            &lake,
            "SELECT person_id FROM roster_person ORDER BY person_id"
        ),
        persons_before
    );
}

/// Dirty identifiers are normalised with the original kept beside them.
#[test]
fn identifiers_are_normalised_and_originals_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("health.csv");
    std::fs::write(
        &file,
        "结算流水号,姓名,证件号码,结算日期,个人自付\n\
         S1, 王 伟 ,１１０１０５１９４９１２３１００２ｘ,2026年8月14日,\"1,234.50元\"\n\
         S2,李丽,110105491231002,20260814,12\n\
         S3,张三,11010519491231002X12,2026/8/14,0\n\
         S4,赵四,110105194912310021,46248,5\n",
    )
    .unwrap();
    let lake = lake_dir(&tmp);
    ingest_ok(&lake, "health", &[&file]);
    let rows = sql(
        &lake,
        "SELECT settlement_id, name, id_number, id_number_valid, id_number_raw, CAST(settlement_date AS VARCHAR), CAST(self_paid AS VARCHAR) \
         FROM staged_health ORDER BY settlement_id",
    );
    assert_eq!(rows[0][1], "王伟");
    assert_eq!(rows[0][2], "11010519491231002X");
    assert_eq!(rows[0][3], "true");
    assert_eq!(rows[0][4], "１１０１０５１９４９１２３１００２ｘ");
    assert_eq!(rows[0][6], "1234.50");
    assert_eq!(rows[1][2], "11010519491231002X"); // 15 → 18
    assert_eq!(rows[2][2], "11010519491231002X"); // certificate suffix cut
    assert_eq!(rows[3][3], "false"); // kept, flagged invalid
    for row in &rows {
        assert_eq!(row[5], "2026-08-14", "{row:?}");
    }
}

/// GB18030 files are detected and decode to the same text as UTF-8 ones.
#[test]
fn gb18030_and_xlsx_read_like_utf8_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let utf8 = tmp.path().join("utf8");
    let gbk = tmp.path().join("gbk");
    generate(&utf8, 60, &[]);
    generate(&gbk, 60, &["--encoding", "gb18030", "--xlsx", "education"]);
    let raw = std::fs::read(gbk.join("health.csv")).unwrap();
    assert!(
        std::str::from_utf8(&raw).is_err(),
        "the file really is GB18030"
    );

    let a = lake_dir(&tmp);
    let b = tmp.path().join("lake_b").to_string_lossy().into_owned();
    ingest_ok(&a, "health", &[&utf8.join("health.csv")]);
    ingest_ok(&b, "health", &[&gbk.join("health.csv")]);
    let q = "SELECT settlement_id, name, diagnosis, CAST(self_paid AS VARCHAR) FROM staged_health ORDER BY settlement_id";
    assert_eq!(sql(&a, q), sql(&b, q));
    assert_eq!(sql(&b, "SELECT encoding FROM batches")[0][0], "gb18030");

    ingest_ok(&a, "education", &[&utf8.join("education.csv")]);
    ingest_ok(&b, "education", &[&gbk.join("education.xlsx")]);
    let q = "SELECT student_id, name, status, CAST(status_date AS VARCHAR), CAST(birth_date AS VARCHAR) FROM staged_education ORDER BY student_id";
    let from_csv = sql(&a, q);
    assert!(!from_csv.is_empty());
    assert_eq!(from_csv, sql(&b, q));
    assert_eq!(count(&b, "SELECT count(*) FROM quarantine_education"), 0);
}

/// JSON Lines and TSV inputs, and a glob that picks both.
#[test]
fn json_lines_and_tsv() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a.jsonl"),
        "{\"结算流水号\":\"J1\",\"姓名\":\"王芳\",\"结算日期\":\"2026-03-01\",\"个人自付\":120.5}\n\
         \n\
         {\"结算流水号\":\"J2\",\"姓名\":\"李娜\",\"结算日期\":\"2026-03-02\",\"个人自付\":\"8,000\"}\n\
         not json\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("b.tsv"),
        "结算流水号\t姓名\t结算日期\t个人自付\nT1\t张伟\t2026-03-03\t99\n",
    )
    .unwrap();
    let lake = lake_dir(&tmp);
    let pattern = format!("{}/*.*", dir.display());
    let out = run(bin().args(["ingest", "--lake", &lake, "--source", "health", &pattern]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sql(
            &lake,
            "SELECT settlement_id, CAST(self_paid AS VARCHAR) FROM staged_health ORDER BY settlement_id"
        ),
        vec![
            vec!["J1".to_string(), "120.50".into()],
            vec!["J2".into(), "8000.00".into()],
            vec!["T1".into(), "99.00".into()],
        ]
    );
    let q = sql(
        &lake,
        "SELECT line, raw_text, reasons FROM quarantine_health",
    );
    assert_eq!(q.len(), 1);
    assert_eq!(q[0][0], "4");
    assert_eq!(q[0][1], "not json");
    assert!(q[0][2].contains("JSON"), "{}", q[0][2]);
}

/// Bad rows go to quarantine with file, line, raw text and a reason per
/// failing field; good rows of the same file are staged.
#[test]
fn broken_rows_are_quarantined_with_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let file = repo().join("sample_data/health_broken.csv");
    let lake = lake_dir(&tmp);
    ingest_ok(&lake, "health", &[&file]);
    let read = count(&lake, "SELECT rows_read FROM batches");
    let staged = count(&lake, "SELECT count(*) FROM staged_health");
    let quarantined = count(&lake, "SELECT count(*) FROM quarantine_health");
    assert_eq!(read, staged + quarantined);
    assert!(
        staged >= 1 && quarantined >= 5,
        "staged {staged}, quarantined {quarantined}"
    );
    let rows = sql(
        &lake,
        "SELECT line, raw_text, reasons, failed_fields, source_file FROM quarantine_health ORDER BY line",
    );
    let all = rows
        .iter()
        .map(|r| r[2].clone())
        .collect::<Vec<_>>()
        .join("\n");
    for expected in [
        "结算流水号(settlement_id)",
        "个人自付(self_paid)",
        "列数不符",
        "结算日期(settlement_date)",
    ] {
        assert!(
            all.contains(expected),
            "no reason mentions {expected}:\n{all}"
        );
    }
    for row in &rows {
        assert!(row[0].parse::<i64>().unwrap() >= 2);
        assert!(!row[1].is_empty());
        assert!(row[4].ends_with("health_broken.csv"));
    }
}

/// A missing required column refuses the file before anything is written,
/// naming the file, the column and the headers found.
#[test]
fn missing_required_column_refuses_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("county_export.csv");
    std::fs::write(&file, "姓名,身份证号,结算日期\n王伟,,2026-01-01\n").unwrap();
    let lake = lake_dir(&tmp);
    let out = ingest(&lake, "health", &[&file]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("county_export.csv"), "{err}");
    assert!(err.contains("结算流水号(settlement_id)"), "{err}");
    assert!(err.contains("个人自付(self_paid)"), "{err}");
    assert!(
        err.contains("headers found: 姓名, 身份证号, 结算日期"),
        "{err}"
    );
    let tables = sql(
        &lake,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert!(tables.is_empty(), "nothing written: {tables:?}");
}

/// A thread count that is not one is refused before anything is written;
/// one thread gives the same rows as the default.
#[test]
fn a_bad_ingest_thread_count_is_refused_not_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/health.csv");
    let lake = lake_dir(&tmp);
    let out = run(bin()
        .env("SAFETYNET_INGEST_THREADS", "many")
        .args(["ingest", "--lake", &lake, "--source", "health"])
        .arg(&file));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SAFETYNET_INGEST_THREADS") && err.contains("'many'"),
        "{err}"
    );
    assert!(
        !Path::new(&lake).join("batches").exists(),
        "nothing written"
    );
    let out = run(bin()
        .env("SAFETYNET_INGEST_THREADS", "1")
        .args(["ingest", "--lake", &lake, "--source", "health"])
        .arg(&file));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = tmp.path().join("default-lake").display().to_string();
    ingest_ok(&other, "health", &[&file]);
    let rows = "SELECT line, settlement_id FROM staged_health ORDER BY line";
    assert_eq!(sql(&lake, rows), sql(&other, rows));
}

/// Binary files and undeclared non-text encodings are refused clearly.
#[test]
fn undecodable_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let binary = tmp.path().join("export.csv");
    std::fs::write(&binary, [0u8, 159, 146, 150, 0, 1, 2, 3, 255, 254, 0]).unwrap();
    let lake = lake_dir(&tmp);
    let out = ingest(&lake, "health", &[&binary]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("export.csv") && err.contains("not a text file"),
        "{err}"
    );

    let garbage = tmp.path().join("latin.csv");
    let mut bytes = "结算流水号,个人自付,结算日期\n".as_bytes().to_vec();
    bytes.extend([0x81, 0x20, 0xFF, 0xFE, 0x80, b'\n']);
    std::fs::write(&garbage, bytes).unwrap();
    let out = ingest(&lake, "health", &[&garbage]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot decode"), "{err}");

    let not_xlsx = tmp.path().join("fake.xlsx");
    std::fs::write(&not_xlsx, "this is not a workbook").unwrap();
    let out = ingest(&lake, "health", &[&not_xlsx]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fake.xlsx"));
}

/// The original file is kept byte for byte under raw/.
#[test]
fn original_file_is_kept_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 20, &["--encoding", "gb18030"]);
    let lake = lake_dir(&tmp);
    ingest_ok(&lake, "civil_affairs", &[&data.join("civil_affairs.csv")]);
    let raw_path = sql(&lake, "SELECT raw_path FROM batches")[0][0].clone();
    assert!(raw_path.starts_with("raw/civil_affairs/"), "{raw_path}");
    let kept = std::fs::read(std::path::Path::new(&lake).join(&raw_path)).unwrap();
    assert_eq!(kept, std::fs::read(data.join("civil_affairs.csv")).unwrap());
}

/// A process killed in the middle of a batch leaves nothing visible; the
/// next run completes the batch with exact counts. Tried at each commit,
/// on a local lake and on a lake in an S3 bucket.
#[test]
fn crash_mid_batch_then_rerun_gives_exact_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 80, &[]);
    let file = repo().join("sample_data/health_broken.csv");
    let rows = csv_rows(&data.join("health.csv")) as i64;
    for backend in crate::backends::backends() {
        for (i, point) in [
            "ingest:before-commit",
            "ingest:after-staged-commit",
            "ingest:after-quarantine-commit",
        ]
        .into_iter()
        .enumerate()
        {
            let lake = backend.lake(tmp.path(), &format!("lake{i}"));
            let at = format!("{} {point}", backend.name());
            // A first, complete batch, so the crash happens in a lake with data.
            lake.ingest_ok("health", &[&file]);
            let before_staged = lake.count("SELECT count(*) FROM staged_health");
            let before_quarantined = lake.count("SELECT count(*) FROM quarantine_health");

            let out = run(lake
                .cmd()
                .env("SAFETYNET_FAILPOINT", point)
                .args(["ingest", "--lake", &lake.url, "--source", "health"])
                .arg(data.join("health.csv")));
            assert!(!out.status.success(), "{at}: the process should have died");
            assert_eq!(
                lake.count("SELECT count(*) FROM staged_health"),
                before_staged,
                "{at}"
            );
            assert_eq!(
                lake.count("SELECT count(*) FROM quarantine_health"),
                before_quarantined,
                "{at}"
            );
            assert_eq!(lake.count("SELECT count(*) FROM batches"), 1, "{at}");

            lake.ingest_ok("health", &[&data.join("health.csv")]);
            assert_eq!(
                lake.count("SELECT count(*) FROM staged_health"),
                before_staged + rows,
                "{at}"
            );
            assert_eq!(
                lake.count(
                    "SELECT count(*) FROM (SELECT DISTINCT batch_id, line FROM staged_health)"
                ),
                before_staged + rows,
                "{at}: no duplicated rows"
            );
            assert_eq!(lake.count("SELECT count(*) FROM batches"), 2, "{at}");
        }
    }
}

/// Onboarding a county with other headers, column order and encoding is a
/// schema edit: here a schema file with that county's headers.
#[test]
fn other_headers_are_a_schema_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("county.csv");
    let text = "备注,自付金额（元）,就诊流水号,患者姓名,结算时间\n,88,K1,王伟,14/08/2026\n";
    let (bytes, _, _) = encoding_rs::GB18030.encode(text);
    std::fs::write(&file, bytes).unwrap();
    let schema = std::fs::read_to_string(repo().join("schemas/health.toml"))
        .unwrap()
        .replace("headers = [\"结算日期\", \"结算时间\"]\ntype = \"date\"", "headers = [\"结算日期\", \"结算时间\"]\ntype = \"date\"\ndate_formats = [\"%d/%m/%Y\"]");
    let schema_file = tmp.path().join("health_county.toml");
    std::fs::write(&schema_file, schema).unwrap();
    let lake = lake_dir(&tmp);
    ingest_with_schema(&lake, "health", &schema_file, &file);
    let rows = sql(
        &lake,
        "SELECT settlement_id, name, CAST(settlement_date AS VARCHAR), CAST(self_paid AS VARCHAR) FROM staged_health",
    );
    assert_eq!(
        rows,
        vec![vec![
            "K1".to_string(),
            "王伟".into(),
            "2026-08-14".into(),
            "88.00".into()
        ]]
    );
    assert_eq!(
        sql(&lake, "SELECT unmapped_headers FROM batches")[0][0],
        "备注"
    );
}

/// The main job: the sample pipeline runs end to end, twice.
#[test]
fn sample_pipeline_runs_and_reruns() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake_dir(&tmp);
    let out = ok(bin().args(["run", "pipelines/sample.toml", "--lake", &lake]));
    assert!(out.contains("quarantine_health"), "{out}");
    let staged = count(&lake, "SELECT count(*) FROM staged_health");
    assert!(staged > 500);
    assert!(count(&lake, "SELECT count(*) FROM staged_education") > 100);
    assert!(count(&lake, "SELECT count(*) FROM staged_civil_affairs") > 100);
    let out = ok(bin().args(["run", "pipelines/sample.toml", "--lake", &lake]));
    assert!(out.contains("already ingested"), "{out}");
    assert_eq!(count(&lake, "SELECT count(*) FROM staged_health"), staged);
}

/// A UTF-8 byte-order mark, a title row above the headers (header_row = 2
/// in the schema) and a named worksheet.
#[test]
fn bom_title_row_and_named_sheet() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("titled.csv");
    std::fs::write(
        &file,
        "\u{feff}某县医保结算明细表（2026年10月）,,\n结算流水号,个人自付,结算日期\nB1,10,2026-10-01\n",
    )
    .unwrap();
    let schema = std::fs::read_to_string(repo().join("schemas/health.toml"))
        .unwrap()
        .replace(
            "key = \"settlement_id\"",
            "key = \"settlement_id\"\nheader_row = 2\nsheet = \"结算\"",
        );
    let schema_file = tmp.path().join("health.toml");
    std::fs::write(&schema_file, schema).unwrap();
    let lake = lake_dir(&tmp);
    ingest_with_schema(&lake, "health", &schema_file, &file);
    assert_eq!(
        sql(&lake, "SELECT settlement_id, line FROM staged_health"),
        vec![vec!["B1".to_string(), "3".into()]]
    );

    // The same schema asks for worksheet 结算, which a generated workbook lacks.
    let data = tmp.path().join("data");
    generate(&data, 10, &["--xlsx", "health"]);
    let out = run(bin()
        .args(["ingest", "--lake", &lake, "--source", "health", "--schema"])
        .arg(&schema_file)
        .arg(data.join("health.xlsx")));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("worksheet '结算' not found") && err.contains("Sheet1"),
        "{err}"
    );
}

/// `sql` prints JSON and CSV, and a bad statement is a clear error.
#[test]
fn sql_formats_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake_dir(&tmp);
    ingest_ok(
        &lake,
        "health",
        &[&repo().join("sample_data/health_broken.csv")],
    );
    let json = ok(bin().args([
        "sql",
        "--lake",
        &lake,
        "--format",
        "json",
        "-c",
        "SELECT settlement_id FROM staged_health ORDER BY settlement_id LIMIT 1",
    ]));
    assert_eq!(json.trim(), r#"[{"settlement_id":"YB522322BAD000001"}]"#);
    let out = run(bin().args([
        "sql",
        "--lake",
        &lake,
        "-c",
        "SELECT nope FROM staged_health",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

/// A county's civil-affairs export has one combined 业务类型 column and no
/// gender or birth-date columns; its roster's only person identifier is
/// 身份证号. Several fields read one header, each with its own map, and
/// the fields the file lacks are named in the batch, not left silently
/// empty.
#[test]
fn one_header_feeds_several_fields_and_missing_fields_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake_dir(&tmp);
    let file = tmp.path().join("county_civil.csv");
    std::fs::write(
        &file,
        "业务编号,姓名,身份证号,业务类型,业务日期,金额,区划代码\n\
         C1,王伟,522322199506167828,低保新增,2026-03-01,820,522322\n\
         C2,李娜,522322199311060094,死亡注销,2026-04-02,,522322\n\
         C3,张强,522322198001010011,临时救助,2026-05-03,1500,522322\n",
    )
    .unwrap();
    let schema = std::fs::read_to_string(repo().join("schemas/civil_affairs.toml"))
        .unwrap()
        .replace(
            "headers = [\"救助类型\", \"业务类别\"]",
            "headers = [\"救助类型\", \"业务类别\", \"业务类型\"]",
        )
        .replace(
            "map = { \"最低生活保障\" = \"低保\",",
            "map = { \"低保新增\" = \"低保\", \"死亡注销\" = \"死亡登记\", \"最低生活保障\" = \"低保\",",
        )
        .replace(
            "map = { \"停保\" = \"取消\",",
            "map = { \"低保新增\" = \"新增\", \"死亡注销\" = \"登记\", \"临时救助\" = \"发放\", \"停保\" = \"取消\",",
        );
    let schema_file = tmp.path().join("civil_county.toml");
    std::fs::write(&schema_file, &schema).unwrap();
    let out = ingest_with_schema(&lake, "civil_affairs", &schema_file, &file);
    assert!(
        out.contains("性别(gender)") && out.contains("出生日期(birth_date)"),
        "the fields the file lacks are named: {out}"
    );
    assert_eq!(
        sql(
            &lake,
            "SELECT record_id, assistance_type, action FROM staged_civil_affairs ORDER BY record_id"
        ),
        vec![
            vec!["C1".to_string(), "低保".into(), "新增".into()],
            vec!["C2".into(), "死亡登记".into(), "登记".into()],
            vec!["C3".into(), "临时救助".into(), "发放".into()],
        ]
    );
    assert_eq!(
        count(&lake, "SELECT count(*) FROM quarantine_civil_affairs"),
        0
    );
    let missing = sql(&lake, "SELECT missing_fields FROM batches")[0][0].clone();
    assert!(
        missing.contains("gender") && missing.contains("birth_date"),
        "{missing}"
    );

    // A roster whose only person identifier is 身份证号 fills both
    // member_id and id_number.
    let roster = std::fs::read_to_string(repo().join("sample_data/roster.csv")).unwrap();
    let mut lines = roster.lines();
    let header = lines
        .next()
        .unwrap()
        .replace("成员编号,", "")
        .replace("证件号码", "身份证号");
    let body: Vec<String> = lines
        .take(20)
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(1);
            cells.join(",")
        })
        .collect();
    let roster_file = tmp.path().join("county_roster.csv");
    std::fs::write(&roster_file, format!("{header}\n{}\n", body.join("\n"))).unwrap();
    let roster_schema = std::fs::read_to_string(repo().join("schemas/roster.toml"))
        .unwrap()
        .replace(
            "headers = [\"成员编号\", \"人员编号\", \"成员ID\"]",
            "headers = [\"成员编号\", \"人员编号\", \"成员ID\", \"身份证号\"]",
        );
    let roster_schema_file = tmp.path().join("roster_county.toml");
    std::fs::write(&roster_schema_file, roster_schema).unwrap();
    ingest_with_schema(&lake, "roster", &roster_schema_file, &roster_file);
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM staged_roster WHERE id_number IS NOT NULL AND member_id IS NOT NULL"
        ),
        20
    );
}

/// After `ingest --schema FILE`, the later stages read that schema from
/// the lake: `link` run where no schemas directory exists links the
/// source, whose key field has a name the shipped schema does not know.
#[test]
fn later_stages_read_the_schema_the_lake_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 60, &["--only", "civil_affairs"]);
    let lake = lake_dir(&tmp);
    ingest_ok(&lake, "roster", &[&data.join("roster.csv")]);
    let schema = std::fs::read_to_string(repo().join("schemas/civil_affairs.toml"))
        .unwrap()
        .replace("key = \"record_id\"", "key = \"case_no\"")
        .replace("name = \"record_id\"", "name = \"case_no\"");
    let schema_file = tmp.path().join("civil_county.toml");
    std::fs::write(&schema_file, &schema).unwrap();
    let source = data.join("civil_affairs.csv");
    ingest_with_schema(&lake, "civil_affairs", &schema_file, &source);
    let recorded = sql(
        &lake,
        "SELECT source, first_batch_id, length(schema_sha256) FROM source_schemas ORDER BY source",
    );
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[0][0], "civil_affairs");
    assert_eq!(recorded[0][2], "64");

    // Elsewhere, with no schemas/ beside it.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut link = bin();
    link.current_dir(&elsewhere)
        .args(["link", "--lake", &lake, "--settings"])
        .arg(repo().join("pipelines/linkage.toml"));
    ok(&mut link);
    assert_eq!(
        count(&lake, "SELECT count(*) FROM link_civil_affairs"),
        count(&lake, "SELECT count(*) FROM staged_civil_affairs")
    );
    assert!(
        count(
            &lake,
            "SELECT count(*) FROM link_civil_affairs WHERE case_no IS NOT NULL"
        ) > 0
    );

    // A new batch read with the same schema records no second row; the
    // same schema edited does.
    let text = std::fs::read_to_string(&source).unwrap();
    let part = tmp.path().join("civil_part.csv");
    std::fs::write(
        &part,
        text.lines().take(6).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let out = ingest_with_schema(&lake, "civil_affairs", &schema_file, &part);
    assert!(
        out.contains("ingested") && !out.contains("already"),
        "{out}"
    );
    assert_eq!(count(&lake, "SELECT count(*) FROM source_schemas"), 2);
    std::fs::write(&schema_file, format!("# edited\n{schema}")).unwrap();
    let edited = tmp.path().join("civil_part2.csv");
    std::fs::write(
        &edited,
        text.lines().take(4).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    ingest_with_schema(&lake, "civil_affairs", &schema_file, &edited);
    assert_eq!(count(&lake, "SELECT count(*) FROM source_schemas"), 3);
}

/// A county export that splits the birth date into three columns feeds
/// `birth_date` through a derived field: the date is staged, its text kept
/// in `birth_date_raw`, a row with an impossible date keeps the record with
/// the problem noted (the field is optional), and the three columns are not
/// reported as unmapped.
#[test]
fn a_derived_field_reads_a_date_split_over_three_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake_dir(&tmp);
    let file = tmp.path().join("county_civil.csv");
    std::fs::write(
        &file,
        "业务编号,姓名,身份证号,出生年,出生月,出生日,救助类型,业务类型,业务日期,金额,区划代码\n\
         C1,王伟,522322199506167828,1995,6,16,低保,新增,2026-03-01,820,522322\n\
         C2,李娜,,1993,13,6,低保,新增,2026-04-02,820,522322\n",
    )
    .unwrap();
    let schema = std::fs::read_to_string(repo().join("schemas/civil_affairs.toml"))
        .unwrap()
        .replace(
            "headers = [\"出生日期\", \"出生年月日\"]",
            "derive = \"{出生年}-{出生月}-{出生日}\"",
        );
    let schema_file = tmp.path().join("civil_county.toml");
    std::fs::write(&schema_file, &schema).unwrap();
    ingest_with_schema(&lake, "civil_affairs", &schema_file, &file);
    assert_eq!(
        sql(
            &lake,
            "SELECT record_id, CAST(birth_date AS VARCHAR), birth_date_raw, CAST(issues IS NOT NULL AS VARCHAR)
             FROM staged_civil_affairs ORDER BY record_id"
        ),
        vec![
            vec!["C1".to_string(), "1995-06-16".into(), "1995-6-16".into(), "false".into()],
            vec!["C2".to_string(), "".into(), "1993-13-6".into(), "true".into()],
        ]
    );
    let unmapped = sql(&lake, "SELECT coalesce(unmapped_headers, '') FROM batches");
    assert!(!unmapped[0][0].contains("出生"), "{unmapped:?}");
}
