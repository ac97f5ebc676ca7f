//! The master as a process on loopback, driven over real HTTP: token, scan, stats,
//! listing, limits, metrics, and the refusal to listen publicly without a token.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use av1_testkit::{agent, ffmpeg, Proc, TOKEN};

/// A running master; killed when dropped.
struct Master {
    _process: Proc,
    base: String,
}

fn master(lib: &Path, db: &Path) -> Master {
    master_with(lib, db, &[])
}

fn master_with(lib: &Path, db: &Path, extra: &[&str]) -> Master {
    let mut c = Command::new(env!("CARGO_BIN_EXE_av1-master"));
    c.env("SVT_LOG", "1").env("RUST_LOG", "info").env("AV1_TOKEN", TOKEN).env_remove("MEDIA_DIRS");
    c.args(["--bind", "127.0.0.1", "--port", "0", "--db"]).arg(db).arg(lib).args(extra);
    let (process, base) = av1_testkit::process::start_listening(c, true);
    Master { base, _process: process }
}

/// GET with the token: status and JSON (or text as a JSON string).
fn get(m: &Master, path: &str) -> (u16, serde_json::Value) {
    let mut r = agent()
        .get(format!("{}{path}", m.base))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

#[test]
fn api_serves_the_queue_behind_a_token() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(lib.join("Series")).unwrap();
    for name in ["Film one.mp4", "Series/Episode_1.mkv"] {
        ffmpeg(&lib, &["-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=1", "-c:v", "libx264", name]);
    }
    std::fs::write(lib.join("Broken.mkv"), vec![7u8; 2048]).unwrap();
    let m = master(&lib, &d.path().join("master.sqlite"));

    // Health needs no token; everything else does, compared exactly.
    let health = agent().get(format!("{}/healthz", m.base)).call().unwrap();
    assert_eq!(health.status().as_u16(), 200);
    for auth in [None, Some("Bearer wrong"), Some("Bearer s3cret-toke"), Some(TOKEN)] {
        let mut req = agent().get(format!("{}/api/v1/stats", m.base));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        assert_eq!(req.call().unwrap().status().as_u16(), 401, "{auth:?}");
    }

    // The scan at start fills the queue.
    let start = Instant::now();
    let stats = loop {
        let (status, stats) = get(&m, "/api/v1/stats");
        assert_eq!(status, 200);
        if stats["scanner"]["scans"].as_u64() >= Some(1) {
            break stats;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no scan finished: {stats}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (stats["total"].as_u64(), stats["pending"].as_u64(), stats["failed"].as_u64()),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(stats["bytes_saved"], 0);
    assert!(stats["library_bytes"].as_u64().unwrap() > 2048);

    // Listing: filter, literal search, sort, paging; paths come back, never go in URLs.
    let (_, failed) = get(&m, "/api/v1/files?status=failed");
    assert_eq!(failed["total"], 1);
    assert!(failed["files"][0]["detail"].as_str().unwrap().contains("Broken.mkv"));
    let (_, found) = get(&m, "/api/v1/files?q=Episode_");
    assert_eq!(found["total"], 1);
    assert_eq!(found["files"][0]["summary"]["video_codec"], "h264");
    let (_, page) = get(&m, "/api/v1/files?sort=size&order=desc&per_page=1&page=2");
    assert_eq!((page["total"].as_u64(), page["files"].as_array().unwrap().len()), (Some(3), 1));
    let (status, bad) = get(&m, "/api/v1/files?status=nonsense");
    assert_eq!(status, 400, "{bad}");
    assert_eq!(get(&m, "/api/v1/files?per_page=100000").0, 400);
    assert_eq!(get(&m, "/api/v1/../../etc/passwd").0, 404);
    assert_eq!(get(&m, "/api/v1/scan").0, 405);

    // A new file appears after a requested scan.
    ffmpeg(&lib, &["-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=1", "-c:v", "libx264", "New.mkv"]);
    let mut r = agent()
        .post(format!("{}/api/v1/scan", m.base))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send_empty()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.body_mut().read_to_string().unwrap());
    let start = Instant::now();
    loop {
        let (_, stats) = get(&m, "/api/v1/stats");
        if stats["total"] == 4 && stats["scanner"]["scans"].as_u64() >= Some(2) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the requested scan did not find New.mkv");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Oversized bodies are refused.
    let big = vec![b'x'; 2 << 20];
    let r = agent()
        .post(format!("{}/api/v1/scan", m.base))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(&big[..]);
    // The server may answer 413 or close the connection while the body is still coming.
    if let Ok(r) = r {
        assert_eq!(r.status().as_u16(), 413);
    }

    // Controls, each checked against the file's state.
    let id_of = |name: &str| {
        let (_, f) = get(&m, &format!("/api/v1/files?q={name}"));
        f["files"][0]["id"].as_i64().unwrap()
    };
    let (broken, episode, new) = (id_of("Broken"), id_of("Episode_1"), id_of("New.mkv"));
    assert_eq!(
        post(&m, &format!("/api/v1/files/{episode}/reencode"), serde_json::json!({})).0,
        409,
        "pending"
    );
    assert_eq!(post(&m, &format!("/api/v1/files/{broken}/retry"), serde_json::json!({})).0, 200);
    assert_eq!(post(&m, &format!("/api/v1/files/{episode}/retry"), serde_json::json!({})).0, 409, "pending");
    assert_eq!(post(&m, &format!("/api/v1/files/{new}/top"), serde_json::json!({})).0, 200);
    let (_, queue) = get(&m, "/api/v1/files?sort=queue&order=desc");
    assert_eq!(queue["files"][0]["id"], new, "pushed to the top: {queue}");
    assert_eq!(post(&m, &format!("/api/v1/files/{episode}/skip"), serde_json::json!({})).0, 200);
    let (_, skipped) = get(&m, "/api/v1/files?status=skipped");
    assert_eq!(
        (skipped["total"].as_u64(), skipped["files"][0]["reason"].as_str()),
        (Some(1), Some("manual"))
    );
    assert_eq!(post(&m, &format!("/api/v1/files/{episode}/reencode"), serde_json::json!({})).0, 200);
    assert_eq!(post(&m, &format!("/api/v1/files/{broken}/delete"), serde_json::json!({})).0, 200);
    assert_eq!(post(&m, "/api/v1/files/999999/delete", serde_json::json!({})).0, 404, "no such file");
    assert_eq!(post(&m, "/api/v1/files/999999/cancel", serde_json::json!({})).0, 404, "no such file");
    assert_eq!(get(&m, "/api/v1/stats").1["total"], 3);
    assert_eq!(post(&m, "/api/v1/scan", serde_json::json!({})).0, 202);
    wait_for("the deleted file to be found again", || {
        let s = get(&m, "/api/v1/stats").1;
        s["total"] == 4 && s["scanner"]["scans"].as_u64() >= Some(3)
    });

    let (status, metrics) = get(&m, "/metrics");
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("av1_files{status=\"pending\"} 3"), "{metrics}");
    assert!(metrics.contains("av1_files{status=\"failed\"} 1"), "{metrics}");
    assert!(metrics.contains("av1_scans_total 3"), "{metrics}");
    assert!(metrics.contains("av1_workers{status=\"encoding\"} 0"), "{metrics}");
    assert!(metrics.contains("av1_transfer_bytes_total{direction=\"upload\"} 0"), "{metrics}");
}

/// POST JSON with the token: status and JSON.
fn post(m: &Master, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let mut r = agent()
        .post(format!("{}{path}", m.base))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn leases_over_http_only_the_current_one_counts() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    ffmpeg(&lib, &["-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=1", "-c:v", "libx264", "Film.mkv"]);
    let m = master_with(&lib, &d.path().join("master.sqlite"), &["--lease-timeout", "1"]);
    wait_for("the first scan", || get(&m, "/api/v1/stats").1["pending"] == 1);

    let (status, reg) =
        post(&m, "/api/v1/workers/register", serde_json::json!({"name": "w1", "host": "box", "cores": 2}));
    assert_eq!(status, 200, "{reg}");
    let worker = reg["worker_id"].as_i64().unwrap();
    assert!(reg["heartbeat_seconds"].as_f64().unwrap() < 1.0);
    let (status, job) = post(&m, "/api/v1/jobs/claim", serde_json::json!({ "worker_id": worker }));
    assert_eq!(status, 200, "{job}");
    let (id, lease) = (job["job"]["file_id"].as_i64().unwrap(), job["lease"].as_str().unwrap().to_owned());
    assert!(job["job"]["path"].as_str().unwrap().ends_with("Film.mkv"));
    assert_eq!(
        post(&m, "/api/v1/jobs/claim", serde_json::json!({ "worker_id": worker })).0,
        204,
        "nothing left"
    );

    let beat = |lease: &str| {
        post(
            &m,
            &format!("/api/v1/jobs/{id}/heartbeat"),
            serde_json::json!({"lease": lease, "phase": "encoding", "progress": {"percent": 40}}),
        )
    };
    let (status, reply) = beat(&lease);
    assert_eq!((status, reply["cancel"].as_bool()), (200, Some(false)));
    assert_eq!(beat("not-the-lease").0, 409);
    let (status, _) = post(
        &m,
        &format!("/api/v1/jobs/{id}/fail"),
        serde_json::json!({"lease": "not-the-lease", "error": "x"}),
    );
    assert_eq!(status, 409, "a foreign lease changes nothing");
    let (_, workers) = get(&m, "/api/v1/workers");
    assert_eq!(workers["workers"][0]["phase"], "encoding");
    assert_eq!(workers["workers"][0]["progress"]["percent"], 40.0);
    assert_eq!(workers["workers"][0]["file_id"], id);
    assert_eq!(post(&m, "/api/v1/jobs/abc/heartbeat", serde_json::json!({"lease": lease})).0, 404);
    assert_eq!(post(&m, "/api/v1/jobs/claim", serde_json::json!({"worker": "nope"})).0, 400);
    assert_eq!(
        post(&m, "/api/v1/jobs/claim", serde_json::json!({"worker_id": 4242})).0,
        404,
        "register again"
    );

    // No heartbeat: the lease runs out and the file goes back, its attempt counted.
    wait_for("the lease to run out", || get(&m, "/api/v1/stats").1["pending"] == 1);
    let (_, files) = get(&m, "/api/v1/files");
    assert_eq!(files["files"][0]["attempts"], 1);
    let (_, workers) = get(&m, "/api/v1/workers");
    assert_eq!(workers["workers"][0]["status"], "offline", "silent for longer than a lease: {workers}");
    assert_eq!(beat(&lease).0, 409, "the old lease is stale");

    // A new claim, a cancel from the API reaches the worker at its next heartbeat.
    let (_, job) = post(&m, "/api/v1/jobs/claim", serde_json::json!({ "worker_id": worker }));
    let lease2 = job["lease"].as_str().unwrap().to_owned();
    assert_ne!(lease2, lease);
    assert_eq!(post(&m, &format!("/api/v1/files/{id}/cancel"), serde_json::json!({})).0, 200);
    assert_eq!(beat(&lease2).1["cancel"], true);
    let (status, done) =
        post(&m, &format!("/api/v1/jobs/{id}/cancelled"), serde_json::json!({"lease": lease2}));
    assert_eq!((status, done["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(
        post(&m, &format!("/api/v1/jobs/{id}/cancelled"), serde_json::json!({"lease": lease2})).0,
        409,
        "replayed"
    );
    assert_eq!(get(&m, "/api/v1/stats").1["cancelled"], 1);

    // Fade-out: the worker gets nothing new.
    assert_eq!(
        post(&m, &format!("/api/v1/workers/{worker}/fade-out"), serde_json::json!({"fade_out": true})).0,
        200
    );
    assert_eq!(post(&m, "/api/v1/workers/99/fade-out", serde_json::json!({"fade_out": true})).0, 404);
}

#[test]
fn a_result_with_a_wrong_hash_or_a_stale_lease_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    ffmpeg(&lib, &["-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=1", "-c:v", "libx264", "Film.mkv"]);
    let original = std::fs::read(lib.join("Film.mkv")).unwrap();
    let m = master(&lib, &d.path().join("master.sqlite"));
    wait_for("the first scan", || get(&m, "/api/v1/stats").1["pending"] == 1);
    let (_, reg) = post(&m, "/api/v1/workers/register", serde_json::json!({"name": "fake", "host": "h"}));
    let (_, job) = post(&m, "/api/v1/jobs/claim", serde_json::json!({ "worker_id": reg["worker_id"] }));
    let (id, lease) = (job["job"]["file_id"].as_i64().unwrap(), job["lease"].as_str().unwrap().to_owned());

    // A "result" where the worker's would be, reported with a hash it does not have.
    let staged = lib.join(format!(".Film.mkv.{}.av1-verified", &lease[..8]));
    std::fs::write(&staged, b"not really a video").unwrap();
    let claim = serde_json::json!({
        "lease": lease, "size": 18, "blake3": "00".repeat(32), "frames": 24,
        "encoder": "test", "fps": 1.0, "elapsed": 1.0,
    });
    let mut stale = claim.clone();
    stale["lease"] = serde_json::json!("someone-else");
    assert_eq!(post(&m, &format!("/api/v1/jobs/{id}/complete"), stale).0, 409);
    assert!(staged.exists(), "a stale call touches nothing");
    let (status, reply) = post(&m, &format!("/api/v1/jobs/{id}/complete"), claim.clone());
    assert_eq!((status, reply["status"].as_str()), (200, Some("pending")), "{reply}");
    assert!(reply["outcome"]["detail"].as_str().unwrap().contains("BLAKE3"), "{reply}");
    assert!(!staged.exists(), "the rejected result is removed");
    assert_eq!(std::fs::read(lib.join("Film.mkv")).unwrap(), original);
    assert_eq!(post(&m, &format!("/api/v1/jobs/{id}/complete"), claim).0, 409, "replayed");
}

#[test]
fn the_page_is_served_without_data_and_the_event_stream_needs_the_token() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    ffmpeg(&lib, &["-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=1", "-c:v", "libx264", "Film.mkv"]);
    let m = master(&lib, &d.path().join("master.sqlite"));
    // The page and its assets load without the token and hold nothing of the library.
    for (path, kind) in [("/", "text/html"), ("/app.js", "text/javascript"), ("/app.css", "text/css")] {
        let mut r = agent().get(format!("{}{path}", m.base)).call().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(r.headers().get("content-type").unwrap().to_str().unwrap().starts_with(kind));
        let body = r.body_mut().read_to_string().unwrap();
        assert!(
            !body.contains("Film.mkv") && !body.contains("http://") && !body.contains("https://"),
            "{path}: no outside resource"
        );
    }
    assert_eq!(agent().get(format!("{}/api/v1/events", m.base)).call().unwrap().status().as_u16(), 401);
    // With the token: an event with the statistics arrives at once.
    let r = agent()
        .get(format!("{}/api/v1/events", m.base))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers().get("content-type").unwrap(), "text/event-stream");
    let mut reader = BufReader::new(r.into_body().into_reader());
    let mut line = String::new();
    let start = Instant::now();
    while !line.starts_with("data: ") {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(start.elapsed() < Duration::from_secs(10), "no event");
    }
    let event: serde_json::Value = serde_json::from_str(line.trim_start_matches("data: ").trim()).unwrap();
    assert!(event["stats"]["total"].is_u64() && event["workers"].is_array(), "{event}");
}

/// The master checks its settings at start as the worker does: an unknown FILE_ORDER or
/// a MIN_SAVINGS_PERCENT out of range is an error naming what is allowed.
#[test]
fn unknown_settings_are_refused_at_start() {
    let d = tempfile::tempdir().unwrap();
    for (var, value, says) in [
        ("FILE_ORDER", "biggest", "oldest, newest, largest or smallest"),
        ("MIN_SAVINGS_PERCENT", "100", "from 0 to below 100"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_av1-master"))
            .env(var, value)
            .env("AV1_TOKEN", TOKEN)
            .args(["--bind", "127.0.0.1", "--port", "0", "--db"])
            .arg(d.path().join("q.sqlite"))
            .arg(d.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(says) && stderr.contains(value), "{var}={value}: {stderr}");
    }
    assert!(!d.path().join("q.sqlite").exists(), "refused before the queue is opened");
}
