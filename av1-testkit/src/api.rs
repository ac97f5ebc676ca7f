//! A small client of the master's API for tests: every call with the test token, the
//! status and the JSON body back.

use std::time::{Duration, Instant};

/// The admin token the process tests start their masters and workers with.
pub const TOKEN: &str = "process-tests";

/// An agent that returns every status as an answer (not an error), 20 s per call.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// An API call with [`TOKEN`]; the status and the JSON body (null when not JSON).
pub fn call(
    url: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let a = agent();
    let auth = format!("Bearer {TOKEN}");
    let full = format!("{url}{path}");
    let start = Instant::now();
    let r = match (method, body) {
        ("GET", _) => a.get(&full).header("Authorization", &auth).call(),
        ("DELETE", _) => a.delete(&full).header("Authorization", &auth).call(),
        (_, Some(b)) => a
            .post(&full)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(b.to_string()),
        (_, None) => a
            .post(&full)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send_empty(),
    };
    match r {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
        }
        Err(e) => panic!("{method} {path}: {e} (after {:?})", start.elapsed()),
    }
}

/// The statistics, or `None` when the master does not answer (within 2 s).
pub fn try_stats(url: &str) -> Option<serde_json::Value> {
    let mut r = agent()
        .get(format!("{url}/api/v1/stats"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .config()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .call()
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
}

pub fn stats(url: &str) -> serde_json::Value {
    call(url, "GET", "/api/v1/stats", None).1
}

/// The statistics once `ok` holds for them (within 120 s, else the test fails with
/// `what` and the last ones).
pub fn settle(url: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = stats(url);
        if ok(&s) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{what}: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
