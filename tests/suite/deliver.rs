//! Push delivery against a real local HTTP receiver that fails, times out,
//! refuses and recovers; a deliverer killed mid-batch; dead-letter and
//! requeue. The receiver keeps every idempotency key with each distinct
//! content it was sent, so "nothing lost, nothing delivered twice with
//! different content" is checked directly.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

enum Behaviour {
    Status(u16),
    Sleep(Duration),
}

#[derive(Default)]
struct Receiver {
    /// What the next requests get, in order; then 200.
    script: Mutex<VecDeque<Behaviour>>,
    /// 400 for any batch holding this key.
    refuse: Mutex<Option<String>>,
    /// 503 for any batch holding this key.
    unavailable: Mutex<Option<String>>,
    /// Every key and each distinct content it arrived with.
    seen: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// Keys in batches answered 200, with how often.
    accepted: Mutex<BTreeMap<String, usize>>,
    requests: Mutex<usize>,
}

async fn receive(State(r): State<Arc<Receiver>>, body: String) -> Response {
    *r.requests.lock().unwrap() += 1;
    let Ok(batch) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let items = batch["items"].as_array().cloned().unwrap_or_default();
    let keys: Vec<String> = items
        .iter()
        .map(|i| {
            i["idempotency_key"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    {
        let mut seen = r.seen.lock().unwrap();
        for (k, item) in keys.iter().zip(&items) {
            seen.entry(k.clone()).or_default().insert(item.to_string());
        }
    }
    let behaviour = r.script.lock().unwrap().pop_front();
    match behaviour {
        Some(Behaviour::Status(code)) => {
            let mut resp =
                (StatusCode::from_u16(code).unwrap(), "scripted failure").into_response();
            if code == 429 {
                resp.headers_mut()
                    .insert("retry-after", "0".parse().unwrap());
            }
            return resp;
        }
        Some(Behaviour::Sleep(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let holds = |slot: &Mutex<Option<String>>| {
        slot.lock()
            .unwrap()
            .as_ref()
            .is_some_and(|k| keys.contains(k))
    };
    if holds(&r.refuse) {
        return (StatusCode::BAD_REQUEST, "unknown household code").into_response();
    }
    if holds(&r.unavailable) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for this one").into_response();
    }
    let mut accepted = r.accepted.lock().unwrap();
    for k in keys {
        *accepted.entry(k).or_default() += 1;
    }
    StatusCode::OK.into_response()
}

fn start_receiver() -> (tokio::runtime::Runtime, Arc<Receiver>, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = Arc::new(Receiver::default());
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/warnings", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/warnings", axum::routing::post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    });
    (rt, receiver, url)
}

fn delivery_section(url: &str, batch_size: usize, max_attempts: u32) -> String {
    format!(
        "[delivery]\nurl = \"{url}\"\nbatch_size = {batch_size}\nmax_attempts = {max_attempts}\n\
         timeout_seconds = 1.0\nbackoff_initial_seconds = 0.05\nbackoff_max_seconds = 0.2\n"
    )
}

/// A lake with warnings (150 households, one run) and a pipeline file
/// that delivers to `url`.
fn lake_with_warnings(
    tmp: &Path,
    url: &str,
    batch_size: usize,
    max_attempts: u32,
) -> (PathBuf, String) {
    let file = pipeline_file(tmp, 150, "");
    let lake = tmp.join("lake").display().to_string();
    ok(bin()
        .arg("run")
        .arg(&file)
        .args(["--lake", &lake, "--as-of", "2026-11-20"]));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!(
            "{text}\n{}",
            delivery_section(url, batch_size, max_attempts)
        ),
    )
    .unwrap();
    (file, lake)
}

fn outbox_keys(lake: &str) -> BTreeSet<String> {
    sql(
        lake,
        "SELECT event_id FROM warning_events WHERE payload IS NOT NULL",
    )
    .into_iter()
    .map(|r| r[0].clone())
    .collect()
}

fn deliver(file: &Path, extra: &[&str]) -> std::process::Output {
    run(bin().arg("deliver").arg("--pipeline").arg(file).args(extra))
}

/// Each key arrived with exactly one content.
fn assert_one_content_per_key(r: &Receiver) {
    for (key, contents) in r.seen.lock().unwrap().iter() {
        assert_eq!(contents.len(), 1, "{key} arrived with different contents");
    }
}

fn states(lake: &str) -> BTreeMap<String, i64> {
    let out = ok(bin().args(["deliver", "--lake", lake, "--status"]));
    let json: String = out.lines().take_while(|l| !l.starts_with('E')).collect();
    let v: Value = serde_json::from_str(&json).unwrap();
    ["pending", "delivered", "rejected", "dead"]
        .iter()
        .map(|s| (s.to_string(), v[s].as_i64().unwrap()))
        .collect()
}

#[test]
fn retries_through_failures_and_timeouts_then_delivers_each_version_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (_rt, receiver, url) = start_receiver();
    let (file, lake) = lake_with_warnings(tmp.path(), &url, 8, 8);
    let keys = outbox_keys(&lake);
    assert!(keys.len() > 16, "need several batches, have {}", keys.len());

    receiver.script.lock().unwrap().extend([
        Behaviour::Status(500),
        Behaviour::Status(429),
        Behaviour::Sleep(Duration::from_secs(3)),
        Behaviour::Status(502),
    ]);
    let out = deliver(&file, &["--retry-within", "60"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accepted: BTreeSet<String> = receiver.accepted.lock().unwrap().keys().cloned().collect();
    assert_eq!(accepted, keys, "every warning version arrives");
    assert_one_content_per_key(&receiver);
    let s = states(&lake);
    assert_eq!(
        (s["pending"], s["delivered"], s["dead"]),
        (0, keys.len() as i64, 0)
    );
    // The failed attempts are on record with their reasons.
    let errors = sql(
        &lake,
        "SELECT DISTINCT http_status FROM deliveries WHERE outcome = 'retry' ORDER BY 1",
    );
    let errors: Vec<String> = errors.into_iter().map(|r| r[0].clone()).collect();
    assert!(
        errors.contains(&"500".to_string()) && errors.contains(&"429".to_string()),
        "{errors:?}"
    );
    assert!(
        count(
            &lake,
            "SELECT count(*) FROM deliveries WHERE error LIKE 'timeout%'"
        ) > 0
    );

    // Nothing new: a pass sends nothing.
    let before = *receiver.requests.lock().unwrap();
    assert!(deliver(&file, &[]).status.success());
    assert_eq!(*receiver.requests.lock().unwrap(), before);

    // A verification is a new version of one warning: only it goes out.
    let warning = sql(&lake, "SELECT min(warning_id) FROM warnings")[0][0].clone();
    ok(bin().args([
        "verify",
        "--lake",
        &lake,
        &warning,
        "--outcome",
        "not_included",
        "--by",
        "测试",
    ]));
    assert!(deliver(&file, &[]).status.success());
    let new_keys: BTreeSet<String> = outbox_keys(&lake).difference(&keys).cloned().collect();
    assert_eq!(new_keys.len(), 1);
    assert_eq!(*receiver.requests.lock().unwrap(), before + 1);
    let content = receiver.seen.lock().unwrap()[new_keys.iter().next().unwrap()].clone();
    let item: Value = serde_json::from_str(content.iter().next().unwrap()).unwrap();
    assert_eq!(
        (item["warning_id"].as_str(), item["status"].as_str()),
        (Some(warning.as_str()), Some("verified"))
    );
}

#[test]
fn refused_items_stop_unavailable_ones_go_to_dead_letter_and_requeue_revives_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (_rt, receiver, url) = start_receiver();
    let (file, lake) = lake_with_warnings(tmp.path(), &url, 10, 3);
    let keys: Vec<String> = outbox_keys(&lake).into_iter().collect();
    let (refused, unavailable) = (keys[3].clone(), keys[17].clone());
    *receiver.refuse.lock().unwrap() = Some(refused.clone());
    *receiver.unavailable.lock().unwrap() = Some(unavailable.clone());

    let out = deliver(&file, &["--retry-within", "60"]);
    assert!(
        !out.status.success(),
        "rejected and dead items make the pass fail"
    );
    let accepted: BTreeSet<String> = receiver.accepted.lock().unwrap().keys().cloned().collect();
    let expected: BTreeSet<String> = keys
        .iter()
        .filter(|k| **k != refused && **k != unavailable)
        .cloned()
        .collect();
    assert_eq!(
        accepted, expected,
        "one bad item does not hold back the others"
    );
    let s = states(&lake);
    assert_eq!((s["rejected"], s["dead"], s["pending"]), (1, 1, 0));
    let row = sql(
        &lake,
        &format!(
            "SELECT outcome, http_status, error FROM deliveries WHERE idempotency_key = '{refused}' ORDER BY at DESC LIMIT 1"
        ),
    );
    assert_eq!(row[0][0], "rejected");
    assert_eq!(row[0][1], "400");
    assert!(row[0][2].contains("unknown household code"), "{row:?}");
    assert_eq!(
        count(
            &lake,
            &format!(
                "SELECT count(*) FROM deliveries WHERE idempotency_key = '{unavailable}' AND outcome <> 'delivered'"
            )
        ),
        3,
        "dead after max_attempts"
    );

    // The receiver is fixed; requeue sends both once more.
    *receiver.refuse.lock().unwrap() = None;
    *receiver.unavailable.lock().unwrap() = None;
    let out = deliver(&file, &["--requeue"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let s = states(&lake);
    assert_eq!(
        (s["delivered"], s["rejected"], s["dead"]),
        (keys.len() as i64, 0, 0)
    );
    assert_one_content_per_key(&receiver);
}

#[test]
fn killed_mid_batch_resumes_with_nothing_lost_and_one_content_per_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (_rt, receiver, url) = start_receiver();
    let (file, lake) = lake_with_warnings(tmp.path(), &url, 10, 8);
    let keys = outbox_keys(&lake);

    // The process dies right after the receiver took the first batch, before
    // the delivery was recorded.
    let out = run(bin()
        .env("SAFETYNET_FAILPOINT", "deliver:after-post")
        .arg("deliver")
        .arg("--pipeline")
        .arg(&file));
    assert!(!out.status.success());
    let first: BTreeSet<String> = receiver.accepted.lock().unwrap().keys().cloned().collect();
    assert_eq!(first.len(), 10);
    assert_eq!(states(&lake)["delivered"], 0);

    let out = deliver(&file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accepted = receiver.accepted.lock().unwrap().clone();
    assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), keys);
    // The first batch came twice — same keys, same content — and nothing else did.
    for (k, n) in &accepted {
        assert_eq!(*n, if first.contains(k) { 2 } else { 1 }, "{k}");
    }
    assert_one_content_per_key(&receiver);
    assert_eq!(states(&lake)["delivered"], keys.len() as i64);
}

#[test]
fn a_run_delivers_as_its_last_stage_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (_rt, receiver, url) = start_receiver();
    let file = pipeline_file(tmp.path(), 60, &delivery_section(&url, 50, 8));
    let lake = tmp.path().join("lake").display().to_string();
    let out = ok(bin()
        .arg("run")
        .arg(&file)
        .args(["--lake", &lake, "--as-of", "2026-11-20"]));
    assert!(out.contains("delivery 推送"), "{out}");
    let keys = outbox_keys(&lake);
    let accepted: BTreeSet<String> = receiver.accepted.lock().unwrap().keys().cloned().collect();
    assert_eq!(accepted, keys);
    let stage = sql(
        &lake,
        "SELECT delivered, error FROM runs WHERE stage = 'deliver'",
    );
    assert_eq!(stage, vec![vec![keys.len().to_string(), String::new()]]);

    // A second run with nothing new delivers nothing.
    ok(bin()
        .arg("run")
        .arg(&file)
        .args(["--lake", &lake, "--as-of", "2026-11-20"]));
    let delivered = sql(
        &lake,
        "SELECT delivered FROM runs WHERE stage = 'deliver' ORDER BY started_at",
    );
    assert_eq!(delivered[1][0], "0");
    assert_eq!(
        receiver.accepted.lock().unwrap().values().sum::<usize>(),
        keys.len()
    );
}
