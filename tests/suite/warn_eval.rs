//! `eval-warnings`: what a data office checks before trusting warnings —
//! both modes scored against the generator's household truth on one lake,
//! the reference that knows the true shocks beside them, the per-household
//! listing, and a truth file with a bad row refused by line.

use crate::common::*;

fn mode<'a>(e: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    e["modes"]
        .as_array()
        .expect("modes")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no mode {name} in {e}"))
}

#[test]
fn both_modes_are_scored_beside_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let sources = ["civil_affairs", "health", "education", "social_insurance"];
    let (data, lake) = generated_lake(&tmp, 600, &sources);
    ok(bin().args(["link", "--lake", &lake]));
    let listing = tmp.path().join("households.csv");
    let truth = data.join("truth_households.csv");
    let out = ok(bin()
        .args(["eval-warnings", "--lake", &lake, "--as-of", "2026-11-20"])
        .arg("--truth")
        .arg(&truth)
        .arg("--households")
        .arg(&listing)
        .args(["--format", "json"]));
    let e: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(e["households"], 600, "{e}");
    assert!(e["newly_at_risk"].as_i64().unwrap() > 0, "{e}");
    let (assessment, every_rule) = (mode(&e, "assessment"), mode(&e, "every_rule"));
    let reference = mode(&e, safetynet::warn::eval::REFERENCE);
    let f = |m: &serde_json::Value, k: &str| m[k].as_f64().unwrap();
    // The assessment sends staff on fewer visits, and more of them find a
    // household really pushed below the line.
    assert!(f(assessment, "tasks") < f(every_rule, "tasks"), "{e}");
    assert!(
        f(assessment, "precision") > f(every_rule, "precision"),
        "{e}"
    );
    // The reference only knows shocks that left a record, so it cannot
    // find more than the bound; and knowing the shocks exactly, it finds
    // at least as many as the assessment's estimate does, less a few the
    // estimate overshoots into.
    let bound = f(&e, "recall_bound");
    assert!(f(reference, "recall") <= bound + 1e-9, "{e}");
    assert!(f(reference, "recall") > 0.0, "{e}");
    for m in [assessment, every_rule, reference] {
        for k in ["precision", "recall", "share_warned"] {
            assert!((0.0..=1.0).contains(&f(m, k)), "{k} of {}: {e}", m["name"]);
        }
    }

    // The listing has every newly-at-risk household with a record, each
    // with an outcome, and the truth beside the estimate.
    let mut reader = csv::Reader::from_path(&listing).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let newly = rows
        .iter()
        .filter(|r| &r[col("status")] == "newly_at_risk")
        .count() as i64;
    assert_eq!(newly, e["newly_at_risk_with_records"].as_i64().unwrap());
    let hits = rows.iter().filter(|r| &r[col("outcome")] == "hit").count() as f64;
    assert!((hits / newly as f64 - f(assessment, "recall")).abs() < 1e-9);
    for r in &rows {
        assert!(
            ["hit", "miss", "false_alarm", "already_below"].contains(&&r[col("outcome")]),
            "{r:?}"
        );
        assert!(!r[col("per_capita_after")].is_empty(), "{r:?}");
    }

    // A truth file with a status it does not know is refused by line.
    let text = std::fs::read_to_string(&truth).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = lines[2]
        .replace("not_at_risk", "maybe")
        .replace("newly_at_risk", "maybe");
    lines[2] = lines[2].replace("already_below", "maybe");
    let bad = tmp.path().join("bad_truth.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let out = run(bin()
        .args(["eval-warnings", "--lake", &lake, "--as-of", "2026-11-20"])
        .arg("--truth")
        .arg(&bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad_truth.csv") && err.contains("line 3") && err.contains("maybe"),
        "{err}"
    );
}

#[test]
fn a_rule_reading_a_parameter_with_no_row_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_data, lake) = generated_lake(&tmp, 50, &["social_insurance"]);
    ok(bin().args(["link", "--lake", &lake]));
    // The shipped thresholds without the share the job-loss component reads.
    let shipped = std::fs::read_to_string(repo().join("pipelines/thresholds.csv")).unwrap();
    let thresholds = tmp.path().join("thresholds.csv");
    let kept: Vec<&str> = shipped
        .lines()
        .filter(|l| !l.contains(",contribution_base_wage_share,"))
        .collect();
    std::fs::write(&thresholds, kept.join("\n")).unwrap();
    let out = run(bin()
        .args(["warn", "--lake", &lake, "--as-of", "2026-11-20"])
        .arg("--thresholds")
        .arg(&thresholds));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for word in [
        "thresholds.csv",
        "contribution_base_wage_share",
        "job_loss.sql",
    ] {
        assert!(err.contains(word), "'{word}' not in: {err}");
    }
    assert!(
        !std::path::Path::new(&lake).join("warnings").exists(),
        "nothing is written"
    );
}
