//! A master and two workers as real processes on loopback (shared storage, one with a
//! PATH_MAP): a small library is finished; a worker killed mid-encode loses nothing —
//! its lease runs out and the other worker finishes the job.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "distributed-test";

fn ffmpeg(dir: &Path, args: &[&str]) {
    let out = Command::new("ffmpeg")
        .current_dir(dir)
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn clip(dir: &Path, name: &str, seconds: u32) {
    let d = seconds.to_string();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=s=160x120:r=24:d={d},noise=alls=12:allf=t"),
            "-f",
            "lavfi",
            "-i",
            &format!("sine=d={d}"),
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            name,
        ],
    );
}

fn worker_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_av1-master")).with_file_name("av1-worker");
    assert!(p.exists(), "{} is built with the workspace (cargo test --workspace)", p.display());
    p
}

/// A child process killed when dropped, with its stderr lines forwarded to a channel.
struct Proc {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(mut c: Command) -> Proc {
        let mut child = c.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                let _ = tx.send(line);
            }
        });
        Proc { child, lines }
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(90);
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("never saw {needle:?}");
    }
}

fn master(lib: &Path, db: &Path) -> (Proc, String) {
    master_on(lib, db, 0)
}

fn master_on(lib: &Path, db: &Path, port: u16) -> (Proc, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_av1-master"));
    c.env("SVT_LOG", "1").env("RUST_LOG", "info").env("AV1_TOKEN", TOKEN).env_remove("MEDIA_DIRS");
    c.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--lease-timeout",
        "2",
        "--testing-mode",
        "--preset",
        "12",
        "--crf",
        "40",
        "--db",
    ])
    .arg(db)
    .arg(lib);
    let p = Proc::spawn(c);
    let line = p.wait_for("listening on http://");
    let addr =
        line.split("listening on http://").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    (p, format!("http://{addr}"))
}

fn worker(url: &str, name: &str, state: &Path, extra_env: &[(&str, &str)]) -> Proc {
    let mut c = Command::new(worker_bin());
    c.env("SVT_LOG", "1").env("RUST_LOG", "info").env("AV1_TOKEN", TOKEN).env_remove("MASTER_URL");
    c.env("WORKER_STATE", state.join(format!("worker-{name}")));
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.args(["--preset", "12", "--poll", "0.2", "--name", name, url]);
    Proc::spawn(c)
}

fn stats(url: &str) -> serde_json::Value {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent
        .get(format!("{url}/api/v1/stats"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

fn settle(url: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
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

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn assert_av1(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "av1");
}

#[test]
fn two_workers_finish_a_library_and_a_killed_worker_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "One.mp4", 1);
    clip(&lib, "Two.mkv", 1);
    clip(&lib, "Three.mkv", 2);
    std::fs::write(lib.join("Broken.mkv"), vec![3u8; 4096]).unwrap();
    let originals = snapshot(&lib);
    // The second worker sees the library under another path.
    let mount = d.path().join("mnt");
    std::os::unix::fs::symlink(&lib, &mount).unwrap();
    let canonical = std::fs::canonicalize(&lib).unwrap();

    let (_master, url) = master(&lib, &d.path().join("master.sqlite"));
    settle(&url, "the first scan", |s| s["pending"] == 3 && s["failed"] == 1);

    // Worker A stops in the middle of its first encode; it is then killed (SIGKILL).
    let a = worker(&url, "a", d.path(), &[("AV1_PAUSE_AT", "worker:encoding")]);
    a.wait_for("paused at worker:encoding");
    drop(a);
    let map = format!("{}={}", canonical.display(), mount.display());
    let b = worker(&url, "b", d.path(), &[("PATH_MAP", &map)]);
    let s = settle(&url, "the library to settle", |s| s["pending"] == 0 && s["running"] == 0);
    assert_eq!((s["done"].as_u64(), s["failed"].as_u64()), (Some(3), Some(1)), "{s}");

    let after = snapshot(&lib);
    for name in ["One.mkv", "Two.mkv", "Three.mkv"] {
        assert_av1(&lib.join(name));
    }
    assert!(!after.contains_key("One.mp4"));
    for (orig, bak) in
        [("One.mp4", "One.mp4.bak"), ("Two.mkv", "Two.mkv.bak"), ("Three.mkv", "Three.mkv.bak")]
    {
        assert_eq!(after[bak], originals[orig], "{bak} is the original");
    }
    assert_eq!(after["Broken.mkv"], originals["Broken.mkv"]);
    let hidden: Vec<_> = after.keys().filter(|k| k.starts_with('.')).collect();
    assert!(hidden.is_empty(), "left in the library: {hidden:?}");
    assert!(s["bytes_saved"].as_u64().unwrap() > 0);

    // A cancel from the API reaches the encoder through the next heartbeat.
    ffmpeg(
        &lib,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=640x360:r=24:d=60,noise=alls=20:allf=t",
            "-c:v",
            "libx264",
            "-crf",
            "10",
            "Long.mkv",
        ],
    );
    let long_original = std::fs::read(lib.join("Long.mkv")).unwrap();
    call(&url, "POST", "/api/v1/scan");
    // The file is running once a worker holds it (its status, not a worker's phase,
    // which a fast encode could finish between two looks).
    let id = {
        let start = Instant::now();
        loop {
            let f = call(&url, "GET", "/api/v1/files?q=Long.mkv");
            let row = &f["files"][0];
            if row["status"] == "running" {
                break row["id"].as_i64().unwrap();
            }
            assert!(row["status"] != "done", "Long.mkv finished before it could be cancelled: {f}");
            assert!(start.elapsed() < Duration::from_secs(60), "Long.mkv never started: {f}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let asked = Instant::now();
    call(&url, "POST", &format!("/api/v1/files/{id}/cancel"));
    b.wait_for("cancelled: \"cancelled\"");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "the encoder stopped {:?} after the cancel",
        asked.elapsed()
    );
    assert_eq!(std::fs::read(lib.join("Long.mkv")).unwrap(), long_original);
    let s = settle(&url, "the cancel to be recorded", |s| s["cancelled"] == 1 && s["running"] == 0);
    assert_eq!(s["done"], 3);
    let hidden: Vec<_> = snapshot(&lib).into_keys().filter(|k| k.starts_with('.')).collect();
    assert!(hidden.is_empty(), "left in the library: {hidden:?}");
}

fn call(url: &str, method: &str, path: &str) -> serde_json::Value {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let auth = format!("Bearer {TOKEN}");
    let mut r = match method {
        "POST" => agent.post(format!("{url}{path}")).header("Authorization", &auth).send_empty().unwrap(),
        _ => agent.get(format!("{url}{path}")).header("Authorization", &auth).call().unwrap(),
    };
    serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default()
}

#[test]
fn a_master_killed_mid_job_and_restarted_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    ffmpeg(
        &lib,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=24:d=12,noise=alls=12:allf=t",
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "Film.mp4",
        ],
    );
    let original = std::fs::read(lib.join("Film.mp4")).unwrap();
    let db = d.path().join("master.sqlite");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (master1, url) = master_on(&lib, &db, port);
    settle(&url, "the first scan", |s| s["pending"] == 1);
    let w = worker(&url, "w", d.path(), &[]);
    w.wait_for("job: ");
    // SIGKILL the master while the worker encodes, and bring it back on the same port.
    drop(master1);
    std::thread::sleep(Duration::from_millis(1500));
    let (_master2, url2) = master_on(&lib, &db, port);
    assert_eq!(url, url2);
    let s = settle(&url, "the job to finish after the restart", |s| s["done"] == 1);
    assert_eq!((s["pending"].as_u64(), s["failed"].as_u64()), (Some(0), Some(0)), "{s}");
    assert_av1(&lib.join("Film.mkv"));
    assert_eq!(std::fs::read(lib.join("Film.mp4.bak")).unwrap(), original);
    assert!(!lib.join("Film.mp4").exists());
    let files = call(&url, "GET", "/api/v1/files");
    assert_eq!(files["files"][0]["attempts"], 1, "the lease survived the restart: {files}");
}

#[test]
fn file_distribution_downloads_encodes_and_uploads() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "Film.mp4", 2);
    clip(&lib, "Show.mkv", 1);
    let originals = snapshot(&lib);
    let (_master, url) = master(&lib, &d.path().join("master.sqlite"));
    settle(&url, "the first scan", |s| s["pending"] == 2);
    let w = worker(&url, "far", d.path(), &[("FILE_DISTRIBUTION_MODE", "true")]);
    let w2 = worker(&url, "farther", d.path(), &[("FILE_DISTRIBUTION_MODE", "true")]);
    let s = settle(&url, "the library to settle", |s| s["pending"] == 0 && s["running"] == 0);
    assert_eq!(s["done"], 2, "{s}");
    drop((w, w2));
    let after = snapshot(&lib);
    assert_av1(&lib.join("Film.mkv"));
    assert_av1(&lib.join("Show.mkv"));
    assert_eq!(after["Film.mp4.bak"], originals["Film.mp4"]);
    assert_eq!(after["Show.mkv.bak"], originals["Show.mkv"]);
    assert!(after.keys().all(|k| !k.starts_with('.')), "{:?}", after.keys());
    // The worker's own scratch files are gone too.
    let work = d.path().join("worker-far/work");
    assert_eq!(std::fs::read_dir(&work).map(|r| r.count()).unwrap_or(0), 0);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let text = agent
        .get(format!("{url}/metrics"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let bytes = |dir: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(&format!("av1_transfer_bytes_total{{direction=\"{dir}\"}}")))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap()
    };
    let sources: u64 = originals.values().map(|v| v.len() as u64).sum();
    assert_eq!(bytes("download"), sources, "{text}");
    assert!(bytes("upload") > 0, "{text}");
    // The master's settings were used (its CRF, not the worker's table) and recorded.
    let files = call(&url, "GET", "/api/v1/files?status=done");
    for f in files["files"].as_array().unwrap() {
        assert_eq!(f["settings"]["crf"], 40, "{f}");
        assert!(f["encoder"].as_str().unwrap().starts_with("SVT-AV1 "), "{f}");
    }
}

#[test]
fn an_upload_cut_by_a_master_restart_resumes() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "Film.mp4", 2);
    let original = std::fs::read(lib.join("Film.mp4")).unwrap();
    let db = d.path().join("master.sqlite");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (master1, url) = master_on(&lib, &db, port);
    settle(&url, "the first scan", |s| s["pending"] == 1);
    // Uploads 4 KiB per request and stops for 4 s after the first one: the master is
    // killed then, and started again.
    let w = worker(
        &url,
        "far",
        d.path(),
        &[
            ("FILE_DISTRIBUTION_MODE", "true"),
            ("AV1_UPLOAD_CHUNK", "4096"),
            ("AV1_PAUSE_AT", "worker:uploaded-chunk"),
            ("AV1_PAUSE_SECONDS", "4"),
        ],
    );
    w.wait_for("paused at worker:uploaded-chunk");
    drop(master1);
    std::thread::sleep(Duration::from_millis(500));
    let (_master2, _) = master_on(&lib, &db, port);
    let s = settle(&url, "the upload to resume and the job to finish", |s| s["done"] == 1);
    assert_eq!(s["failed"], 0, "{s}");
    assert_av1(&lib.join("Film.mkv"));
    assert_eq!(std::fs::read(lib.join("Film.mp4.bak")).unwrap(), original);
    let files = call(&url, "GET", "/api/v1/files");
    assert_eq!(files["files"][0]["attempts"], 1, "resumed, not started again: {files}");
}

#[test]
fn a_master_with_a_local_worker_is_the_whole_product_on_one_machine() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "Film.mp4", 1);
    clip(&lib, "Show.mkv", 1);
    let mut c = Command::new(env!("CARGO_BIN_EXE_av1-master"));
    c.env("SVT_LOG", "1").env("RUST_LOG", "info").env("AV1_TOKEN", TOKEN).env_remove("MEDIA_DIRS");
    c.env("XDG_STATE_HOME", d.path().join("state"));
    c.args(["--bind", "127.0.0.1", "--port", "0", "--preset", "12", "--local-worker", "--db"])
        .arg(d.path().join("master.sqlite"))
        .arg(&lib);
    let m = Proc::spawn(c);
    let line = m.wait_for("listening on http://");
    let url = format!(
        "http://{}",
        line.split("listening on http://").nth(1).unwrap().split_whitespace().next().unwrap()
    );
    let s = settle(&url, "the local worker to finish the library", |s| s["done"] == 2);
    assert_eq!(s["failed"], 0, "{s}");
    assert_av1(&lib.join("Film.mkv"));
    assert_av1(&lib.join("Show.mkv"));
    assert!(!lib.join("Film.mp4").exists());
    let workers = call(&url, "GET", "/api/v1/workers");
    assert!(workers["workers"][0]["name"].as_str().unwrap().ends_with("-local"), "{workers}");
    assert_eq!(workers["workers"][0]["jobs_done"], 2);
}
