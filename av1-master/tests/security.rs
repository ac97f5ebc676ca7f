//! Attacks on a running master, tried as SECURITY.md describes them: links planted at
//! staged names and at queued sources, directories swapped for links. Each test fails
//! on a master that follows names.

mod support;

use std::path::Path;
use std::time::Duration;

use av1_testkit::net::{connect_from, flood_from, loopback};
use av1_testkit::process::url_of;
use support::*;

/// A master with `lib`, a registered fake worker and its claimed job: (master, url,
/// file id, lease).
fn claimed(d: &Path, lib: &Path) -> (Proc, String, i64, String) {
    let (m, url) = master(lib, &d.join("master.sqlite"));
    settle(&url, "the first scan", |s| s["pending"] == 1);
    let (_, reg) =
        call(&url, "POST", "/api/v1/workers/register", Some(serde_json::json!({"name": "w", "host": "h"})));
    let (status, job) =
        call(&url, "POST", "/api/v1/jobs/claim", Some(serde_json::json!({ "worker_id": reg["worker_id"] })));
    assert_eq!(status, 200, "{job}");
    let (id, lease) = (job["job"]["file_id"].as_i64().unwrap(), job["lease"].as_str().unwrap().to_owned());
    (m, url, id, lease)
}

/// An upload chunk: the status and the text of the reply.
fn put(url: &str, id: i64, lease: &str, offset: u64, bytes: &[u8]) -> (u16, String) {
    let mut r = agent()
        .put(format!("{url}/api/v1/jobs/{id}/result?offset={offset}"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("X-Lease", lease)
        .send(bytes)
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default())
}

fn received(url: &str, id: i64, lease: &str) -> serde_json::Value {
    let mut r = agent()
        .get(format!("{url}/api/v1/jobs/{id}/result"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("X-Lease", lease)
        .call()
        .unwrap();
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

fn download(url: &str, id: i64, lease: &str) -> (u16, Vec<u8>) {
    let mut r = agent()
        .get(format!("{url}/api/v1/jobs/{id}/source"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("X-Lease", lease)
        .call()
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_vec().unwrap_or_default())
}

#[test]
fn a_link_planted_at_an_upload_is_never_followed() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "Film.mp4", 1);
    let outside = d.path().join("outside.conf");
    std::fs::write(&outside, b"0123456789ab").unwrap();
    let (_m, url, id, lease) = claimed(d.path(), &lib);

    assert_eq!(put(&url, id, &lease, 0, b"AV1!").0, 200);
    let staged = lib.join(format!(".Film.mkv.{}.av1-verified", &lease[..8]));
    assert_eq!(std::fs::read(&staged).unwrap(), b"AV1!");
    // The staged name swapped for a link to a file outside the library.
    std::fs::remove_file(&staged).unwrap();
    std::os::unix::fs::symlink(&outside, &staged).unwrap();
    assert_eq!(received(&url, id, &lease)["received"], 0, "the link's target is not an upload");
    let (status, text) = put(&url, id, &lease, 12, b"APPENDED");
    assert_eq!(status, 409, "{text}");
    assert_eq!(std::fs::read(&outside).unwrap(), b"0123456789ab", "nothing written through the link");
    // Starting again from 0 replaces the link by a file of the master's own.
    std::os::unix::fs::symlink(&outside, &staged).ok();
    assert_eq!(put(&url, id, &lease, 0, b"AV1!").0, 200);
    assert!(std::fs::symlink_metadata(&staged).unwrap().file_type().is_file());
    assert_eq!(std::fs::read(&outside).unwrap(), b"0123456789ab");

    // A hard link planted there is refused as well (it would be the other file).
    std::fs::remove_file(&staged).unwrap();
    std::fs::hard_link(&outside, &staged).unwrap();
    let (status, _) = put(&url, id, &lease, 12, b"APPENDED");
    assert_eq!(status, 409);
    assert_eq!(std::fs::read(&outside).unwrap(), b"0123456789ab");

    // `complete` with a link at the staged name: the master neither reads nor
    // replaces through it, and the original stays.
    let original = std::fs::read(lib.join("Film.mp4")).unwrap();
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&outside, &staged).unwrap();
    let claim = serde_json::json!({
        "lease": lease, "size": 12, "blake3": blake3::hash(b"0123456789ab").to_hex().to_string(),
        "frames": 24, "encoder": "test", "fps": 1.0, "elapsed": 1.0,
    });
    let (status, reply) = call(&url, "POST", &format!("/api/v1/jobs/{id}/complete"), Some(claim));
    assert_eq!((status, reply["status"].as_str()), (200, Some("pending")), "{reply}");
    assert!(reply["outcome"]["detail"].as_str().unwrap().contains("symbolic link"), "{reply}");
    assert_eq!(std::fs::read(lib.join("Film.mp4")).unwrap(), original);
    assert_eq!(std::fs::read(&outside).unwrap(), b"0123456789ab");
    assert!(!lib.join("Film.mkv").exists());
}

#[test]
fn a_source_swapped_for_a_link_or_under_a_swapped_directory_is_not_served() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(lib.join("Films")).unwrap();
    clip(&lib.join("Films"), "a.mp4", 1);
    let secret = d.path().join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("a.mp4"), b"the master's private key").unwrap();
    let (_m, url, id, lease) = claimed(d.path(), &lib);

    // The directory above the queued file swapped for a link to another directory
    // holding a file of the same name.
    std::fs::rename(lib.join("Films"), d.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(&secret, lib.join("Films")).unwrap();
    let (status, body) = download(&url, id, &lease);
    assert_eq!(status, 410);
    assert!(!body.windows(11).any(|w| w == b"private key"), "nothing of the outside file is sent");
    let s = settle(&url, "the file to fail", |s| s["failed"] == 1);
    assert_eq!(s["running"], 0);
    let (_, files) = call(&url, "GET", "/api/v1/files?status=failed", None);
    let error = files["files"][0]["detail"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("symbolic link"), "{files}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(std::fs::read(secret.join("a.mp4")).unwrap(), b"the master's private key");
}

#[test]
fn a_queued_file_swapped_for_a_link_is_not_served_on_any_claim() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "a.mp4", 1);
    let secret = d.path().join("id_rsa");
    std::fs::write(&secret, b"-----BEGIN PRIVATE KEY-----").unwrap();
    let (_m, url, id, lease) = claimed(d.path(), &lib);
    std::fs::remove_file(lib.join("a.mp4")).unwrap();
    std::os::unix::fs::symlink(&secret, lib.join("a.mp4")).unwrap();
    let (status, body) = download(&url, id, &lease);
    assert_eq!(status, 410);
    assert!(!body.windows(7).any(|w| w == b"PRIVATE"));
    settle(&url, "the file to fail", |s| s["failed"] == 1 && s["pending"] == 0);
    // Nothing left to claim: the link is never handed out again.
    let (_, reg) =
        call(&url, "POST", "/api/v1/workers/register", Some(serde_json::json!({"name": "x", "host": "h"})));
    let (status, _) =
        call(&url, "POST", "/api/v1/jobs/claim", Some(serde_json::json!({ "worker_id": reg["worker_id"] })));
    assert_eq!(status, 204);
}

/// One raw request on a new connection from `from` (a loopback address): the reply's
/// head, and whether the master closed the connection within `wait`.
fn raw_from(from: std::net::IpAddr, addr: &str, request: &[u8], wait: Duration) -> (String, bool) {
    use std::io::{Read, Write};
    let mut s = connect_from(from, addr);
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(request).unwrap();
    let mut answer = Vec::new();
    let closed = s.read_to_end(&mut answer).is_ok();
    (String::from_utf8_lossy(&answer).into_owned(), closed)
}

#[test]
fn an_unauthorised_body_is_never_read_and_its_connection_closes() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let (_m, url) = master(&lib, &d.path().join("master.sqlite"));
    let addr = url.trim_start_matches("http://").to_owned();
    for (path, extra) in [
        ("/api/v1/jobs/claim", ""),
        ("/api/v1/events", "Expect: 100-continue\r\n"),
        ("/api/v1/jobs/1/result?offset=0", ""),
        ("/api/v1/scan", "Transfer-Encoding: chunked\r\n"),
    ] {
        let method = if path.contains("result") { "PUT" } else { "POST" };
        let length =
            if extra.contains("chunked") { String::new() } else { "Content-Length: 100000000\r\n".into() };
        let head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{length}{extra}\r\n");
        let started = std::time::Instant::now();
        // The body is never sent: the answer must come anyway, and the connection end.
        let (answer, closed) = raw_from(loopback(1), &addr, head.as_bytes(), Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
        assert!(!answer.contains("100 Continue"), "{path}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{path}: {answer}");
        assert!(closed && started.elapsed() < Duration::from_secs(3), "{path}: the connection stayed open");
    }
}

#[test]
fn roles_host_names_origins_and_content_types() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "a.mp4", 1);
    let mut c = master_command(&lib, &d.path().join("master.sqlite"), 0);
    c.env("AV1_WORKER_TOKEN", "worker-secret").env("ALLOWED_HOSTS", "media.lan");
    let (_m, url) = start_master(c);
    settle(&url, "the scan", |s| s["pending"] == 1);
    let addr = url.trim_start_matches("http://").to_owned();
    let send = |method: &str, path: &str, token: &str, headers: &[(&str, &str)]| -> u16 {
        let head: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        let host = if headers.iter().any(|(k, _)| *k == "Host") {
            String::new()
        } else {
            format!("Host: {addr}\r\n")
        };
        let body = r#"{"name":"w","host":"h"}"#;
        let request = format!(
            "{method} {path} HTTP/1.1\r\n{host}Authorization: Bearer {token}\r\nContent-Length: {}\r\n\
             Connection: close\r\n{head}\r\n{body}",
            body.len()
        );
        let (answer, _) = raw_from(loopback(1), &addr, request.as_bytes(), Duration::from_secs(10));
        answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    };
    let json = [("Content-Type", "application/json")];
    // The worker token: the worker's calls, nothing else.
    assert_eq!(send("POST", "/api/v1/workers/register", "worker-secret", &json), 200);
    assert_eq!(send("GET", "/api/v1/config", "worker-secret", &[]), 200);
    for (method, path) in [
        ("POST", "/api/v1/files/1/cancel"),
        ("POST", "/api/v1/files/1/delete"),
        ("POST", "/api/v1/files/1/reencode"),
        ("POST", "/api/v1/scan"),
        ("GET", "/api/v1/files"),
        ("GET", "/api/v1/stats"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/events"),
    ] {
        assert_eq!(send(method, path, "worker-secret", &json), 403, "{method} {path}");
    }
    assert_eq!(send("GET", "/api/v1/files", TOKEN, &[]), 200, "the admin token does everything");
    assert_eq!(send("POST", "/api/v1/workers/register", TOKEN, &json), 200, "workers with the admin token");
    // A token's holder may come through a reverse proxy or a service name (a browser
    // never adds the token by itself, so neither CSRF nor DNS rebinding can send one).
    assert_eq!(send("GET", "/api/v1/files", TOKEN, &[("Host", "av1-master:8090")]), 200);
    let proxied = [("Content-Type", "application/json"), ("Origin", "https://media.example.org")];
    assert_eq!(send("POST", "/api/v1/workers/register", TOKEN, &proxied), 200);
    // The open routes take no body.
    assert_eq!(send("POST", "/healthz", TOKEN, &json), 413);
    // A form post cannot change anything.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    assert_eq!(send("POST", "/api/v1/files/1/cancel", TOKEN, &form), 415);
    assert_eq!(send("POST", "/api/v1/scan", TOKEN, &[]), 415);
    assert_eq!(settle(&url, "nothing changed", |s| s["pending"] == 1)["cancelled"], 0);
    // The page forbids framing and outside scripts.
    let (page, _) = raw_from(
        loopback(1),
        &addr,
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert!(page.contains("Content-Security-Policy: default-src 'self'; frame-ancestors 'none'"), "{page}");
}

#[test]
fn without_tokens_other_sites_and_rebound_names_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "a.mp4", 1);
    let mut c = master_command(&lib, &d.path().join("master.sqlite"), 0);
    c.env_remove("AV1_TOKEN").env("ALLOWED_HOSTS", "media.lan").arg("--insecure-no-token");
    let (_m, url) = start_master(c);
    settle(&url, "the scan", |s| s["pending"] == 1);
    let addr = url.trim_start_matches("http://").to_owned();
    let send = |method: &str, path: &str, headers: &[(&str, &str)]| -> u16 {
        let head: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        let host = if headers.iter().any(|(k, _)| *k == "Host") {
            String::new()
        } else {
            format!("Host: {addr}\r\n")
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n{head}\r\n{{}}"
        );
        let (answer, _) = raw_from(loopback(1), &addr, request.as_bytes(), Duration::from_secs(10));
        answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    };
    // Another site's page in the user's browser (CSRF), a rebound DNS name.
    assert_eq!(send("POST", "/api/v1/files/1/cancel", &[("Origin", "http://evil.example")]), 403);
    assert_eq!(send("GET", "/api/v1/files", &[("Host", "evil.example:8090")]), 403);
    assert_eq!(send("GET", "/api/v1/files", &[("Host", "media.lan:8090")]), 200, "ALLOWED_HOSTS");
    let same_origin = format!("http://{addr}");
    assert_eq!(send("GET", "/api/v1/files", &[("Origin", same_origin.as_str())]), 200);
    assert_eq!(settle(&url, "nothing changed", |s| s["pending"] == 1)["cancelled"], 0);
}

#[test]
fn without_a_token_one_is_generated_kept_private_and_required() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let state = d.path().join("state");
    let mut c = master_command(&lib, &state.join("master.sqlite"), 0);
    c.env_remove("AV1_TOKEN");
    std::fs::create_dir_all(&state).unwrap();
    let m = Proc::spawn(c);
    let token_file = state.join("token");
    m.wait_for(&format!("the admin token is in {}", token_file.display()));
    let url = url_of(&m.wait_for("listening on http://"));
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64);
    let get = |t: &str| {
        agent()
            .get(format!("{url}/api/v1/stats"))
            .header("Authorization", format!("Bearer {t}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get("anything"), 401);
    assert_eq!(get(&token), 200);
    // Kept across starts, and never written to the log.
    drop(m);
    let mut c = master_command(&lib, &state.join("master.sqlite"), 0);
    c.env_remove("AV1_TOKEN");
    let m = Proc::spawn(c);
    let listening = loop {
        let line = m.wait_for("");
        assert!(!line.contains(&token), "the token in the log: {line}");
        if line.contains("listening on http://") {
            break line;
        }
    };
    let again = agent()
        .get(format!("{}/api/v1/stats", url_of(&listening)))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(again.status().as_u16(), 200, "kept across starts");
    assert!(!m.saw(&token));
}

/// A master under `prlimit --nofile=1024:1024`, as systemd and many container runtimes
/// start it, with `extra` arguments.
fn master_at_1024_files(d: &Path, lib: &Path, extra: &[&str]) -> (Proc, String) {
    // This test process opens the flood's connections: its own limit must allow them.
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut own = getrlimit(Resource::Nofile);
    own.current = own.maximum;
    let _ = setrlimit(Resource::Nofile, own);
    assert!(getrlimit(Resource::Nofile).current.is_none_or(|n| n >= 4096), "the test needs 4096 open files");
    let mut inner = master_command(lib, &d.join("master.sqlite"), 0);
    inner.args(extra);
    // The same command under `prlimit`, as systemd and many container runtimes start it.
    let mut c = std::process::Command::new("prlimit");
    c.arg("--nofile=1024:1024").arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    start_master(c)
}

#[test]
fn a_master_at_1024_open_files_survives_a_connection_flood() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let (m, url) = master_at_1024_files(d.path(), &lib, &[]);
    let addr = url.trim_start_matches("http://").to_owned();
    // 600 idle connections from one address: others are still answered meanwhile.
    let mut idle: Vec<_> = (0..600).map(|_| flood_from(loopback(2), &addr)).collect();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        let started = std::time::Instant::now();
        assert!(try_stats(&url).is_some(), "the master answers another client during the flood");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }
    // Then 700 more from ten other addresses: more than the process has descriptors
    // for. New connections may be turned away while they last, but the master must
    // not stop accepting for good.
    idle.extend((0..700).map(|i| flood_from(loopback(3 + (i % 10) as u8), &addr)));
    std::thread::sleep(Duration::from_millis(500));
    drop(idle);
    // And after it: the accept loop is alive.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        assert!(try_stats(&url).is_some(), "the master answers after the flood");
    }
    assert!(!m.saw("panicked"), "no thread of the master panicked");
}

#[test]
fn what_a_worker_can_make_the_master_keep_is_bounded() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "a.mp4", 1);
    let (_m, url, id, lease) = claimed(d.path(), &lib);
    let post = |path: &str, body: serde_json::Value| call(&url, "POST", path, Some(body)).0;
    let beat = format!("/api/v1/jobs/{id}/heartbeat");
    assert_eq!(post(&beat, serde_json::json!({"lease": lease, "phase": "encoding"})), 200);
    assert_eq!(post(&beat, serde_json::json!({"lease": lease, "phase": "x".repeat(10_000)})), 400);
    assert_eq!(post(&beat, serde_json::json!({"lease": lease, "phase": "enc\nERROR"})), 400);
    let big = serde_json::json!({ "percent": 1, "junk": "y".repeat(100_000) });
    assert_eq!(post(&beat, serde_json::json!({"lease": lease, "progress": big})), 400);
    assert_eq!(post(&beat, serde_json::json!({"lease": lease, "progress": "50%"})), 400);
    let host = serde_json::json!({"name": "w2", "host": "h".repeat(1000)});
    assert_eq!(post("/api/v1/workers/register", host), 400);
    // A long error is kept cut, not whole.
    let error = "e".repeat(500_000);
    assert_eq!(
        post(&format!("/api/v1/jobs/{id}/fail"), serde_json::json!({"lease": lease, "error": error})),
        200
    );
    let (_, files) = call(&url, "GET", "/api/v1/files?status=failed", None);
    let kept = files["files"][0]["detail"].as_str().unwrap().len();
    assert!((8192..9000).contains(&kept), "{kept} bytes of the error kept");
    // At most 1000 workers; a worker seen again keeps its place.
    for i in 0..1000 {
        let body = serde_json::json!({"name": format!("flood-{i}"), "host": "h"});
        let status = post("/api/v1/workers/register", body);
        if status != 200 {
            assert_eq!((i, status), (999, 400), "one was registered before the flood");
            break;
        }
    }
    assert_eq!(post("/api/v1/workers/register", serde_json::json!({"name": "one-more", "host": "h"})), 400);
    assert_eq!(post("/api/v1/workers/register", serde_json::json!({"name": "w", "host": "h"})), 200);
}

#[test]
fn out_of_descriptors_the_master_keeps_accepting() {
    // No connection limit: 1300 idle connections use up the 1024 descriptors. The
    // master cannot answer while they last, but it must not stop accepting for good
    // (upstream tiny_http ended its accept loop at the first EMFILE, or panicked).
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let limits = ["--max-connections", "100000", "--max-connections-per-address", "100000"];
    let (m, url) = master_at_1024_files(d.path(), &lib, &limits);
    let addr = url.trim_start_matches("http://").to_owned();
    let idle: Vec<_> = (0..1300).map(|i| flood_from(loopback(2 + (i % 10) as u8), &addr)).collect();
    std::thread::sleep(Duration::from_millis(1500));
    drop(idle);
    // Once the flood's connections are closed (and the ones left in the backlog
    // accepted and found closed), it answers again, call after call.
    let started = std::time::Instant::now();
    let mut in_a_row = 0;
    while in_a_row < 20 {
        assert!(started.elapsed() < Duration::from_secs(30), "the master stopped accepting");
        in_a_row = if try_stats(&url).is_some() { in_a_row + 1 } else { 0 };
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!m.saw("panicked"), "no thread of the master panicked");
}

/// Sends `request` from `from` again and again until `until`; counts the answers
/// (and the connections that ended without one).
fn hammer(from: std::net::IpAddr, addr: String, request: String, until: std::time::Instant) -> (u32, u32) {
    let (mut answered, mut unanswered) = (0, 0);
    while std::time::Instant::now() < until {
        let (answer, _) = raw_from(from, &addr, request.as_bytes(), Duration::from_secs(5));
        if answer.starts_with("HTTP/1.1 401") {
            answered += 1;
        } else {
            unanswered += 1;
        }
    }
    (answered, unanswered)
}

#[test]
fn under_a_flood_heartbeats_are_answered_and_no_lease_expires() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "a.mp4", 2);
    clip(&lib, "b.mp4", 2);
    let (m, url) = master_at_1024_files(d.path(), &lib, &[]);
    let addr = url.trim_start_matches("http://").to_owned();
    settle(&url, "the scan", |s| s["pending"] == 2);
    // A real worker, held 10 s in its encode (its heartbeats go on meanwhile; leases
    // last 2 s in the tests).
    let w =
        worker(&url, "real", d.path(), &[("AV1_PAUSE_AT", "worker:encoding"), ("AV1_PAUSE_SECONDS", "10")]);
    w.wait_for("paused at worker:encoding");
    // And this test as a second worker, timing its own heartbeats.
    let (_, reg) = call(
        &url,
        "POST",
        "/api/v1/workers/register",
        Some(serde_json::json!({"name": "timed", "host": "h"})),
    );
    let (status, job) =
        call(&url, "POST", "/api/v1/jobs/claim", Some(serde_json::json!({ "worker_id": reg["worker_id"] })));
    assert_eq!(status, 200, "{job}");
    let (id, lease) = (job["job"]["file_id"].as_i64().unwrap(), job["lease"].as_str().unwrap().to_owned());

    // The flood, for 8 s: 500 idle connections, 50 unauthorised bodies that never
    // arrive, and four clients sending requests without a token as fast as answered.
    let until = std::time::Instant::now() + Duration::from_secs(8);
    let idle: Vec<_> = (0..500).map(|_| flood_from(loopback(2), &addr)).collect();
    let slow: Vec<_> = (0..50)
        .map(|_| {
            use std::io::Write;
            let mut s = connect_from(loopback(3), &addr);
            let head = format!("POST /api/v1/jobs/claim HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{{");
            let _ = s.write_all(head.as_bytes());
            s
        })
        .collect();
    let unauthorised = format!("GET /api/v1/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let flooders: Vec<_> = (4..8u8)
        .map(|n| {
            let (addr, request) = (addr.clone(), unauthorised.clone());
            std::thread::spawn(move || hammer(loopback(n), addr, request, until))
        })
        .collect();
    let mut times = Vec::new();
    while std::time::Instant::now() < until {
        let started = std::time::Instant::now();
        let (status, reply) = call(
            &url,
            "POST",
            &format!("/api/v1/jobs/{id}/heartbeat"),
            Some(serde_json::json!({"lease": lease, "phase": "encoding"})),
        );
        times.push(started.elapsed());
        assert_eq!(status, 200, "a heartbeat under the flood: {reply}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // This test's own job goes back (its lease must not run out either).
    let release = serde_json::json!({"lease": lease, "detail": "timing done"});
    assert_eq!(call(&url, "POST", &format!("/api/v1/jobs/{id}/release"), Some(release)).0, 200);
    let (mut answered, mut unanswered) = (0, 0);
    for f in flooders {
        let (a, u) = f.join().unwrap();
        (answered, unanswered) = (answered + a, unanswered + u);
    }
    drop(idle);
    drop(slow);
    times.sort();
    let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{} heartbeats under the flood: p50 {:?}, p99 {:?}, max {:?}; {answered} unauthorised requests answered 401, {unanswered} not answered",
        times.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
    assert!(p(1.0) < Duration::from_secs(1), "a heartbeat took {:?} (leases last 2 s)", p(1.0));
    assert!(answered > 100, "the flood was a flood: {answered}");
    // The real worker's job ends done on its first attempt: its lease never ran out.
    settle(&url, "the real worker's file", |s| s["done"] == 1);
    let (_, files) = call(&url, "GET", "/api/v1/files?status=done", None);
    assert_eq!(files["files"][0]["attempts"], 1, "{files}");
    assert!(!m.saw("lease ran out"), "no lease expired");
    assert!(try_stats(&url).is_some(), "the master answers normally afterwards");
}
