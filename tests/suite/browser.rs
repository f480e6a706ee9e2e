//! A real browser for the console tests: Debian's headless Chromium driven
//! through chromedriver over the W3C WebDriver protocol (plain JSON over
//! HTTP, spoken here with reqwest). `.ci/run` installs both packages; a
//! machine without them fails these tests with a message saying so.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The key W3C WebDriver names elements by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One browser window.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`
    session: String,
    _driver: Driver,
}

/// Send a WebDriver command; the whole answer, errors included.
fn send(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Value {
    rt.block_on(async {
        let mut request = http.request(method.parse().unwrap(), url);
        if let Some(b) = body {
            request = request.json(&b);
        }
        request.send().await.unwrap().json().await.unwrap()
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the tests put screenshots: `SAFETYNET_SCREENSHOTS` when set (the
/// docs' pictures are made with `SAFETYNET_SCREENSHOTS=docs/console`),
/// else a directory under the system's temporary directory.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("SAFETYNET_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("safetynet-console-screenshots"))
}

impl Browser {
    /// Start chromedriver and a headless Chromium window of this size.
    pub fn start(width: u32, height: u32) -> Browser {
        for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: install Debian's chromium and chromium-driver (.ci/run does)"
            );
        }
        let port = free_port();
        let driver = Driver(
            Command::new("/usr/bin/chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = rt.block_on(async {
                let r = http.get(format!("{base}/status")).send().await.ok()?;
                r.json::<Value>().await.ok()
            });
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut chrome = json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run",
                format!("--window-size={width},{height}"),
            ],
        });
        // A window narrower than 500 pixels is widened by the browser;
        // a phone's screen is emulated instead.
        if width < 500 {
            chrome["mobileEmulation"] = json!({"deviceMetrics": {
                "width": width, "height": height, "pixelRatio": 1, "touch": true,
            }});
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": chrome,
        }}});
        let answer = send(
            &rt,
            &http,
            "POST",
            &format!("{base}/session"),
            Some(capabilities),
        );
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {answer}"))
            .to_string();
        Browser {
            rt,
            http,
            session: format!("{base}/session/{id}"),
            _driver: driver,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let answer = send(&self.rt, &self.http, method, &url, body);
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                answer["value"]["message"]
            );
        }
        answer["value"].clone()
    }

    pub fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.script("return document.body.innerText;", json!([]))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Run `script` in the page with `args`; returns what it returns.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The first element matching `css`, or a panic naming it and the page.
    pub fn find(&self, css: &str) -> String {
        let url = format!("{}/element", self.session);
        let answer = send(
            &self.rt,
            &self.http,
            "POST",
            &url,
            Some(json!({"using": "css selector", "value": css})),
        );
        match answer["value"][ELEMENT].as_str() {
            Some(id) => id.to_string(),
            None => panic!(
                "no element '{css}' on {}:\n{}",
                self.url(),
                self.text().chars().take(2000).collect::<String>()
            ),
        }
    }

    pub fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Type `text` into the element (keys as the user would press them).
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Press keys on whatever has the focus, one at a time.
    pub fn press(&self, keys: &str) {
        let mut actions = Vec::new();
        for c in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        self.call(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
    }

    /// Wait until the page's text contains `needle` (pages load after a
    /// click), or panic with the page.
    pub fn wait_for_text(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "'{needle}' never showed on {}:\n{text}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Save a PNG of the window as `<screenshot_dir>/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = self.session.clone();
        let _ = self
            .rt
            .block_on(async { self.http.delete(&url).send().await });
    }
}
