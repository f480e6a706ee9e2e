//! The HTTP API over a real socket: tokens (401/403), region scopes,
//! masking, verification results feeding the warning state, the audit log,
//! metrics, and a walk over every operation of the OpenAPI document with
//! good and bad input (400 with a message, never 500).

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::common::*;
use serde_json::{Value, json};

struct Fixture {
    lake: String,
    schemas: PathBuf,
    admin: String,
    /// Reader limited to the county of `household`.
    reader: String,
    /// Verifier limited to the same county.
    verifier: String,
    /// Reader of another county.
    outsider: String,
    /// A household of that county with warnings and linked records.
    household: String,
    /// One of its warnings.
    warning: String,
    _tmp: tempfile::TempDir,
}

fn token(lake: &str, name: &str, role: &str, region: Option<&str>) -> String {
    let mut cmd = bin();
    cmd.args([
        "token", "create", "--lake", lake, "--name", name, "--role", role,
    ]);
    if let Some(r) = region {
        cmd.args(["--region", r]);
    }
    ok(&mut cmd).trim().to_string()
}

/// One lake for every test here: 150 generated households, a full run.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let file = pipeline_file(tmp.path(), 150, "");
        let lake = tmp.path().join("lake").display().to_string();
        ok(bin()
            .arg("run")
            .arg(&file)
            .args(["--lake", &lake, "--as-of", "2026-11-20"]));
        // A household with a warning and the most linked records.
        let rows = sql(
            &lake,
            "SELECT w.household_id, w.county_code, min(w.warning_id) FROM warnings w
             JOIN link_health l ON l.household_id = w.household_id
             GROUP BY w.household_id, w.county_code ORDER BY count(*) DESC, w.household_id LIMIT 1",
        );
        let (household, county, warning) =
            (rows[0][0].clone(), rows[0][1].clone(), rows[0][2].clone());
        let other = sql(
            &lake,
            &format!("SELECT min(county_code) FROM warnings WHERE county_code <> '{county}'"),
        )[0][0]
            .clone();
        Fixture {
            admin: token(&lake, "省级管理员", "admin", None),
            reader: token(&lake, "县级查看", "reader", Some(&county)),
            verifier: token(&lake, "乡镇核实员", "verifier", Some(&county)),
            outsider: token(&lake, "外县查看", "reader", Some(&other)),
            schemas: repo().join("schemas"),
            lake,
            household,
            warning,
            _tmp: tmp,
        }
    })
}

/// A runtime with the API on an ephemeral port; returns its base URL.
fn start(f: &Fixture) -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base = rt.block_on(async {
        let lake = safetynet::lake::Lake::open(&f.lake).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let access = safetynet::access::Access::new(
            lake,
            &f.schemas,
            Default::default(),
            std::time::Duration::from_secs(2),
        )
        .unwrap();
        let state = safetynet::api::AppState::new(access);
        tokio::spawn(safetynet::api::serve(
            listener,
            state,
            std::future::pending(),
        ));
        base
    });
    (rt, base)
}

struct Client<'a> {
    rt: &'a tokio::runtime::Runtime,
    base: String,
    http: reqwest::Client,
}

impl Client<'_> {
    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        self.rt.block_on(async {
            let mut req = self
                .http
                .request(method.parse().unwrap(), format!("{}{path}", self.base));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/json")
                    .body(b.to_string());
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }
    fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send("GET", path, Some(token), None)
    }
}

fn client<'a>(rt: &'a tokio::runtime::Runtime, base: &str) -> Client<'a> {
    Client {
        rt,
        base: base.to_string(),
        http: reqwest::Client::new(),
    }
}

fn assert_error(status: u16, body: &Value, want: u16, context: &str) {
    assert_eq!(status, want, "{context}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{context}: no error message in {body}");
}

#[test]
fn tokens_are_required_and_scoped() {
    let f = fixture();
    let (rt, base) = start(f);
    let c = client(&rt, &base);

    let (s, b) = c.send("GET", "/api/v1/warnings", None, None);
    assert_error(s, &b, 401, "no token");
    let (s, b) = c.get(
        "/api/v1/warnings",
        "snt_00000000_notarealsecretnotarealsecret00",
    );
    assert_error(s, &b, 401, "made-up token");
    let tampered = format!("{}x", &f.reader[..f.reader.len() - 1]);
    let (s, b) = c.get("/api/v1/warnings", &tampered);
    assert_error(s, &b, 401, "tampered secret");

    // A county reader sees only its county, whatever it asks for.
    let county = &f.reader;
    let (s, b) = c.get("/api/v1/warnings?limit=1000", county);
    assert_eq!(s, 200, "{b}");
    let items = b["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let total = count(&f.lake, "SELECT count(*) FROM warnings");
    assert!(
        (items.len() as i64) < total,
        "a county sees fewer than all warnings"
    );
    let prefix = items[0]["county_code"].as_str().unwrap().to_string();
    assert!(items.iter().all(|w| w["county_code"] == prefix.as_str()));
    let (s, b) = c.get("/api/v1/warnings?region=52", county);
    assert_error(s, &b, 403, "broader region than the token's");
    let (s, b) = c.get(&format!("/api/v1/warnings/{}", f.warning), &f.outsider);
    assert_error(s, &b, 403, "warning of another county");
    let (s, b) = c.get(
        &format!("/api/v1/households/{}/timeline", f.household),
        &f.outsider,
    );
    assert_error(s, &b, 403, "household of another county");
    let (s, b) = c.get("/api/v1/deliveries", county);
    assert_error(s, &b, 403, "delivery status with a region-scoped token");
    let province_reader = token(&f.lake, "省级查看", "reader", None);
    let (s, b) = c.get("/api/v1/deliveries", &province_reader);
    assert_error(
        s,
        &b,
        403,
        "delivery status with a reader token without region",
    );
    let (s, b) = c.get("/api/v1/deliveries", &f.admin);
    assert_eq!(s, 200, "admin reads delivery status: {b}");

    // Readers may not verify.
    let body = r#"{"visited_on":"2026-11-21","outcome":"not_included","reason":"收入稳定","visited_by":"王五"}"#;
    let (s, b) = c.send(
        "POST",
        &format!("/api/v1/warnings/{}/verification", f.warning),
        Some(county),
        Some(body),
    );
    assert_error(s, &b, 403, "reader posting a verification");

    // A revoked token stops working (the token cache refreshes every 5 s).
    let doomed = token(&f.lake, "临时", "reader", None);
    assert_eq!(c.get("/api/v1/warnings?limit=1", &doomed).0, 200);
    let id = doomed.split('_').nth(1).unwrap().to_string();
    ok(bin().args(["token", "revoke", "--lake", &f.lake, &id]));
    std::thread::sleep(std::time::Duration::from_secs(6));
    let (s, b) = c.get("/api/v1/warnings?limit=1", &doomed);
    assert_error(s, &b, 401, "revoked token");
}

#[test]
fn timeline_masks_identifiers_unless_admin() {
    let f = fixture();
    let (rt, base) = start(f);
    let c = client(&rt, &base);
    let path = format!("/api/v1/households/{}/timeline", f.household);

    let (s, masked) = c.get(&path, &f.reader);
    assert_eq!(s, 200, "{masked}");
    let (s, raw) = c.get(&path, &f.admin);
    assert_eq!(s, 200, "{raw}");
    let members = masked["members"].as_array().unwrap();
    assert!(!members.is_empty());
    for (m, r) in members.iter().zip(raw["members"].as_array().unwrap()) {
        let (id, raw_id) = (
            m["id_number"].as_str().unwrap(),
            r["id_number"].as_str().unwrap(),
        );
        assert_eq!(id.len(), raw_id.len());
        assert_eq!(&id[..6], &raw_id[..6]);
        assert_eq!(&id[id.len() - 4..], &raw_id[raw_id.len() - 4..]);
        assert!(id[6..id.len() - 4].chars().all(|c| c == '*'), "{id}");
        let name = m["name"].as_str().unwrap();
        assert!(name.ends_with('*') && name.chars().count() <= 3, "{name}");
        assert!(!r["name"].as_str().unwrap().ends_with('*'));
        // The hidden ID digits are the birth date: beside a masked ID only
        // the year is shown, so the number cannot be rebuilt.
        let (born, raw_born) = (
            m["birth_date"].as_str().unwrap(),
            r["birth_date"].as_str().unwrap(),
        );
        assert_eq!(&born[..4], &raw_born[..4]);
        assert!(born.ends_with("-01-01"), "{born}");
        assert_eq!(
            raw_born.replace('-', ""),
            raw_id[6..14],
            "admin sees the full date"
        );
    }
    let records = masked["records"].as_array().unwrap();
    assert!(!records.is_empty(), "{masked}");
    for r in records {
        let fields = r["fields"].as_object().unwrap();
        for key in ["name", "name_raw"] {
            if let Some(v) = fields.get(key).and_then(Value::as_str) {
                assert!(v.is_empty() || v.ends_with('*'), "{key} = {v}");
            }
        }
        assert!(["linked", "review"].contains(&r["link"]["status"].as_str().unwrap()));
    }
    // Records come in date order, and the household's warnings are there.
    let dates: Vec<&str> = records.iter().filter_map(|r| r["date"].as_str()).collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
    assert!(
        masked["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["warning_id"] == f.warning.as_str())
    );
}

#[test]
fn verification_updates_the_warning_state_and_everything_is_audited() {
    let f = fixture();
    let (rt, base) = start(f);
    let c = client(&rt, &base);
    // Verify a warning other than the fixture's, so other tests see it open.
    let target = sql(
        &f.lake,
        &format!(
            "SELECT max(warning_id) FROM warnings WHERE county_code = (SELECT county_code FROM warnings WHERE warning_id = '{}')",
            f.warning
        ),
    )[0][0]
        .clone();
    let path = format!("/api/v1/warnings/{target}/verification");
    let body = json!({"visited_on": "2026-11-21", "outcome": "not_included", "reason": "务工收入稳定", "visited_by": "王五"});
    let (s, b) = c.send("POST", &path, Some(&f.verifier), Some(&body.to_string()));
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "verified");
    assert_eq!(b["outcome"], "not_included");
    let (_, one) = c.get(&format!("/api/v1/warnings/{target}"), &f.admin);
    let events: Vec<&str> = one["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"verified"), "{one}");
    // The change is in the outbox, for the monitoring system.
    assert!(
        one["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["event"] == "verified")
    );
    assert_eq!(
        count(
            &f.lake,
            &format!(
                "SELECT count(*) FROM warnings WHERE warning_id = '{target}' AND status = 'verified'"
            )
        ),
        1
    );

    // A verified warning is listed as such, and filters work together.
    let (_, listed) = c.get("/api/v1/warnings?status=verified&limit=1000", &f.admin);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["warning_id"] == target.as_str())
    );

    // Every call above is on record, with who, what and the outcome.
    let audit = sql(
        &f.lake,
        &format!(
            "SELECT user_name, role, code, outcome FROM audit_log WHERE request = 'POST {path}' ORDER BY at"
        ),
    );
    assert!(
        audit
            .iter()
            .any(|r| r == &["乡镇核实员", "verifier", "200", "ok"]),
        "{audit:?}"
    );
    let (s, _) = c.send("GET", "/api/v1/warnings", None, None);
    assert_eq!(s, 401);
    assert!(
        count(
            &f.lake,
            "SELECT count(*) FROM audit_log WHERE code = 401 AND user_name = '-' AND client LIKE '127.0.0.1:%'"
        ) >= 1
    );
}

#[test]
fn pages_cover_every_warning_once_and_metrics_are_served() {
    let f = fixture();
    let (rt, base) = start(f);
    let c = client(&rt, &base);
    let mut seen = Vec::new();
    let mut path = "/api/v1/warnings?limit=7".to_string();
    loop {
        let (s, b) = c.get(&path, &f.admin);
        assert_eq!(s, 200, "{b}");
        seen.extend(
            b["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["warning_id"].as_str().unwrap().to_string()),
        );
        match b["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/warnings?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    let all = sql(
        &f.lake,
        "SELECT warning_id FROM warnings ORDER BY warning_id",
    );
    let all: Vec<String> = all.into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(seen, all);

    let (s, b) = c.send("GET", "/healthz", None, None);
    assert_eq!((s, b["status"].as_str()), (200, Some("ok")));
    let metrics = rt.block_on(async {
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    for line in [
        "safetynet_run_stages_total{stage=\"warn\",status=\"ok\"} 1",
        "safetynet_delivery_items{state=\"pending\"}",
        "safetynet_delivery_lag_seconds",
        "safetynet_rows_total{source=\"health\",outcome=\"staged\"}",
        "safetynet_warnings{status=\"open\"",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}

/// Bad values for a parameter, from its schema.
fn bad_values(schema: &Value) -> Vec<String> {
    let mut out = vec![
        "'; DROP TABLE warnings; --".to_string(),
        "\u{0}".into(),
        "x".repeat(5000),
    ];
    match schema["type"].as_str() {
        Some("integer") => {
            out.extend(["abc", "-1", "0", "1.5", "99999999999999999999"].map(String::from))
        }
        _ if schema.get("enum").is_some() => out.push("不存在".into()),
        _ if schema["format"] == "date-time" => {
            out.extend(["2026-13-45", "yesterday"].map(String::from))
        }
        _ => {}
    }
    out
}

/// Walk the OpenAPI document: every operation answers a good request with
/// 200, and every bad parameter, path or body with 400 and a message.
#[test]
fn openapi_walk_good_and_bad_input() {
    let f = fixture();
    let (rt, base) = start(f);
    let c = client(&rt, &base);
    let (s, doc) = c.send("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let good_path_value = |name: &str| match name {
        "warning_id" => f.warning.clone(),
        "household_id" => f.household.clone(),
        "key" => "user:nobody".to_string(),
        other => panic!("no sample value for path parameter {other}"),
    };
    let good_body = json!({"visited_on": "2026-11-22", "outcome": "risk_eliminated", "reason": "", "visited_by": "测试"});
    let bad_bodies = [
        "",
        "not json",
        "[]",
        "{}",
        r#"{"visited_on":"2026-11-22","outcome":"risk_eliminated"}"#,
        r#"{"visited_on":"2026-11-22","outcome":"maybe","visited_by":"x"}"#,
        r#"{"visited_on":"22/11/2026","outcome":"included","visited_by":"x"}"#,
        r#"{"visited_on":"2999-01-01","outcome":"included","visited_by":"x"}"#,
        r#"{"visited_on":"2026-11-22","outcome":"included","visited_by":"  "}"#,
        r#"{"visited_on":"2026-11-22","outcome":"included","visited_by":"x","extra":1}"#,
        r#"{"visited_on":20261122,"outcome":"included","visited_by":"x"}"#,
    ];
    let mut operations = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let method = method.to_uppercase();
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let fill = |bad: Option<(&str, &str)>| {
                let mut path = format!("/api/v1{template}");
                for p in params.iter().filter(|p| p["in"] == "path") {
                    let name = p["name"].as_str().unwrap();
                    let value = match bad {
                        Some((n, v)) if n == name => v.to_string(),
                        _ => good_path_value(name),
                    };
                    let encoded: String =
                        url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
                    path = path.replace(&format!("{{{name}}}"), &encoded);
                }
                path
            };
            let body = op.get("requestBody").map(|_| good_body.to_string());
            let context = format!("{method} {template}");
            let (s, b) = c.send(&method, &fill(None), Some(&f.admin), body.as_deref());
            assert_eq!(s, 200, "{context} with good input: {b}");

            for p in &params {
                let name = p["name"].as_str().unwrap();
                for value in bad_values(&p["schema"]) {
                    let (s, b) = if p["in"] == "path" {
                        c.send(
                            &method,
                            &fill(Some((name, &value))),
                            Some(&f.admin),
                            body.as_deref(),
                        )
                    } else {
                        let encoded: String =
                            url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
                        c.send(
                            &method,
                            &format!("{}?{name}={encoded}", fill(None)),
                            Some(&f.admin),
                            body.as_deref(),
                        )
                    };
                    assert!(
                        s == 400 || (s == 404 && p["in"] == "path"),
                        "{context} {name}={value:.40}: {s} {b}"
                    );
                    assert_error(s, &b, s, &context);
                }
            }
            let (s, b) = c.send(
                &method,
                &format!("{}?nonsense=1", fill(None)),
                Some(&f.admin),
                body.as_deref(),
            );
            assert_error(s, &b, 400, &format!("{context} with an unknown parameter"));
            if op.get("requestBody").is_some() {
                for bad in bad_bodies {
                    let (s, b) = c.send(&method, &fill(None), Some(&f.admin), Some(bad));
                    assert_error(s, &b, 400, &format!("{context} with body {bad}"));
                }
            }
            // The wrong method is a JSON 405, not a crash.
            let other = if method == "GET" { "DELETE" } else { "GET" };
            let (s, b) = c.send(other, &fill(None), Some(&f.admin), None);
            assert_error(s, &b, 405, &format!("{other} {template}"));
        }
    }
    assert_eq!(operations, 7);
    let (s, b) = c.get("/api/v1/no-such-thing", &f.admin);
    assert_error(s, &b, 404, "unknown endpoint");
    // Nothing above was answered with a 5xx.
    assert_eq!(
        count(&f.lake, "SELECT count(*) FROM audit_log WHERE code >= 500"),
        0,
        "{:?}",
        sql(
            &f.lake,
            "SELECT request, error FROM audit_log WHERE code >= 500"
        )
    );
}

/// `safetynet serve` starts the API beside the scheduler and stops on SIGTERM.
#[test]
fn serve_hosts_the_api() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"api\"\nlake = \"{}\"\nschemas = \"{}\"\n[[source]]\nname = \"roster\"\ninputs = []\n",
            f.lake,
            f.schemas.display()
        ),
    )
    .unwrap();
    let mut child = bin()
        .env("SAFETYNET_LOG", "safetynet=info")
        .args(["--log-format", "json", "serve"])
        .arg(&file)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            let v: Value = serde_json::from_str(&l).ok()?;
            v["fields"]["address"].as_str().map(str::to_string)
        })
        .expect("serve logs the API address");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = client(&rt, &format!("http://{address}"));
    let (s, b) = c.get("/api/v1/warnings?limit=1", &f.admin);
    assert_eq!(s, 200, "{b}");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
