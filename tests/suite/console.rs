//! The web console in a real browser (headless Chromium through
//! chromedriver): logging in, drilling down from province to village,
//! recording a visit (then reading `warning_events`), a township user
//! refused another township's warning by URL, a form without its CSRF
//! token refused, a phone-sized screen. Wrong passwords and their delay
//! are checked over plain HTTP.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::browser::Browser;
use crate::common::*;
use crate::sql_endpoint::{PASSWORD, Server, add_user, start};
use serde_json::json;

struct Fixture {
    /// The SQL endpoint tests' lake, copied: visits recorded here change
    /// nobody else's data.
    source_lake: String,
    /// A warning, its township, and a warning of another township.
    warning: String,
    township: String,
    village: String,
    elsewhere: String,
    elsewhere_township: String,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let lake = crate::sql_endpoint::fixture().lake.clone();
        let rows = sql(
            &lake,
            "SELECT min(warning_id), township_code, min(village_code) FROM warnings
             WHERE status = 'open' GROUP BY township_code ORDER BY count(*) DESC, township_code LIMIT 2",
        );
        assert_eq!(rows.len(), 2, "two townships with open warnings: {rows:?}");
        let first = sql(
            &lake,
            &format!(
                "SELECT min(warning_id) FROM warnings WHERE status = 'open' AND village_code = '{}'",
                rows[0][2]
            ),
        );
        Fixture {
            source_lake: lake,
            warning: first[0][0].clone(),
            township: rows[0][1].clone(),
            village: rows[0][2].clone(),
            elsewhere: rows[1][0].clone(),
            elsewhere_township: rows[1][1].clone(),
        }
    })
}

/// A service of its own over a copy of the lake, with an admin and a
/// verifier of the fixture's township: (service, base URL, lake).
fn serve(tmp: &Path) -> (Server, String, String) {
    serve_with(tmp, |_| {})
}

/// As [`serve`], with `prepare` run on the copied lake before the service
/// starts.
fn serve_with(tmp: &Path, prepare: impl FnOnce(&str)) -> (Server, String, String) {
    let f = fixture();
    let lake = tmp.join("lake");
    copy_dir(Path::new(&f.source_lake), &lake);
    prepare(&lake.display().to_string());
    let users = tmp.join("users.toml");
    add_user(&users, "admin", "admin", None);
    add_user(&users, "town", "verifier", Some(&f.township));
    let file = tmp.join("console.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"console\"\nlake = \"{}\"\nschemas = \"{}\"\nlinkage = \"{}\"\n\
             [[source]]\nname = \"roster\"\ninputs = []\n\
             [sql]\nlisten = \"127.0.0.1:0\"\nusers = \"{}\"\n",
            lake.display(),
            repo().join("schemas").display(),
            repo().join("pipelines/linkage.toml").display(),
            users.display()
        ),
    )
    .unwrap();
    let server = start(&file).expect("serve starts");
    let base = format!("http://127.0.0.1:{}", server.api_port);
    (server, base, lake.display().to_string())
}

/// A service of its own and a browser window of this size, logged in as
/// `user`.
struct Visit {
    b: Browser,
    base: String,
    lake: String,
    _server: Server,
    _tmp: tempfile::TempDir,
}

fn visit(user: &str, width: u32, height: u32) -> Visit {
    let tmp = tempfile::tempdir().unwrap();
    let (server, base, lake) = serve(tmp.path());
    let b = Browser::start(width, height);
    log_in(&b, &base, user);
    Visit {
        b,
        base,
        lake,
        _server: server,
        _tmp: tmp,
    }
}

fn log_in(b: &Browser, base: &str, user: &str) {
    b.go(&format!("{base}/ui/login"));
    b.type_into("#user", user);
    b.type_into("#password", PASSWORD);
    b.click("#login");
    b.wait_for_text("退出");
}

/// The page does not scroll sideways: what the user reads fits the
/// window (a wide table scrolls inside itself). On failure, names the
/// elements that stick out.
fn assert_fits(b: &Browser, what: &str) {
    let wide = b.script(
        "if (document.documentElement.scrollWidth <= window.innerWidth + 1) return [];
         return [...document.querySelectorAll('body *')]
           .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
           .slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));",
        json!([]),
    );
    assert_eq!(wide, json!([]), "{what} is wider than the window");
}

#[test]
fn a_clerk_logs_in_drills_down_to_a_village_and_records_a_visit() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (_server, base, lake) = serve(tmp.path());
    let b = Browser::start(1280, 800);

    // The console's address as people type it.
    b.go(&format!("{base}/ui/"));
    b.wait_for_text("用户名");
    // A page asked for before logging in comes back after the login.
    b.go(&format!("{base}/ui/warnings/{}", f.warning));
    assert!(b.url().contains("/ui/login?next="), "{}", b.url());
    b.wait_for_text("用户名");
    b.screenshot("login");
    b.type_into("#user", "admin");
    b.type_into("#password", PASSWORD);
    b.click("#login");
    b.wait_for_text(&f.warning);

    // Province, prefecture, county, township, village: one click each.
    b.go(&format!("{base}/ui/warnings"));
    b.wait_for_text("按状态和风险类型计数");
    for len in [2, 4, 6, 9, 12] {
        let code = &f.village[..len];
        if len == 6 {
            b.screenshot("warnings-by-place");
        }
        b.click(&format!(
            "table.counts a[href=\"/ui/warnings?place={code}\"]"
        ));
        b.wait_for_text(code);
    }
    b.wait_for_text("本村预警");
    assert_fits(&b, "the village's warnings");
    b.screenshot("village");
    b.click(&format!("a[href=\"/ui/warnings/{}\"]", f.warning));
    b.wait_for_text("记录入户核实结果");
    b.wait_for_text("证据");
    assert_fits(&b, "the warning page");
    b.screenshot("warning");

    b.click("#outcome option[value=\"not_included\"]");
    b.type_into("#reason", "家中有稳定务工收入");
    b.click("#record-visit");
    b.wait_for_text("核实结果已记录");
    let page = b.wait_for_text("已核实");
    assert!(page.contains("不纳入"), "{page}");

    let events = sql(
        &lake,
        &format!(
            "SELECT event, actor FROM warning_events WHERE warning_id = '{}' AND event = 'verified'",
            f.warning
        ),
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0][1].contains("console user admin"), "{events:?}");
    let state = sql(
        &lake,
        &format!(
            "SELECT status, outcome FROM warnings WHERE warning_id = '{}'",
            f.warning
        ),
    );
    assert_eq!(
        state,
        vec![vec!["verified".to_string(), "not_included".to_string()]]
    );
    // Every page and the visit are on record, under the console's name.
    let audited = count(
        &lake,
        "SELECT count(*) FROM audit_log WHERE interface = 'console' AND user_name = 'admin'
           AND request LIKE 'POST /ui/warnings/%/verification' AND outcome = 'ok'",
    );
    assert_eq!(audited, 1);

    b.go(&format!("{base}/ui/runs"));
    b.wait_for_text("最近的运行");
    assert_fits(&b, "the runs page");
    b.screenshot("runs");
    // Linkage quality: the counts are the link tables', the histogram is drawn.
    b.go(&format!("{base}/ui/linkage?source=health"));
    let text = b.wait_for_text("各来源关联结果");
    let linked = count(
        &lake,
        "SELECT count(*) FROM link_health WHERE status = 'linked'",
    );
    let row = b.script(
        "return [...document.querySelectorAll('table.list tbody tr')]
           .map(r => [...r.cells].map(c => c.innerText.trim()))
           .find(cells => cells[0] === 'health');",
        json!([]),
    );
    assert_eq!(row[1], linked.to_string(), "{text}");
    b.find("svg.histogram line.threshold");
    assert!(text.contains("m（同一人时的概率）"), "{text}");
    // The source's link runs, from link_history.
    let runs = count(
        &lake,
        "SELECT count(*) FROM link_history WHERE source = 'health'",
    );
    let listed = b.script(
        "return [...document.querySelectorAll('table.list caption')]
           .find(c => c.innerText.includes('最近 20 次关联'))
           .closest('table').tBodies[0].rows.length;",
        json!([]),
    );
    assert_eq!(listed, runs.min(20));
    assert!(runs >= 1);
    assert_fits(&b, "the linkage page");
    b.screenshot("linkage");
    b.go(&format!("{base}/ui/runs"));
    b.wait_for_text("最近的运行");

    // English on request.
    b.click("a.lang");
    b.wait_for_text("Recent runs, stage by stage");
}

#[test]
fn a_township_user_sees_only_their_township_whatever_the_url() {
    let f = fixture();
    let Visit { b, base, .. } = &visit("town", 1280, 800);

    // The drill-down starts at the township, however high one asks.
    let page = b.wait_for_text(&f.village);
    assert!(!page.contains(&f.elsewhere_township), "{page}");
    b.go(&format!("{base}/ui/warnings?place={}", &f.township[..6]));
    let page = b.wait_for_text(&f.village);
    assert!(!page.contains(&f.elsewhere_township), "{page}");

    for url in [
        format!("{base}/ui/warnings/{}", f.elsewhere),
        format!("{base}/ui/warnings?place={}", f.elsewhere_township),
    ] {
        b.go(&url);
        let text = b.wait_for_text("无权查看");
        assert!(!text.contains("证据"), "{url}: {text}");
    }
    b.go(&format!("{base}/ui/warnings/{}", f.warning));
    b.wait_for_text("证据");
}

#[test]
fn a_form_without_its_csrf_token_or_from_another_site_is_refused() {
    let f = fixture();
    let Visit { b, base, lake, .. } = &visit("admin", 1280, 800);
    b.go(&format!("{base}/ui/warnings/{}", f.warning));
    b.wait_for_text("记录入户核实结果");
    // The form, sent without its token.
    b.script(
        "document.querySelector('section.verify input[name=_csrf]').remove();
         document.querySelector('section.verify form').submit();",
        json!([]),
    );
    b.wait_for_text("CSRF");
    // And from a script that sends the session cookie but not the token.
    let status = b.script(
        "const r = new XMLHttpRequest();
         r.open('POST', '/ui/logout', false);
         r.setRequestHeader('content-type', 'application/x-www-form-urlencoded');
         r.send('');
         return r.status;",
        json!([]),
    );
    assert_eq!(status, 403);
    let verified = count(
        lake,
        &format!(
            "SELECT count(*) FROM warning_events WHERE warning_id = '{}' AND event = 'verified'",
            f.warning
        ),
    );
    assert_eq!(verified, 0);

    // Another site's page posting with a stolen token is refused on its
    // Origin (the cookie would not even be sent: SameSite=Strict).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{base}/ui/login"))
            .header("origin", "https://evil.example")
            .form(&[("_csrf", "x"), ("user", "admin"), ("password", PASSWORD)])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 403);
}

#[test]
fn wrong_passwords_are_refused_and_slowed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, base, lake) = serve(tmp.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = no_redirects();
    let attempt = |password: &str| {
        rt.block_on(async {
            let (cookie, token) = login_form(&http, &base).await;
            let started = Instant::now();
            let r = http
                .post(format!("{base}/ui/login"))
                .header("cookie", cookie)
                .form(&[
                    ("_csrf", token.as_str()),
                    ("user", "admin"),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let session = set_cookie(&r, "sn_session").is_some();
            let text = r.text().await.unwrap();
            (status, session, text, started.elapsed())
        })
    };
    for _ in 0..3 {
        let (status, session, text, _) = attempt("not-the-password");
        assert_eq!(status, 401);
        assert!(!session && text.contains("用户名或密码错误"), "{text}");
    }
    // From the fourth failure on, each attempt waits first.
    let (status, _, _, took) = attempt("still-not-it");
    assert_eq!(status, 401);
    assert!(took >= Duration::from_millis(250), "{took:?}");
    let (status, session, _, _) = attempt(PASSWORD);
    assert_eq!((status, session), (303, true));
    let failures = count(
        &lake,
        "SELECT count(*) FROM audit_log WHERE interface = 'console' AND user_name = 'admin'
           AND request = 'POST /ui/login' AND outcome = 'error'",
    );
    assert_eq!(failures, 4);
}

#[test]
fn the_console_fits_a_phone_and_every_field_has_a_label() {
    let f = fixture();
    let Visit { b, base, .. } = &visit("town", 390, 844);
    assert_eq!(b.script("return window.innerWidth;", json!([])), 390);
    b.go(&format!("{base}/ui/warnings/{}", f.warning));
    b.wait_for_text("记录入户核实结果");
    assert_fits(b, "the warning page on a phone");
    let labelled = b.script(
        "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
           .filter(e => !(e.labels && e.labels.length)).map(e => e.name);",
        json!([]),
    );
    assert_eq!(labelled, json!([]), "fields without a label");
    b.screenshot("phone-warning");
    b.go(&format!("{base}/ui/warnings?place={}", f.township));
    b.wait_for_text("按状态和风险类型计数");
    assert_fits(b, "the places page on a phone");
    b.screenshot("phone-places");
}

#[test]
fn a_clerk_decides_review_items_with_the_keyboard() {
    let tmp = tempfile::tempdir().unwrap();
    // Records without an ID number decided by the thresholds, not by
    // calibration: the small fixture then has a review band wide enough to
    // page through (calibration keeps review within 2 % of records).
    let settings = tmp.path().join("linkage.toml");
    let shipped = std::fs::read_to_string(repo().join("pipelines/linkage.toml")).unwrap();
    assert!(shipped.contains("\ntarget_precision = "));
    let thresholds_only: Vec<&str> = shipped
        .lines()
        .filter(|l| !l.starts_with("target_precision") && !l.starts_with("review_budget"))
        .collect();
    std::fs::write(&settings, thresholds_only.join("\n")).unwrap();
    let (_server, base, lake) = serve_with(tmp.path(), |lake| {
        for source in ["health", "civil_affairs", "education", "social_insurance"] {
            ok(bin()
                .args(["link", "--lake", lake, "--source", source, "--settings"])
                .arg(&settings));
        }
    });
    // The source with the most records in the review band.
    let (source, band) = ["health", "civil_affairs", "education", "social_insurance"]
        .iter()
        .map(|s| {
            let n = count(
                &lake,
                &format!("SELECT count(*) FROM link_{s} WHERE status = 'review'"),
            );
            (s.to_string(), n)
        })
        .max_by_key(|(_, n)| *n)
        .unwrap();
    assert!(band >= 4, "the fixture has {band} records to review");

    let b = Browser::start(1280, 800);
    log_in(&b, &base, "admin");
    b.go(&format!("{base}/ui/review"));
    b.wait_for_text("各来源待复核的记录");
    b.go(&format!("{base}/ui/review?source={source}"));
    b.wait_for_text("本页已决定 0");
    assert!(b.text().contains("匹配概率"));
    b.find("svg.waterfall");
    b.screenshot("review");
    let items = b.script(
        "return [...document.querySelectorAll('article.item')].map(a => [a.dataset.record, a.dataset.person]);",
        json!([]),
    );
    let pair = |i: usize| {
        (
            items[i][0].as_str().unwrap().to_string(),
            items[i][1].as_str().unwrap().to_string(),
        )
    };

    // y, n; skip the third; y on the fourth, undo it, then n.
    b.press("y");
    b.wait_for_text("本页已决定 1");
    b.press("n");
    b.wait_for_text("本页已决定 2");
    b.press("s");
    b.type_into("#note-3", "出生日期不同");
    b.click("#item-3 h2");
    b.press("y");
    b.wait_for_text("本页已决定 3");
    b.press("u");
    b.wait_for_text("本页已决定 2");
    b.press("n");
    b.wait_for_text("本页已决定 3");

    let rows = sql(
        &lake,
        &format!(
            "SELECT record_key, person_id, decision, reviewer, file, coalesce(note, '') FROM review_decisions
             WHERE source = '{source}' ORDER BY decided_at, decision"
        ),
    );
    let (first, second, third, fourth) = (pair(0), pair(1), pair(2), pair(3));
    let decisions: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    let with = |p: &(String, String), d: &str| (p.0.clone(), p.1.clone(), d.to_string());
    assert_eq!(
        decisions,
        vec![
            with(&first, "match"),
            with(&second, "no_match"),
            with(&fourth, "match"),
            with(&fourth, "undone"),
            with(&fourth, "no_match"),
        ]
    );
    assert!(
        !decisions
            .iter()
            .any(|d| (d.0.clone(), d.1.clone()) == third)
    );
    assert!(
        rows.iter().all(|r| r[3] == "admin" && r[4] == "console"),
        "{rows:?}"
    );
    assert_eq!(rows[2][5], "出生日期不同");

    // What is decided leaves the queue.
    b.go(&format!("{base}/ui/review?source={source}"));
    let text = b.wait_for_text("本页已决定 0");
    assert!(text.contains(&format!("剩余 {}", band - 3)), "{text}");

    // Blind: no model figures.
    b.go(&format!("{base}/ui/review?source={source}&blind=1"));
    let text = b.wait_for_text("盲评");
    assert!(!text.contains("匹配概率"), "{text}");
    let waterfalls = b.script(
        "return document.querySelectorAll('svg.waterfall').length;",
        json!([]),
    );
    assert_eq!(waterfalls, 0);
    b.screenshot("review-blind");

    // A verifier decides no links.
    b.click("form[action=\"/ui/logout\"] button");
    b.wait_for_text("密码");
    log_in(&b, &base, "town");
    assert!(!b.text().contains("人工复核"));
    b.go(&format!("{base}/ui/review?source={source}"));
    b.wait_for_text("无权查看");

    // The next link run follows the latest decisions: the match links,
    // the no-match (the fourth, after its match was undone) does not.
    ok(bin().args(["link", "--lake", &lake, "--source", &source]));
    let key = safetynet::config::SourceSchema::load(&repo().join(format!("schemas/{source}.toml")))
        .unwrap()
        .key;
    let linked_to = |p: &(String, String)| {
        sql(
            &lake,
            &format!(
                "SELECT coalesce(person_id, '-'), status FROM link_{source} WHERE CAST({key} AS VARCHAR) = '{}'",
                p.0
            ),
        )
    };
    assert_eq!(
        linked_to(&first),
        vec![vec![first.1.clone(), "linked".to_string()]]
    );
    for no in [&second, &fourth] {
        let now = linked_to(no);
        assert_ne!(
            now[0][0], no.1,
            "{no:?} is still linked to the rejected candidate: {now:?}"
        );
    }
}

/// An HTTP client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `sn_login` cookie and CSRF token of a fresh login form.
async fn login_form(http: &reqwest::Client, base: &str) -> (String, String) {
    let form = http.get(format!("{base}/ui/login")).send().await.unwrap();
    let cookie = set_cookie(&form, "sn_login").expect("the login form sets sn_login");
    let token = cookie.trim_start_matches("sn_login=").to_string();
    (cookie, token)
}

/// `name=value` of a cookie the answer sets.
fn set_cookie(answer: &reqwest::Response, name: &str) -> Option<String> {
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

/// Log in over plain HTTP: the session cookie and the session's CSRF token.
async fn http_login(http: &reqwest::Client, base: &str, user: &str) -> (String, String) {
    let (cookie, token) = login_form(http, base).await;
    let answer = http
        .post(format!("{base}/ui/login"))
        .header("cookie", cookie)
        .form(&[
            ("_csrf", token.as_str()),
            ("user", user),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let session = set_cookie(&answer, "sn_session").expect("logged in");
    let page = http
        .get(format!("{base}/ui/warnings"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with the session's CSRF token")
        .to_string();
    (session, csrf)
}

#[test]
fn hostile_input_gets_a_clear_refusal_and_is_shown_as_text() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (_server, base, lake) = serve(tmp.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = no_redirects();
    rt.block_on(async {
        let (session, csrf) = http_login(&http, &base, "admin").await;
        let get = |path: String| {
            let (http, session) = (http.clone(), session.clone());
            async move {
                let r = http
                    .get(path)
                    .header("cookie", session)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let html = r
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("text/html"));
                let csp = r.headers().contains_key("content-security-policy");
                (status, html && csp, r.text().await.unwrap())
            }
        };
        let post = |path: String, form: Vec<(&'static str, String)>| {
            let (http, session) = (http.clone(), session.clone());
            async move {
                let r = http
                    .post(path)
                    .header("cookie", session)
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        for (path, want, says) in [
            (format!("{base}/ui/warnings?place=abc"), 400, "place 'abc'"),
            (
                format!("{base}/ui/warnings?place=4512240012"),
                400,
                "2, 4, 6, 9 or 12 digits",
            ),
            (format!("{base}/ui/warnings?evil=1"), 400, "evil"),
            (format!("{base}/ui/warnings?status=gone"), 400, "status"),
            (
                format!("{base}/ui/warnings/W'%20OR%20'1'='1"),
                400,
                "not a warning id",
            ),
            (
                format!("{base}/ui/warnings/W0000000000000000"),
                404,
                "no warning",
            ),
            (
                format!("{base}/ui/review?source=health'--"),
                400,
                "must be 1 to 64 lower-case letters",
            ),
            (
                format!("{base}/ui/linkage?source=nothing"),
                404,
                "has not been linked",
            ),
            (format!("{base}/ui/nowhere"), 404, "页面不存在"),
        ] {
            let (status, html, text) = get(path.clone()).await;
            assert_eq!(status, want, "{path}: {text}");
            assert!(html, "{path}: not an HTML page with its security headers");
            assert!(text.contains(says), "{path}: no '{says}' in {text}");
        }

        // A verification in the future is refused and changes nothing.
        let verify = format!("{base}/ui/warnings/{}/verification", f.warning);
        let form = |visited: &str, reason: &str| {
            vec![
                ("_csrf", csrf.clone()),
                ("visited_on", visited.to_string()),
                ("outcome", "not_included".to_string()),
                ("reason", reason.to_string()),
                ("visited_by", "张三".to_string()),
            ]
        };
        let (status, text) = post(verify.clone(), form("2999-01-01", "")).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("in the future"), "{text}");
        // A reason that is markup is kept as text, never run as a script.
        let (status, text) = post(verify, form("2026-11-21", "<script>alert(1)</script>")).await;
        assert_eq!(status, 303, "{text}");
        let (_, _, page) = get(format!("{base}/ui/warnings/{}", f.warning)).await;
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>alert(1)"), "{page}");

        // A form larger than the console takes.
        let (status, _) = post(
            format!("{base}/ui/review/decision"),
            vec![("_csrf", csrf.clone()), ("note", "长".repeat(40_000))],
        )
        .await;
        assert_eq!(status, 413);
    });
    assert_eq!(
        count(
            &lake,
            &format!(
                "SELECT count(*) FROM warning_events WHERE warning_id = '{}' AND event = 'verified'",
                f.warning
            ),
        ),
        1
    );
}
