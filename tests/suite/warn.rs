//! Warnings end to end in every-rule mode (every clue a task): fixture
//! households with known signals on top of a generated background, every
//! shipped rule, and the state rules (no repeats, reopen on new evidence,
//! suppression, pending review). The assessment is specified in
//! `warn_assessment.rs`.

use std::fmt::Write as _;
use std::path::Path;

use crate::common::*;
use safetynet::identity::id_number::check_char;

fn id(region: &str, birth: &str, seq: u32) -> String {
    let first17 = format!("{region}{birth}{seq:03}");
    format!("{first17}{}", check_char(&first17).unwrap())
}

struct Member {
    household: &'static str,
    name: &'static str,
    id: String,
    gender: &'static str,
    birth: &'static str,
    relation: &'static str,
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn warnings_of(lake: &str, household: &str) -> Vec<Vec<String>> {
    sql(
        lake,
        &format!(
            "SELECT risk_type, severity, rules, status, records, warning_id FROM warnings WHERE household_id = '{household}' ORDER BY risk_type"
        ),
    )
}

fn delta_versions(lake: &str, table: &str) -> usize {
    std::fs::read_dir(Path::new(lake).join(table).join("_delta_log"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn rules_state_and_edge_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(&data, 150, &[]);
    let village = "522322001299";
    let m = |household, name, seq, gender, birth: &'static str, relation| Member {
        household,
        name,
        id: id("522322", birth, seq),
        gender,
        birth,
        relation,
    };
    let members = vec![
        m("FX0001", "覃翠莲", 11, "女", "19800315", "户主"),
        m("FX0002", "韦金贵", 21, "男", "19750101", "户主"),
        m("FX0003", "蒙世昌", 31, "男", "19700505", "户主"),
        m("FX0004", "岑家旺", 41, "男", "19650707", "户主"),
        m("FX0004", "岑光荣", 43, "男", "19860909", "子"),
        m("FX0005", "龚永红", 51, "男", "19810202", "户主"),
        m("FX0005", "龚小红", 52, "女", "20140606", "女"),
        m("FX0006", "莫玉成", 61, "男", "19720303", "户主"),
        m("FX0007", "黎彩霞", 72, "女", "19790404", "户主"),
        m("FX0008", "解德才", 81, "男", "19600808", "户主"),
        m("FX0010", "单美玲", 91, "女", "19880808", "户主"),
    ];
    let mut roster = String::new();
    for (i, p) in members.iter().enumerate() {
        let (size, income, risks) = match p.household {
            "FX0003" => (1, 60000, "因病"),
            "FX0006" => (2, 20000, ""),
            "FX0004" | "FX0005" => (2, 100000, ""),
            _ => (1, 100000, ""),
        };
        writeln!(
            roster,
            "{h},{h}{i:02},贵州省,黔西南州,兴仁市,测试镇,测试村,{village},脱贫户,{size},{income},,{risks},{name},{id},{gender},{birth},{relation}",
            h = p.household, name = p.name, id = p.id, gender = p.gender, birth = p.birth, relation = p.relation
        )
        .unwrap();
    }
    // The same person on a second roster household.
    let twice = members.iter().find(|p| p.household == "FX0008").unwrap();
    writeln!(roster, "FX0009,FX000901,贵州省,黔西南州,兴仁市,测试镇,测试村,{village},脱贫户,1,100000,,,{},{},男,{},户主", twice.name, twice.id, twice.birth).unwrap();
    append(&data.join("roster.csv"), &roster);

    let who = |name: &str| members.iter().find(|p| p.name == name).unwrap();
    let health_row = |key: &str, name: &str, date: &str, paid: &str, serious: &str| {
        let p = who(name);
        format!(
            "{key},{},{},{},,住院,{date},{date},肺炎,{serious},{paid},0,{paid},522322\n",
            p.name, p.id, p.gender
        )
    };
    let mut health = String::new();
    health += &health_row("FXH01", "覃翠莲", "2026-03-01", "3000.00", "否");
    health += &health_row("FXH02", "覃翠莲", "2026-06-01", "2000.00", "否"); // total exactly 5000
    health += &health_row("FXH03", "韦金贵", "2026-04-01", "4999.99", "否"); // just under
    health += &health_row("FXH04", "韦金贵", "2025-12-30", "8000.00", "否"); // last year
    health += &health_row("FXH05", "蒙世昌", "2026-05-01", "100.00", "是"); // serious, but monitored for 因病
    health += &health_row("FXH06", "莫玉成", "2026-05-01", "3000.00", "否"); // pushes income below the line
    health += &health_row("FXH07", "黎彩霞", "2026-07-01", "8000.00", "否"); // two rules, one warning
    health += &health_row("FXH08", "解德才", "2026-07-01", "6000.00", "否"); // on two rosters: review
    health += &health_row("FXH11", "单美玲", "2026-08-01", "100.00", "是"); // serious illness
    health += "FXH09,黎彩霞,,女,,门诊,2026-07-02,2026-07-02,肺炎,否,100,0,,522322\n"; // missing amount: quarantined
    append(&data.join("health.csv"), &health);

    let civil = format!(
        "FXC01,岑家旺,{},男,,低保,新增,2026-02-01,300.00,,522322\nFXC02,岑光荣,{},男,,死亡登记,登记,2026-03-01,,,522322\nFXC03,龚永红,{},男,,残疾人两项补贴,新增,2026-04-01,,一级,522322\n",
        who("岑家旺").id,
        who("岑光荣").id,
        who("龚永红").id
    );
    append(&data.join("civil_affairs.csv"), &civil);
    let child = who("龚小红");
    append(
        &data.join("education.csv"),
        &format!(
            "FXE01,{},{},女,2014-06-06,兴仁市第二中学,初中,初1,辍学,2026-09-10,,522322\n",
            child.name, child.id
        ),
    );
    let adult = who("龚永红");
    append(
        &data.join("social_insurance.csv"),
        &format!(
            "FXS01,{},{},男,,失业登记,2026-06-15,兴仁市建筑工程有限公司,3000,522322\n",
            adult.name, adult.id
        ),
    );

    let lake = lake_dir(&tmp);
    ingest_ok(&lake, "roster", &[&data.join("roster.csv")]);
    for source in ["health", "civil_affairs", "education", "social_insurance"] {
        ingest_ok(&lake, source, &[&data.join(format!("{source}.csv"))]);
    }
    assert_eq!(
        count(
            &lake,
            "SELECT count(*) FROM quarantine_health WHERE raw_text LIKE 'FXH09%'"
        ),
        1
    );
    ok(bin().args(["link", "--lake", &lake]));
    // Fixture records link (the person on two rosters goes to review).
    let statuses = sql(
        &lake,
        "SELECT settlement_id, status FROM link_health WHERE settlement_id LIKE 'FXH%' ORDER BY 1",
    );
    for row in &statuses {
        let expected = if row[0] == "FXH08" {
            "review"
        } else {
            "linked"
        };
        assert_eq!(row[1], expected, "{statuses:?}");
    }

    let out = ok(bin().args([
        "warn",
        "--mode",
        "every-rule",
        "--lake",
        &lake,
        "--as-of",
        "2026-11-20",
    ]));
    assert!(out.contains("medical_selfpay_ytd"), "{out}");

    let w = warnings_of(&lake, "FX0001");
    assert_eq!(w.len(), 1, "exactly at the threshold warns: {w:?}");
    assert_eq!(
        (w[0][0].as_str(), w[0][2].as_str()),
        ("因病", "medical_selfpay_ytd")
    );
    assert!(
        warnings_of(&lake, "FX0002").is_empty(),
        "under the threshold, or last year's record"
    );
    assert!(
        warnings_of(&lake, "FX0003").is_empty(),
        "already monitored for 因病"
    );
    let w = warnings_of(&lake, "FX0004");
    assert_eq!(
        w.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        vec!["其他", "缺劳动力"],
        "{w:?}"
    );
    assert_eq!(
        w[1][1], "high",
        "a working-age member's death is rated high"
    );
    let w = warnings_of(&lake, "FX0005");
    assert_eq!(
        w.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        vec!["因务工就业不稳", "因学", "因残"],
        "{w:?}"
    );
    assert_eq!(warnings_of(&lake, "FX0006")[0][2], "income_below_line");
    let w = warnings_of(&lake, "FX0007");
    assert_eq!(w.len(), 1, "one task per household and risk: {w:?}");
    assert_eq!(w[0][2], "medical_income_share,medical_selfpay_ytd");
    assert!(warnings_of(&lake, "FX0008").is_empty() && warnings_of(&lake, "FX0009").is_empty());
    let w = warnings_of(&lake, "FX0010");
    assert_eq!(
        (w.len(), w[0][0].as_str(), w[0][2].as_str()),
        (1, "因病", "serious_illness"),
        "{w:?}"
    );
    assert!(out.contains("pending review"), "{out}");
    let pending = out
        .lines()
        .find(|l| l.contains("medical_selfpay_ytd"))
        .unwrap();
    assert!(
        pending
            .trim_end_matches('│')
            .trim()
            .ends_with(|c: char| c.is_ascii_digit() && c != '0'),
        "{pending}"
    );
    // Evidence carries record keys, amounts and dates; region codes are filled.
    let row = sql(
        &lake,
        "SELECT evidence, county_code, village_code, first_seen FROM warnings WHERE household_id = 'FX0001'",
    );
    assert!(
        row[0][0].contains("FXH01")
            && row[0][0].contains("\"amount\":3000.0")
            && row[0][0].contains("2026-03-01"),
        "{}",
        row[0][0]
    );
    assert_eq!(
        (row[0][1].as_str(), row[0][2].as_str(), row[0][3].as_str()),
        ("522322", village, "2026-11-20")
    );
    let id_before = warnings_of(&lake, "FX0001")[0][5].clone();

    // A rerun with no new data changes nothing at all.
    let (v_warnings, v_events) = (
        delta_versions(&lake, "warnings"),
        delta_versions(&lake, "warning_events"),
    );
    let out = ok(bin().args([
        "warn",
        "--mode",
        "every-rule",
        "--lake",
        &lake,
        "--as-of",
        "2026-11-20",
    ]));
    assert!(
        out.contains("raised 新增 0 · updated 更新 0 · reopened 重新打开 0"),
        "{out}"
    );
    assert_eq!(
        (
            delta_versions(&lake, "warnings"),
            delta_versions(&lake, "warning_events")
        ),
        (v_warnings, v_events)
    );
    assert_eq!(
        warnings_of(&lake, "FX0001")[0][5],
        id_before,
        "stable warning id"
    );

    // Verified as not needing inclusion: not raised again…
    ok(bin().args([
        "verify",
        "--lake",
        &lake,
        &id_before,
        "--outcome",
        "not_included",
        "--reason",
        "收入稳定",
        "--by",
        "村干部",
    ]));
    ok(bin().args([
        "warn",
        "--mode",
        "every-rule",
        "--lake",
        &lake,
        "--as-of",
        "2026-11-25",
    ]));
    assert_eq!(warnings_of(&lake, "FX0001")[0][3], "verified");
    // …until new evidence arrives: then it reopens and shows what is new.
    let more = tmp.path().join("health_2026_12.csv");
    std::fs::write(
        &more,
        format!(
            "结算流水号,姓名,证件号码,性别,出生日期,就诊类型,入院日期,结算日期,诊断名称,重大疾病,医疗总费用,基金支付,个人自付,参保地区划\n{}",
            health_row("FXH10", "覃翠莲", "2026-11-22", "700.00", "否")
        ),
    )
    .unwrap();
    ingest_ok(&lake, "health", &[&more]);
    ok(bin().args(["link", "--lake", &lake, "--source", "health"]));
    let out = ok(bin().args([
        "warn",
        "--mode",
        "every-rule",
        "--lake",
        &lake,
        "--as-of",
        "2026-11-25",
    ]));
    assert!(out.contains("reopened 重新打开 1"), "{out}");
    let row = sql(
        &lake,
        "SELECT status, new_evidence FROM warnings WHERE household_id = 'FX0001'",
    );
    assert_eq!(row[0][0], "open");
    assert!(row[0][1].contains("FXH10"), "{}", row[0][1]);
    let events = sql(
        &lake,
        &format!("SELECT event FROM warning_events WHERE warning_id = '{id_before}' ORDER BY at"),
    );
    assert_eq!(
        events.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        vec!["raised", "verified", "reopened"]
    );

    // Unknown warning ids and outcomes are refused.
    let out = run(bin().args(["verify", "--lake", &lake, "W0000", "--outcome", "included"]));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no warning W0000")
    );
    let out = run(bin().args(["verify", "--lake", &lake, &id_before, "--outcome", "maybe"]));
    assert!(!out.status.success());
}
