//! The web UI in a real browser: Debian's Chromium driven over the W3C WebDriver
//! protocol (chromedriver), against a real master with a worker transcoding generated
//! clips. The page asks for the token, shows the workers and files, a progress bar
//! moves without a reload, cancel and retry change a row, filter and search narrow
//! the list. A screenshot is saved for people to look at
//! (`target/tmp/ui-screenshots/dashboard.png`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use av1_testkit::{Proc, TOKEN};
use base64::Engine as _;
use serde_json::{json, Value};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A WebDriver session.
struct Browser {
    base: String,
    agent: ureq::Agent,
    _driver: Proc,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        assert!(
            Command::new("chromedriver").arg("--version").stdout(Stdio::null()).status().is_ok(),
            "chromedriver (apt: chromium-driver; `make test` installs it)"
        );
        let mut driver = Command::new("chromedriver");
        driver.arg(format!("--port={port}"));
        let driver = Proc::spawn_quiet(driver, true);
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let root = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while agent.get(format!("{root}/status")).call().is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"]
        }}}});
        let mut r = agent.post(format!("{root}/session")).send(caps.to_string().as_bytes()).unwrap();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        let session =
            v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_owned();
        Browser { base: format!("{root}/session/{session}"), agent, _driver: driver }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let mut r = match method {
            "GET" => self.agent.get(url).call().unwrap(),
            _ => self.agent.post(url).send(body.to_string().as_bytes()).unwrap(),
        };
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    fn js(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", json!({ "script": script, "args": [] }))
    }

    fn wait(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js(script);
            if !v.is_null() && v != json!(false) {
                return v;
            }
            assert!(start.elapsed() < Duration::from_secs(90), "timed out waiting for {what} (last: {v})");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, to: &Path) {
        let b64 = self.call("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
    }
}

#[test]
fn dashboard_in_a_real_browser() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    for name in ["Film 1.mp4", "Film 2.mp4"] {
        av1_testkit::clip_sized(&lib, name, 40, 640, 360);
    }
    std::fs::write(lib.join("Broken.mkv"), vec![9u8; 4096]).unwrap();
    let port = free_port();
    let mut master = Command::new(env!("CARGO_BIN_EXE_av1-master"));
    master
        .env("SVT_LOG", "1")
        .env("RUST_LOG", "info")
        .env("AV1_TOKEN", TOKEN)
        .env("XDG_STATE_HOME", d.path().join("state"))
        .env_remove("MEDIA_DIRS")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--preset",
            "12",
            "--lease-timeout",
            "6",
            "--local-worker",
            "--db",
        ])
        .arg(d.path().join("master.sqlite"))
        .arg(&lib);
    let master = Proc::spawn_quiet(master, true);
    master.wait_for("listening on");
    let url = format!("http://127.0.0.1:{port}/");

    let b = Browser::start();
    b.open(&url);
    // Without the token the page shows the form and nothing of the library.
    b.wait("the token form", "return !document.querySelector('#login').hidden");
    assert_eq!(b.js("return document.body.innerText.includes('Film')"), json!(false));
    b.js(&format!(
        "document.querySelector('#token').value = '{TOKEN}'; document.querySelector('#login-form').requestSubmit(); return true"
    ));
    b.wait("the dashboard", "return !document.querySelector('#app').hidden");
    b.js("window.__noReload = 'still the same page'; return true");
    b.wait("the live badge", "return document.querySelector('#conn').textContent === 'live'");
    b.wait("the files", "return document.querySelectorAll('#files tbody tr').length === 3");
    b.wait(
        "a worker card",
        "return document.querySelector('[data-worker] .badge')?.textContent === 'encoding'",
    );

    // A progress bar moves without a reload.
    let width = "const b = document.querySelector('[data-worker] .bar > div'); return b ? parseFloat(b.style.width) : null";
    let first = b.wait("a progress bar", &format!("{{ {width} }}"));
    let first = first.as_f64().unwrap();
    let moved = b.wait(
        "the bar to move",
        &format!(
            "{{ const w = (function() {{ {width} }})(); return w !== null && w > {first} + 1 ? w : null }}"
        ),
    );
    assert!(moved.as_f64().unwrap() > first);
    assert_eq!(b.js("return window.__noReload"), json!("still the same page"));

    // Filter and search narrow the list.
    b.js("const s = document.querySelector('#f-status'); s.value = 'failed'; s.dispatchEvent(new Event('input', {bubbles: true})); return true");
    b.wait("only the failed file", "const r = document.querySelectorAll('#files tbody tr'); return r.length === 1 && r[0].dataset.file === 'Broken.mkv'");
    b.js("const s = document.querySelector('#f-status'); s.value = ''; const q = document.querySelector('#f-q'); q.value = 'Film 2'; q.dispatchEvent(new Event('input', {bubbles: true})); return true");
    b.wait("only Film 2", "const r = document.querySelectorAll('#files tbody tr'); return r.length === 1 && r[0].dataset.file === 'Film 2.mp4'");

    // Cancel (confirmed in a dialog, not alert()) and retry change the row's status.
    let row = "document.querySelector('#files tbody tr[data-file=\"Film 2.mp4\"]')";
    b.js(&format!("{row}.querySelector('button[data-action=cancel]').click(); return true"));
    b.wait("the confirmation", "return document.querySelector('#confirm').open");
    b.js("document.querySelector('#confirm button[value=yes]').click(); return true");
    b.wait("the row cancelled", &format!("return {row}?.dataset.status === 'cancelled'"));
    b.wait("a message in the page", "return document.querySelector('#messages').innerText.length > 0");
    b.js(&format!("{row}.querySelector('button[data-action=retry]').click(); return true"));
    b.wait(
        "the row queued again",
        &format!("const s = {row}?.dataset.status; return s === 'pending' || s === 'running'"),
    );

    // Back to the whole list for the picture.
    b.js("const q = document.querySelector('#f-q'); q.value = ''; q.dispatchEvent(new Event('input', {bubbles: true})); return true");
    b.wait("the whole list", "return document.querySelectorAll('#files tbody tr').length === 3");
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots/dashboard.png");
    b.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a real picture at {}", shot.display());
}
