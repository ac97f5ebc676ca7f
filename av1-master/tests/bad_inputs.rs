//! Bad inputs, generated here, through the whole product — the standalone mode, and a
//! master with a worker that downloads them: empty, truncated at several points, random
//! bytes with a video extension, audio only, still images, absurd declared dimensions,
//! an unsupported codec; and files that change or disappear while queued or while being
//! encoded. Each ends `failed` or `skipped` with a readable reason, nothing panics, the
//! original stays byte-identical and nothing of ours is left beside it.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;

/// A bad file's name and the words its reason must hold (RELIABILITY.md's table).
type Bad = (String, &'static str);

/// Writes the bad files into `lib`; returns their names with the reason each must get.
fn bad_library(lib: &Path) -> Vec<Bad> {
    std::fs::create_dir_all(lib).unwrap();
    let scratch = lib.join("..").join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut names = Vec::new();
    let mut put = |name: &str, bytes: &[u8], reason: &'static str| {
        std::fs::write(lib.join(name), bytes).unwrap();
        names.push((name.to_owned(), reason));
    };
    const UNREADABLE: &str = "Invalid data found when processing input";
    put("empty.mkv", b"", "is empty (0 bytes)");
    let mut rng = fastrand::Rng::with_seed(6);
    let mut noise = vec![0u8; 200_000];
    rng.fill(&mut noise);
    put("random bytes.mkv", &noise, UNREADABLE);
    put("random bytes.mp4", &noise[..50_000], UNREADABLE);
    put("text.avi", "this is not a film\n".repeat(500).as_bytes(), UNREADABLE);

    // A good clip cut short at several points, as MP4 (index at the end) and Matroska
    // (readable up to the cut: the result would be shorter than the source says).
    clip_sized(&scratch, "whole.mp4", 2, 160, 120);
    clip_sized(&scratch, "whole.mkv", 4, 160, 120);
    // (A Matroska file cut within the verification's tolerance, max(0.5 s, 1%) of its
    // duration, plays to its end and is encoded: what it holds is kept.)
    for (ext, cuts, reason) in [("mp4", [10, 50, 95], UNREADABLE), ("mkv", [3, 50, 70], "it is truncated")] {
        let whole = std::fs::read(scratch.join(format!("whole.{ext}"))).unwrap();
        for pct in cuts {
            put(&format!("cut at {pct}%.{ext}"), &whole[..whole.len() * pct / 100], reason);
        }
    }
    // Audio only; a still picture; a JPEG named like a film.
    ffmpeg(&scratch, &["-f", "lavfi", "-i", "sine=d=2", "-c:a", "libopus", "audio.mkv"]);
    ffmpeg(&scratch, &["-f", "lavfi", "-i", "testsrc2=s=160x120:d=1", "-frames:v", "1", "still.mkv"]);
    ffmpeg(&scratch, &["-f", "lavfi", "-i", "testsrc2=s=160x120:d=1", "-frames:v", "1", "photo.jpg"]);
    for (from, to, reason) in [
        ("audio.mkv", "audio only.mkv", "no video stream"),
        ("still.mkv", "still image.mkv", "a still image, not a video"),
        ("photo.jpg", "photo.mp4", "a still image, not a video"),
    ] {
        put(to, &std::fs::read(scratch.join(from)).unwrap(), reason);
    }
    // Absurd dimensions: a PNG stream whose header declares 1 000 000 × 1 000 000
    // (CRC made right, so only the size is wrong).
    ffmpeg(&scratch, &["-f", "lavfi", "-i", "testsrc2=s=64x64:r=24:d=1", "-c:v", "png", "png.mkv"]);
    let mut png = std::fs::read(scratch.join("png.mkv")).unwrap();
    let mut patched = 0;
    let mut at = 0;
    while let Some(i) = find(&png[at..], b"IHDR").map(|i| i + at) {
        png[i + 4..i + 8].copy_from_slice(&1_000_000u32.to_be_bytes());
        png[i + 8..i + 12].copy_from_slice(&1_000_000u32.to_be_bytes());
        let crc = crc32fast::hash(&png[i..i + 17]);
        png[i + 17..i + 21].copy_from_slice(&crc.to_be_bytes());
        patched += 1;
        at = i + 21;
    }
    assert!(patched > 0);
    put("absurd dimensions.mkv", &png, "no video frame could be decoded");
    // An unknown codec: the Matroska codec id renamed.
    let mut mkv = std::fs::read(scratch.join("whole.mkv")).unwrap();
    let i = find(&mkv, b"V_MPEG4/ISO/AVC").expect("an H.264 Matroska track");
    mkv[i..i + 15].copy_from_slice(b"V_NOSUCH/CODEC!");
    put("unknown codec.mkv", &mkv, "no decoder for video codec");
    std::fs::remove_dir_all(&scratch).unwrap();
    names
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every row of a queue database: name → (status, reason or detail).
fn rows(db: &Path) -> BTreeMap<String, (String, String)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st =
        c.prepare("SELECT path, status, coalesce(reason, ''), coalesce(detail, '') FROM files").unwrap();
    st.query_map([], |r| {
        let path: String = r.get(0)?;
        let name = Path::new(&path).file_name().unwrap().to_string_lossy().into_owned();
        Ok((
            name,
            (r.get(1)?, format!("{} {}", r.get::<_, String>(2)?, r.get::<_, String>(3)?).trim().to_owned()),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Each bad file ended failed with its own reason and is byte-identical; nothing else
/// is in the library. Prints the table (RELIABILITY.md quotes it).
fn check_outcomes(lib: &Path, db: &Path, names: &[Bad], before: &BTreeMap<PathBuf, String>) {
    let rows = rows(db);
    eprintln!("{:<28} {:<8} reason", "file", "status");
    for (name, reason) in names {
        let (status, why) = rows.get(name).unwrap_or_else(|| panic!("{name} is not in the queue: {rows:?}"));
        eprintln!("{name:<28} {status:<8} {why}");
        assert_eq!(status, "failed", "{name}: {why}");
        assert!(why.contains(reason), "{name}: the reason must say {reason:?}, not {why:?}");
        assert!(why.contains(name.as_str()), "{name}: the reason does not name the file ({why:?})");
        assert!(!why.contains("panick"), "{name}: {why}");
    }
    assert_eq!(&hashes(lib), before, "the library changed");
}

fn standalone(lib: &Path, db: &Path) -> Command {
    let mut c = Command::new(worker_bin());
    c.env("SVT_LOG", "1").env("RUST_LOG", "info");
    for k in ["AV1_PAUSE_AT", "AV1_PAUSE_SECONDS", "TESTING_MODE", "MEDIA_DIRS", "TEMP_DIR"] {
        c.env_remove(k);
    }
    c.args(["transcode", "--preset", "12", "--db"]).arg(db).arg(lib);
    c
}

#[test]
fn bad_inputs_in_the_standalone_mode() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    let names = bad_library(&lib);
    let before = hashes(&lib);
    let db = d.path().join("queue.sqlite");
    let out = standalone(&lib, &db).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(1), "some files failed: exit 1");
    assert!(!stderr.contains("panicked"), "a panic");
    check_outcomes(&lib, &db, &names, &before);
}

#[test]
fn bad_inputs_through_a_master_and_a_downloading_worker() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    let names = bad_library(&lib);
    let before = hashes(&lib);
    let db = d.path().join("master.sqlite");
    let (mut m, url) = master(&lib, &db);
    let mut w = worker(&url, "w", d.path(), &[("FILE_DISTRIBUTION_MODE", "true")]);
    let n = names.len();
    settle(&url, "every bad file to end", |s| s["total"] == n && s["pending"] == 0 && s["running"] == 0);
    assert!(m.child.try_wait().unwrap().is_none() && w.child.try_wait().unwrap().is_none(), "still running");
    w.stop(Duration::from_secs(10));
    m.stop(Duration::from_secs(10));
    check_outcomes(&lib, &db, &names, &before);
}

/// Files that change or disappear: while queued (during another file's encode) and
/// while being encoded. The standalone mode re-checks each file when its turn comes and
/// again before replacing it.
#[test]
fn files_that_change_or_disappear_while_queued_or_encoded() {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    for name in ["A.mp4", "B.mp4", "C.mp4"] {
        clip_sized(&lib, name, 2, 160, 120);
    }
    let db = d.path().join("queue.sqlite");
    // A is being encoded (held 3 s); meanwhile A is rewritten, B (queued) is rewritten
    // and C (queued) is deleted.
    let mut c = standalone(&lib, &db);
    c.env("AV1_PAUSE_AT", "job:encoding").env("AV1_PAUSE_SECONDS", "3");
    let p = Proc::spawn(c);
    p.wait_for("paused at job:encoding");
    clip_sized(&lib, "A.mp4", 1, 128, 96);
    clip_sized(&lib, "B.mp4", 1, 128, 96);
    std::fs::remove_file(lib.join("C.mp4")).unwrap();
    let a = hash(&lib.join("A.mp4"));
    let out = wait_out(p);
    assert!(!out.contains("panicked"), "{out}");
    let r = rows(&db);
    eprintln!("{r:#?}");
    // A: changed under the encoder → not replaced, waits for the next run.
    assert_eq!(r["A.mp4"].0, "pending", "{:?}", r["A.mp4"]);
    assert!(r["A.mp4"].1.contains("modified while encoding"), "{:?}", r["A.mp4"]);
    assert_eq!(hash(&lib.join("A.mp4")), a);
    assert!(!lib.join("A.mkv").exists());
    // B: its new content was probed and encoded when its turn came.
    assert_eq!(r["B.mkv"].0, "done");
    check_av1(&lib.join("B.mkv"), Some(1.0)).unwrap();
    // C: gone before its turn.
    assert_eq!(r["C.mp4"].0, "failed", "{:?}", r["C.mp4"]);
    assert!(r["C.mp4"].1.contains("gone"), "{:?}", r["C.mp4"]);

    // The next run encodes A's new content.
    let mut c = standalone(&lib, &db);
    c.env("AV1_PAUSE_AT", "job:encoding").env("AV1_PAUSE_SECONDS", "3");
    c.env("TESTING_MODE", "true");
    let p = Proc::spawn(c);
    p.wait_for("paused at job:encoding"); // A
    let out = wait_out(p);
    assert!(!out.contains("panicked"), "{out}");
    assert_eq!(rows(&db)["A.mkv"].0, "done");
    assert_eq!(hash(&lib.join("A.mp4.bak")), a, "the backup is the file as it was when encoded");

    // D disappears while being encoded.
    clip_sized(&lib, "D.mp4", 2, 160, 120);

    let mut c = standalone(&lib, &db);
    c.env("AV1_PAUSE_AT", "job:encoding").env("AV1_PAUSE_SECONDS", "3");
    let p = Proc::spawn(c);
    p.wait_for("paused at job:encoding"); // D
    std::fs::remove_file(lib.join("D.mp4")).unwrap();
    let out = wait_out(p);
    assert!(!out.contains("panicked"), "{out}");
    let r = rows(&db);
    assert_eq!(r["D.mp4"].0, "failed", "{:?}", r["D.mp4"]);
    assert!(r["D.mp4"].1.contains("disappeared while encoding"), "{:?}", r["D.mp4"]);
    assert!(!lib.join("D.mkv").exists());
    let ours: Vec<_> = hashes(&lib)
        .into_keys()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
}

fn wait_out(mut p: Proc) -> String {
    let (status, rest) = p.finish();
    assert!(status.code().is_some(), "killed by a signal: {status}");
    rest
}

/// Through the master: a source rewritten while a worker has its job is not replaced by
/// that result (shared storage: the master's check sees the change; file distribution:
/// the download is refused and the job given back); the new content is encoded next.
fn rewritten_while_a_worker_has_it(point: &str, distribution: bool, attempts: u64) {
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    clip_sized(&lib, "A.mp4", 2, 160, 120);
    clip_sized(d.path(), "new.mp4", 1, 128, 96);
    let (_m, url) = master(&lib, &d.path().join("master.sqlite"));
    settle(&url, "the scan", |s| s["pending"] == 1);
    let mode = if distribution { "true" } else { "false" };
    // Held 1 s (within the 2 s lease: no heartbeat runs yet at `worker:claimed`).
    let env = [("AV1_PAUSE_AT", point), ("AV1_PAUSE_SECONDS", "1"), ("FILE_DISTRIBUTION_MODE", mode)];
    let w = worker(&url, "w", d.path(), &env);
    w.wait_for(&format!("paused at {point}"));
    std::fs::copy(d.path().join("new.mp4"), lib.join("A.mp4")).unwrap();
    let rewritten = hash(&lib.join("A.mp4"));
    let s = settle(&url, "the new content to be done", |s| s["done"] == 1 || s["failed"] == 1);
    assert_eq!(s["done"], 1, "{s}");
    // The result is the new content's (1 s), the backup is the new content.
    check_av1(&lib.join("A.mkv"), Some(1.0)).unwrap();
    assert_eq!(hash(&lib.join("A.mp4.bak")), rewritten);
    let (_, files) = call(&url, "GET", "/api/v1/files", None);
    assert_eq!(files["files"][0]["attempts"], attempts, "{files}");
    let c = rusqlite::Connection::open(d.path().join("master.sqlite")).unwrap();
    let first: String = c
        .query_row("SELECT coalesce(detail, '') FROM attempts ORDER BY id LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert!(first.contains("changed"), "{first}");
}

#[test]
fn a_source_rewritten_during_a_workers_encode_is_not_replaced_by_it() {
    rewritten_while_a_worker_has_it("worker:encoding", false, 2);
}

#[test]
fn a_source_rewritten_before_its_download_is_given_back_and_done_anew() {
    // The give-back does not count: one attempt.
    rewritten_while_a_worker_has_it("worker:claimed", true, 1);
}
