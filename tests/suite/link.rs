//! Linking end to end on generated data with ground truth.

use crate::common::*;

fn eval_json(lake: &str, source: &str, truth: &std::path::Path) -> serde_json::Value {
    let out = ok(bin()
        .args([
            "eval", "--lake", lake, "--source", source, "--format", "json", "--truth",
        ])
        .arg(truth));
    serde_json::from_str(&out).expect("eval prints JSON")
}

/// Every source links with high precision and beats the exact-ID join; the
/// stored model is reused on the next run and re-estimated on --train.
#[test]
fn generated_sources_link_accurately_and_models_are_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, lake) = generated_lake(&tmp, 600, &["health", "social_insurance"]);
    let out = ok(bin().args(["link", "--lake", &lake]));
    assert!(
        out.contains("health") && out.contains("social_insurance"),
        "{out}"
    );

    for source in ["health", "social_insurance"] {
        let truth = data.join(format!("truth_{source}.csv"));
        let e = eval_json(&lake, source, &truth);
        let (precision, recall, f1) = (
            e["precision"].as_f64().unwrap(),
            e["recall"].as_f64().unwrap(),
            e["f1"].as_f64().unwrap(),
        );
        assert!(precision >= 0.99, "{source}: {e}");
        assert!(f1 >= 0.96, "{source}: {e}");
        assert!(
            recall > e["exact_id_baseline"]["recall"].as_f64().unwrap(),
            "{source}: {e}"
        );
        // Beside the measured figures, the model's own estimate of the same
        // links, made without the truth: the same links, a close precision.
        let estimate = &e["model_estimate"];
        assert_eq!(estimate["linked"], e["linker"]["links"], "{source}: {e}");
        let expected = estimate["expected_precision"].as_f64().unwrap();
        assert!((expected - precision).abs() < 0.02, "{source}: {e}");
        // Every record has exactly one row in the link table.
        let rows = csv_rows(&data.join(format!("{source}.csv"))) as i64;
        assert_eq!(
            count(&lake, &format!("SELECT count(*) FROM link_{source}")),
            rows
        );
    }
    // Linked rows carry the household and per-comparison explanation columns.
    let row = sql(
        &lake,
        "SELECT household_id, id_number_level, name_level, name_weight, model_version FROM link_health WHERE status = 'linked' LIMIT 1",
    );
    assert!(!row[0][0].is_empty() && !row[0][1].is_empty() && !row[0][2].is_empty());
    assert_eq!(row[0][4], "1");

    // A second run reuses model version 1 and gives the same links.
    let before = sql(
        &lake,
        "SELECT settlement_id, person_id, status FROM link_health ORDER BY settlement_id",
    );
    let out = ok(bin().args(["link", "--lake", &lake, "--source", "health"]));
    assert!(out.contains("v1") && !out.contains("trained"), "{out}");
    assert_eq!(
        sql(
            &lake,
            "SELECT settlement_id, person_id, status FROM link_health ORDER BY settlement_id"
        ),
        before
    );
    let out = ok(bin().args(["link", "--lake", &lake, "--source", "health", "--train"]));
    assert!(out.contains("v2 (trained)"), "{out}");
    assert_eq!(
        count(
            &lake,
            "SELECT count(DISTINCT version) FROM link_model WHERE source = 'health'"
        ),
        2
    );

    // Every run left a row in link_history; the latest one's counts are the
    // link table's, and its expected precision is the linked records' mean
    // probability, which the command printed.
    let history = sql(
        &lake,
        "SELECT model_version, trained, linked, review, unlinked, round(expected_precision, 6), expected_recall
         FROM link_history WHERE source = 'health' ORDER BY linked_at",
    );
    assert_eq!(history.len(), 3, "{history:?}");
    let versions: Vec<(&str, &str)> = history
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(versions, [("1", "true"), ("1", "false"), ("2", "true")]);
    let now = sql(
        &lake,
        "SELECT CAST(count(*) FILTER (WHERE status = 'linked') AS VARCHAR),
                CAST(count(*) FILTER (WHERE status = 'review') AS VARCHAR),
                CAST(count(*) FILTER (WHERE status = 'unlinked') AS VARCHAR),
                CAST(round(avg(match_probability) FILTER (WHERE status = 'linked'), 6) AS VARCHAR)
         FROM link_health",
    );
    assert_eq!(history[2][2..6], now[0][..]);
    let recall: f64 = history[2][6].parse().unwrap();
    assert!((0.5..=1.0).contains(&recall), "{recall}");
    let expected: f64 = history[2][5].parse().unwrap();
    assert!((0.5..=1.0).contains(&expected), "{expected}");
    assert!(out.contains(&format!("{:.2}%", 100.0 * expected)), "{out}");
}

/// Province-scale runs keep intermediate tables in scratch files and
/// decide the records in parts: forced here on a small set, they give the
/// same links as one in-memory query, and the files are gone afterwards.
#[test]
fn scratch_files_give_the_same_links_as_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lake) = generated_lake(&tmp, 300, &["health"]);
    let links = "SELECT settlement_id, person_id, household_id, status, round(match_weight, 6), candidates FROM link_health ORDER BY settlement_id";
    ok(bin().args(["link", "--lake", &lake]));
    let in_memory = sql(&lake, links);

    let scratch = tmp.path().join("scratch");
    ok(bin()
        .args(["link", "--lake", &lake])
        .env("SAFETYNET_SCRATCH_ROWS", "0")
        .env("SAFETYNET_PART_RECORDS", "100")
        .env("SAFETYNET_SCRATCH_DIR", &scratch));
    assert_eq!(sql(&lake, links), in_memory);
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);

    let out = run(bin()
        .args(["link", "--lake", &lake])
        .env("SAFETYNET_SCRATCH_ROWS", "many"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SAFETYNET_SCRATCH_ROWS"),
        "{out:?}"
    );
}

/// The first roster person with a valid ID number:
/// [person_id, name, id_number, county_code].
fn first_roster_person(lake: &str) -> Vec<String> {
    sql(
        lake,
        "SELECT p.person_id, p.name, p.id_number, h.county_code FROM roster_person p JOIN roster_household h USING (household_id) WHERE p.id_number_valid ORDER BY p.person_id LIMIT 1",
    )
    .remove(0)
}

/// Ingest hand-written health records (CSV lines after the header) and
/// link the source with the stored model.
fn link_health_lines(tmp: &tempfile::TempDir, lake: &str, lines: &str) {
    let file = tmp.path().join("health.csv");
    std::fs::write(
        &file,
        format!("结算流水号,姓名,证件号码,结算日期,个人自付,参保地区划\n{lines}"),
    )
    .unwrap();
    ingest_ok(lake, "health", &[&file]);
    ok(bin().args(["link", "--lake", lake, "--source", "health"]));
}

/// A record whose only evidence is a common name and a county is not
/// linked outright; an exact ID with a typo'd name is.
#[test]
fn name_and_region_alone_do_not_link() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lake) = generated_lake(&tmp, 300, &[]);
    // Pick a roster person; write records about them by hand.
    let person = first_roster_person(&lake);
    let (name, id, county) = (&person[1], &person[2], &person[3]);
    link_health_lines(
        &tmp,
        &lake,
        &format!(
            "N1,{name},,2026-01-01,10,{county}\n\
             N2,{name}x,{id},2026-01-01,10,{county}\n"
        ),
    );
    let rows = sql(
        &lake,
        "SELECT settlement_id, status FROM link_health ORDER BY settlement_id",
    );
    assert_ne!(rows[0][1], "linked", "{rows:?}");
    assert_eq!(rows[1][1], "linked", "{rows:?}");
}

/// A record whose only birth date is read from its own mistyped ID number:
/// the near ID carries that evidence, so the birth date is not counted a
/// second time (it made namesakes born the same day outscore the person).
#[test]
fn a_birth_date_read_from_a_mistyped_id_is_not_counted_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lake) = generated_lake(&tmp, 300, &[]);
    let person = first_roster_person(&lake);
    let (person_id, name, id, county) = (&person[0], &person[1], &person[2], &person[3]);
    // One digit of the sequence mistyped: the check character now fails.
    let mut typo: Vec<char> = id.chars().collect();
    typo[15] = if typo[15] == '7' { '8' } else { '7' };
    let typo: String = typo.into_iter().collect();
    link_health_lines(
        &tmp,
        &lake,
        &format!(
            "T1,{name},{typo},2026-01-01,10,{county}\n\
             T2,{name},{id},2026-01-01,10,{county}\n"
        ),
    );
    let rows = sql(
        &lake,
        "SELECT settlement_id, status, person_id, id_number_level, birth_date_level FROM link_health ORDER BY settlement_id",
    );
    assert_eq!(
        rows[0][1..],
        ["linked", person_id.as_str(), "one_typo_or_swap", "missing"],
        "{rows:?}"
    );
    // With a valid number the birth date read from it counts as usual.
    assert_eq!(
        rows[1][1..],
        ["linked", person_id.as_str(), "exact", "exact"],
        "{rows:?}"
    );
}

/// Known only by name and place (no ID, no birth date): a rare name in the
/// person's own village links; the roster's most frequent name in its
/// village, or a rare name with only the county, goes to review.
#[test]
fn a_rare_name_links_in_its_village_and_a_frequent_one_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lake) = generated_lake(&tmp, 600, &["civil_affairs"]);
    ok(bin().args(["link", "--lake", &lake]));
    let person = |order: &str| {
        let rows = sql(
            &lake,
            &format!(
                "WITH f AS (SELECT name, count(*) AS n FROM roster_person GROUP BY name) \
                 SELECT p.person_id, p.name, p.gender, h.village_code, h.county_code \
                 FROM roster_person p JOIN f USING (name) JOIN roster_household h USING (household_id) \
                 WHERE p.gender IS NOT NULL ORDER BY {order}, p.person_id LIMIT 1"
            ),
        );
        rows[0].clone()
    };
    let rare = person("f.n ASC");
    let frequent = person("f.n DESC");
    assert_ne!(rare[1], frequent[1]);
    let row = |key: &str, p: &[String], region: &str| {
        format!(
            "{key},{},,{},,临时救助,发放,2026-03-01,500,,{region}\n",
            p[1], p[2]
        )
    };
    let file = tmp.path().join("by_name.csv");
    std::fs::write(
        &file,
        format!(
            "业务编号,姓名,身份证号,性别,出生日期,救助类型,业务类型,发生日期,金额(元),残疾等级,行政区划代码\n{}{}{}",
            row("RARE_VILLAGE", &rare, &rare[3]),
            row("FREQUENT_VILLAGE", &frequent, &frequent[3]),
            row("RARE_COUNTY", &rare, &rare[4]),
        ),
    )
    .unwrap();
    ingest_ok(&lake, "civil_affairs", &[&file]);
    ok(bin().args(["link", "--lake", &lake, "--source", "civil_affairs"]));
    let rows = sql(
        &lake,
        "SELECT record_id, status, person_id FROM link_civil_affairs \
         WHERE record_id IN ('RARE_VILLAGE', 'FREQUENT_VILLAGE', 'RARE_COUNTY') ORDER BY record_id",
    );
    let status = |key: &str| {
        rows.iter()
            .find(|r| r[0] == key)
            .unwrap_or_else(|| panic!("{key} missing: {rows:?}"))
            .clone()
    };
    let linked = status("RARE_VILLAGE");
    assert_eq!(
        (linked[1].as_str(), &linked[2]),
        ("linked", &rare[0]),
        "{rows:?}"
    );
    assert_ne!(status("FREQUENT_VILLAGE")[1], "linked", "{rows:?}");
    assert_ne!(status("RARE_COUNTY")[1], "linked", "{rows:?}");
}

/// Explanations, and the review loop: exported review rows, clerks'
/// decisions imported, and the next link run follows them.
#[test]
fn explain_and_review_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake_dir(&tmp);
    ok(bin().args(["run", "pipelines/sample.toml", "--lake", &lake]));
    ok(bin().args(["link", "--lake", &lake, "--source", "health"]));

    // Explain a linked record: the waterfall adds up to the match weight.
    let linked = sql(
        &lake,
        "SELECT settlement_id, person_id, match_weight FROM link_health WHERE status = 'linked' ORDER BY settlement_id LIMIT 1",
    );
    let out = ok(bin().args([
        "explain",
        "--lake",
        &lake,
        "--source",
        "health",
        "--format",
        "json",
        &linked[0][0],
    ]));
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["status"], "linked");
    let best = &e["candidates"][0];
    assert_eq!(best["person_id"], linked[0][1].as_str());
    let waterfall = best["waterfall"].as_array().unwrap();
    assert_eq!(waterfall.len(), 6, "prior and five comparisons");
    let last = waterfall.last().unwrap()["cumulative"].as_f64().unwrap();
    assert!(
        (last - linked[0][2].parse::<f64>().unwrap()).abs() < 1e-3,
        "{e}"
    );
    let text = ok(bin().args([
        "explain",
        "--lake",
        &lake,
        "--source",
        "health",
        &linked[0][0],
    ]));
    assert!(
        text.contains("prior 先验") && text.contains("id_number"),
        "{text}"
    );
    let missing = run(bin().args([
        "explain",
        "--lake",
        &lake,
        "--source",
        "health",
        "NO-SUCH-KEY",
    ]));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NO-SUCH-KEY"));

    // Review: export, decide the first two rows, import, relink.
    let file = tmp.path().join("review.csv");
    ok(bin()
        .args([
            "review", "export", "--lake", &lake, "--source", "health", "--out",
        ])
        .arg(&file));
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let headers = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert!(rows.len() >= 2, "the sample has records in review");
    assert!(headers.iter().any(|h| h == "roster_name"));
    let decision = headers.iter().position(|h| h == "decision").unwrap();
    let mut writer = csv::Writer::from_path(&file).unwrap();
    writer.write_record(&headers).unwrap();
    for (i, row) in rows.iter().enumerate() {
        let mut cells: Vec<String> = row.iter().map(str::to_string).collect();
        cells[decision] = match i {
            0 => "是".into(),
            1 => "no_match".into(),
            _ => String::new(),
        };
        writer.write_record(&cells).unwrap();
    }
    writer.flush().unwrap();
    let out = ok(bin().args(["review", "import", "--lake", &lake]).arg(&file));
    assert!(out.contains("stored 1 match and 1 no-match"), "{out}");
    ok(bin().args(["link", "--lake", &lake, "--source", "health"]));
    let (first, second) = (&rows[0], &rows[1]);
    let status = |key: &str| {
        sql(&lake, &format!("SELECT status, person_id, review_decision FROM link_health WHERE settlement_id = '{key}'"))[0].clone()
    };
    let s = status(&first[1]);
    assert_eq!(
        (s[0].as_str(), s[1].as_str(), s[2].as_str()),
        ("linked", &first[2], "match")
    );
    let s = status(&second[1]);
    assert_ne!(
        s[1],
        second[2].to_string(),
        "the rejected pair is not chosen again"
    );

    // A bad decision is refused with the line number.
    std::fs::write(
        &file,
        "source,record_key,person_id,decision\nhealth,a,b,maybe\n",
    )
    .unwrap();
    let out = run(bin().args(["review", "import", "--lake", &lake]).arg(&file));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
}

/// A typo in the linkage settings stops `link` before any work, naming the
/// settings file and the key: here a blocking rule names a column the
/// record side does not have. Nothing is written.
#[test]
fn a_settings_column_missing_from_one_side_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lake) = generated_lake(&tmp, 200, &["health"]);
    let shipped = std::fs::read_to_string(repo().join("pipelines/linkage.toml")).unwrap();
    let settings = tmp.path().join("county_linkage.toml");
    let rule = "\"l.name_key = r.name_key AND l.birth_date = r.birth_date\"";
    assert!(shipped.contains(rule));
    std::fs::write(
        &settings,
        shipped.replacen(
            rule,
            "\"l.name_key = r.name_key AND l.birth_day = r.birth_date\"",
            1,
        ),
    )
    .unwrap();
    let out = run(bin()
        .args(["link", "--lake", &lake, "--source", "health", "--settings"])
        .arg(&settings));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(78),
        "a configuration error: {stderr}"
    );
    assert!(
        stderr.contains("county_linkage.toml: defaults.blocking[4]:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no column 'birth_day' on side l (the department record, source 'health')"),
        "{stderr}"
    );
    assert!(
        stderr.contains("settlement_id"),
        "the side's columns are listed: {stderr}"
    );
    for table in ["link_health", "link_model"] {
        assert!(
            !std::path::Path::new(&lake).join(table).exists(),
            "nothing linked, no model trained: {table}"
        );
    }
}

/// A source whose own column is named like a column the linker makes (the
/// FEBRL data sets have their own `surname`) is refused with the field's
/// name, instead of the linker's column silently taking its place.
#[test]
fn a_source_column_named_like_a_standard_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lake) = generated_lake(&tmp, 100, &[]);
    let schema = tmp.path().join("people.toml");
    std::fs::write(
        &schema,
        r#"name = "people"
key = "rec_id"

[[field]]
name = "rec_id"
headers = ["rec_id"]
required = true

[[field]]
name = "surname"
headers = ["surname"]

[[field]]
name = "given_name"
headers = ["given_name"]
"#,
    )
    .unwrap();
    let file = tmp.path().join("people.csv");
    std::fs::write(&file, "rec_id,surname,given_name\nrec-1,smith,john\n").unwrap();
    ingest_with_schema(&lake, "people", &schema, &file);
    let out = run(bin().args(["link", "--lake", &lake, "--source", "people"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("the schema of source 'people': field surname:"),
        "{stderr}"
    );
    assert!(stderr.contains("rename the field"), "{stderr}");
}

/// Generic linking by configuration alone: FEBRL4's data set b is linked
/// against data set a as the registry with the shipped example
/// (pipelines/examples/febrl4), no roster in the lake, and every record
/// finds its person. The registry is not linked against itself, and asking
/// for that names the settings key.
#[test]
fn febrl4_links_by_configuration_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake_dir(&tmp);
    let example = repo().join("pipelines/examples/febrl4");
    let data = repo().join("sample_data/febrl4");
    for part in ["a", "b"] {
        let source = format!("febrl4{part}");
        ingest_with_schema(
            &lake,
            &source,
            &example.join(format!("schemas/{source}.toml")),
            data.join(format!("dataset4{part}.csv")),
        );
    }
    let settings = example.join("linkage.toml");
    let out = ok(bin()
        .args(["link", "--lake", &lake, "--settings"])
        .arg(&settings));
    assert!(out.contains("febrl4b"), "{out}");
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'link_febrl4a'"
        ),
        0,
        "the registry was linked against itself"
    );
    let e = eval_json(&lake, "febrl4b", &data.join("truth_febrl4b.csv"));
    assert_eq!(e["records"], 5000, "{e}");
    assert_eq!(e["linker"]["true_matches"], 5000, "{e}");
    assert!(e["f1"].as_f64().unwrap() >= 0.999, "{e}");
    assert_eq!(e["truth_is_registry_keys"], true, "{e}");
    // The text report leaves out what needs a roster: the ID-number join.
    let report = ok(bin()
        .args(["eval", "--lake", &lake, "--source", "febrl4b", "--truth"])
        .arg(data.join("truth_febrl4b.csv")));
    assert!(!report.contains("exact ID join"), "{report}");

    let out = run(bin()
        .args(["link", "--lake", &lake, "--source", "febrl4a", "--settings"])
        .arg(&settings));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("defaults.registry"), "{stderr}");
    assert!(stderr.contains("its own registry"), "{stderr}");
}

/// A small department extract with many records lacking an ID number,
/// and a county that can spare its clerks for only half a percent of the
/// records: the patterns too rare to calibrate and the doubtful ID numbers,
/// decided by the thresholds, would send more than that to review. The
/// queue keeps the most probable up to the budget; the rest stay unlinked,
/// the summary says how many, and a second run decides the same.
#[test]
fn the_review_queue_of_a_small_source_stays_within_its_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(
        &data,
        2000,
        &[
            "--only",
            "civil_affairs",
            "--world",
            "namesake_share=0.05,no_id_share=0.3",
        ],
    );
    let lake = lake_dir(&tmp);
    ingest_ok(&lake, "roster", &[&data.join("roster.csv")]);
    ingest_ok(&lake, "civil_affairs", &[&data.join("civil_affairs.csv")]);
    let queue = |lake: &str| {
        sql(
            lake,
            "SELECT record_id, status, coalesce(person_id, '') FROM link_civil_affairs ORDER BY record_id",
        )
    };
    let shipped = std::fs::read_to_string(repo().join("pipelines/linkage.toml")).unwrap();
    assert!(shipped.contains("\nreview_budget = 0.02\n"));
    let settings = tmp.path().join("county_linkage.toml");
    std::fs::write(
        &settings,
        shipped.replacen("\nreview_budget = 0.02\n", "\nreview_budget = 0.005\n", 1),
    )
    .unwrap();
    let link = || {
        ok(bin()
            .args(["link", "--lake", &lake, "--settings"])
            .arg(&settings))
    };
    let out = link();
    let records = count(&lake, "SELECT count(*) FROM link_civil_affairs");
    let budget = (0.005 * records as f64).floor() as i64;
    let review = count(
        &lake,
        "SELECT count(*) FROM link_civil_affairs WHERE status = 'review'",
    );
    assert_eq!(review, budget, "{records} records: {out}");
    let left = out
        .lines()
        .find(|l| l.contains("past the review budget were left unlinked"))
        .unwrap_or_else(|| panic!("no word of the budget: {out}"));
    let left: i64 = left
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{left}"));
    assert!(left > 0, "{out}");
    // Those left out name no one.
    let nameless = count(
        &lake,
        "SELECT count(*) FROM link_civil_affairs WHERE status = 'unlinked' AND person_id IS NOT NULL",
    );
    assert_eq!(nameless, 0);
    let first = queue(&lake);

    let again = link();
    assert!(again.contains("past the review budget"), "{again}");
    assert_eq!(queue(&lake), first, "a second run decides the same");
}

/// Records with a valid ID number, linked again with it hidden, show how
/// often each evidence pattern is the person. With few namesakes "same
/// name, same county" is usually right; with many it is not, and the link
/// run decides records without an ID number by that, within its precision
/// target and review budget, and says so in `link_history`,
/// `link_calibration` and `eval`.
#[test]
fn records_without_an_id_are_decided_by_what_records_with_one_show() {
    let mut name_and_county = Vec::new();
    let mut namesakes = Vec::new();
    for world in [
        "namesake_share=0.02,no_id_share=0.3",
        "namesake_share=0.3,no_id_share=0.3",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        generate(&data, 500, &["--only", "health", "--world", world]);
        let lake = lake_dir(&tmp);
        ingest_ok(&lake, "roster", &[&data.join("roster.csv")]);
        ingest_ok(&lake, "health", &[&data.join("health.csv")]);
        let out = ok(bin().args(["link", "--lake", &lake]));
        assert!(out.contains("precision without ID"), "{out}");
        // The generator leaves IDs out for anyone alike: the assumption
        // holds, and the summary raises no doubt about it.
        assert!(!out.contains("校准假设可能不成立"), "{out}");
        let gap = sql(
            &lake,
            "SELECT calibration_assumption_gap FROM link_history WHERE source = 'health'",
        );
        assert!(
            gap[0][0].parse::<f64>().unwrap().abs() <= 0.15,
            "{world}: {gap:?}"
        );

        // Per pattern: how often right, the model beside it, the decision.
        let rows = sql(
            &lake,
            "SELECT pattern, records, right_person, share_right, model_probability, coalesce(decision, '') \
             FROM link_calibration WHERE source = 'health'",
        );
        assert!(rows.len() > 3, "{world}: {rows:?}");
        let num = |v: &str| v.parse::<f64>().unwrap();
        let (mut records, mut right) = (0.0, 0.0);
        for r in &rows {
            if r[0].starts_with("name=exact birth_date=missing")
                && r[0].contains("region=same_county ")
            {
                records += num(&r[1]);
                right += num(&r[2]);
            }
        }
        assert!(
            records >= 50.0,
            "{world}: {records} name-and-county records"
        );
        name_and_county.push(right / records);

        // The decision follows the data: every pattern seen on 20 records
        // or more that is linked is at least as often right (smoothed) as
        // every such pattern left unlinked.
        let smoothed = |r: &Vec<String>| (num(&r[2]) + num(&r[4])) / (num(&r[1]) + 1.0);
        let decided =
            |d: &'static str| rows.iter().filter(move |r| r[5] == d && num(&r[1]) >= 20.0);
        let worst_linked = decided("linked").map(smoothed).fold(1.0, f64::min);
        let best_unlinked = decided("unlinked").map(smoothed).fold(0.0, f64::max);
        assert!(decided("linked").count() > 0, "{world}: {rows:?}");
        assert!(worst_linked >= best_unlinked, "{world}: {rows:?}");
        // A rarer pattern is decided only when the patterns differing from
        // it in the model's band (or in the band and the runner-up) add up
        // to 20 records; otherwise it is left to the model.
        let without = |pattern: &str, parts: &[&str]| {
            pattern
                .split(' ')
                .filter(|p| !parts.iter().any(|part| p.starts_with(part)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let pooled = |pattern: &str, parts: &[&str]| {
            let key = without(pattern, parts);
            rows.iter()
                .filter(|r| without(&r[0], parts) == key)
                .map(|r| num(&r[1]))
                .sum::<f64>()
        };
        for r in rows.iter().filter(|r| num(&r[1]) < 20.0) {
            let pool = pooled(&r[0], &["model="]).max(pooled(&r[0], &["model=", "rival="]));
            assert_eq!(pool < 20.0, r[5].is_empty(), "{world}: {r:?} pooled {pool}");
        }

        // The target and the budget hold, measured against the truth.
        let e = eval_json(&lake, "health", &data.join("truth_health.csv"));
        assert!(e["precision"].as_f64().unwrap() >= 0.99, "{world}: {e}");
        let no_id_review = count(
            &lake,
            "SELECT count(*) FROM link_health k JOIN staged_health s USING (settlement_id) \
             WHERE k.status = 'review' AND s.id_number IS NULL",
        );
        let all = count(&lake, "SELECT count(*) FROM link_health");
        assert!(
            no_id_review as f64 <= 0.02 * all as f64 + 1.0,
            "{world}: {no_id_review} of {all} in review"
        );
        // The estimate is recorded, and shown beside the measured figure.
        let history = sql(
            &lake,
            "SELECT calibration_labelled, calibrated_precision_without_id FROM link_history WHERE source = 'health'",
        );
        assert!(num(&history[0][0]) > 100.0, "{history:?}");
        let estimated = num(&history[0][1]);
        assert!((0.0..=1.0).contains(&estimated), "{history:?}");
        assert_eq!(
            e["without_id"]["calibrated_precision"].as_f64(),
            Some(estimated),
            "{e}"
        );
        // This run trained the model: link_model keeps the same estimates
        // beside the parameters they were made with.
        let model = sql(
            &lake,
            "SELECT DISTINCT calibration_labelled, calibrated_precision_without_id FROM link_model WHERE source = 'health'",
        );
        assert_eq!(model, history, "{world}");

        // The bound of linking every name-only record: all true matches
        // found, the namesakes sharing a roster person's name and county
        // its only false links.
        let all = &e["link_all_bound"];
        assert_eq!(all["correct"], e["linker"]["true_matches"], "{world}: {e}");
        assert_eq!(all["recall"].as_f64(), Some(1.0), "{world}: {e}");
        namesakes.push(all["links"].as_i64().unwrap() - all["correct"].as_i64().unwrap());
        // And of leaving them all: every link right, those true matches missed.
        let none = &e["link_none_bound"];
        assert_eq!(none["precision"].as_f64(), Some(1.0), "{world}: {e}");
        let share = e["name_and_region_only_share"].as_f64().unwrap();
        assert!(
            (none["recall"].as_f64().unwrap() - (1.0 - share)).abs() < 1e-9,
            "{world}: {e}"
        );
        // Linking only those whose name and county belong to one roster
        // person: fewer false links than linking them all, and no more
        // found than linking them all, nor fewer than leaving them.
        let unique = &e["link_unique_bound"];
        let wrong =
            |b: &serde_json::Value| b["links"].as_i64().unwrap() - b["correct"].as_i64().unwrap();
        assert!(wrong(unique) <= wrong(all), "{world}: {e}");
        let correct = unique["correct"].as_i64().unwrap();
        assert!(correct <= all["correct"].as_i64().unwrap(), "{world}: {e}");
        assert!(correct >= none["correct"].as_i64().unwrap(), "{world}: {e}");
        assert!(
            correct > none["correct"].as_i64().unwrap(),
            "{world}: some are unique: {e}"
        );
        // The best a linker can expect from what they show: at least
        // leaving them all, and never all of them found where two roster
        // people share a name.
        let best = &e["link_best_bound"];
        let f1 = |b: &serde_json::Value| b["f1"].as_f64().unwrap();
        assert!(f1(best) >= f1(none), "{world}: {e}");
        assert!(
            best["correct"].as_i64().unwrap() < all["correct"].as_i64().unwrap(),
            "{world}: {e}"
        );
        let text = ok(bin()
            .args(["eval", "--lake", &lake, "--source", "health", "--truth"])
            .arg(data.join("truth_health.csv")));
        assert!(
            text.contains(&format!(
                "deciding them by name, place and gender can do 仅凭姓名、地区和性别可达的最优: F1 {:.4}",
                f1(best)
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "F1 {:.4} linking them all",
                all["f1"].as_f64().unwrap()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "belong to one roster person 仅关联姓名和地区唯一对应的记录: F1 {:.4}",
                unique["f1"].as_f64().unwrap()
            )),
            "{text}"
        );
    }
    // Few namesakes: a name and a county usually are the person; many:
    // much less often, and linking them all would link many strangers.
    assert!(
        name_and_county[0] > name_and_county[1] + 0.1,
        "{name_and_county:?}"
    );
    assert!(namesakes[1] > 2 * namesakes[0].max(1), "{namesakes:?}");
}
