//! A master and two workers as real processes on loopback (shared storage, one with a
//! PATH_MAP): a small library is finished; a worker killed mid-encode loses nothing —
//! its lease runs out and the other worker finishes the job.

use std::process::Command;
use std::time::{Duration, Instant};

mod support;
use support::*;

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
    call(&url, "POST", "/api/v1/scan", None);
    // The file is running once a worker holds it (its status, not a worker's phase,
    // which a fast encode could finish between two looks).
    let id = {
        let start = Instant::now();
        loop {
            let f = call(&url, "GET", "/api/v1/files?q=Long.mkv", None).1;
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
    call(&url, "POST", &format!("/api/v1/files/{id}/cancel"), None);
    b.wait_for("cancelled: cancelled");
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
    let files = call(&url, "GET", "/api/v1/files", None).1;
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
    // (It downloaded into it, so it must be there: a missing folder is a failure.)
    let left = std::fs::read_dir(&work).unwrap_or_else(|e| panic!("{}: {e}", work.display())).count();
    assert_eq!(left, 0, "scratch files left in {}", work.display());
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
    let files = call(&url, "GET", "/api/v1/files?status=done", None).1;
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
    let files = call(&url, "GET", "/api/v1/files", None).1;
    assert_eq!(files["files"][0]["attempts"], 1, "resumed, not started again: {files}");
}

#[test]
fn a_master_with_a_local_worker_is_the_whole_product_on_one_machine() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip(&lib, "Film.mp4", 1);
    clip(&lib, "Show.mkv", 1);
    let mut c = Command::new(master_bin());
    c.env("SVT_LOG", "1").env("RUST_LOG", "info").env("AV1_TOKEN", TOKEN).env_remove("MEDIA_DIRS");
    c.env("XDG_STATE_HOME", d.path().join("state"));
    c.args(["--bind", "127.0.0.1", "--port", "0", "--preset", "12", "--local-worker", "--db"])
        .arg(d.path().join("master.sqlite"))
        .arg(&lib);
    let (_m, url) = start_master(c);
    let s = settle(&url, "the local worker to finish the library", |s| s["done"] == 2);
    assert_eq!(s["failed"], 0, "{s}");
    assert_av1(&lib.join("Film.mkv"));
    assert_av1(&lib.join("Show.mkv"));
    assert!(!lib.join("Film.mp4").exists());
    let workers = call(&url, "GET", "/api/v1/workers", None).1;
    assert!(workers["workers"][0]["name"].as_str().unwrap().ends_with("-local"), "{workers}");
    assert_eq!(workers["workers"][0]["jobs_done"], 2);
}
