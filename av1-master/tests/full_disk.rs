//! Full disks, on real size-limited file systems (tmpfs mounts: the tests need root and
//! say so when they are not): the temp dir, the library and a worker's scratch space.
//! A file that does not fit waits (it is not failed: the file is not at fault), a disk
//! that fills up during an encode loses nothing and leaves no partial file, and the
//! other files are still served.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use av1_library::names;
use support::*;

/// A tmpfs of `bytes` mounted on `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mounting a tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    /// Writes a file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0x5au8; 64 << 10];
        while f.write_all(&block).is_ok() {}
        let _ = f.flush();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Why these tests are ignored by a plain `cargo test`: `make test` runs them (with
/// `--ignored`) when it is root, and says loudly that it did not otherwise.
const NEEDS_ROOT: &str = "mounting a size-limited file system needs root";

/// Fails (never passes quietly) when run without root.
fn require_root() {
    assert!(rustix::process::geteuid().is_root(), "{NEEDS_ROOT}: run as root");
}

/// The standalone mode on `lib` (fast preset).
fn standalone(lib: &Path, db: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(worker_bin());
    c.env("SVT_LOG", "1").env("RUST_LOG", "info");
    for k in ["AV1_PAUSE_AT", "AV1_PAUSE_SECONDS", "TESTING_MODE", "MEDIA_DIRS", "TEMP_DIR"] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["transcode", "--preset", "12", "--db"]).arg(db).arg(lib);
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().unwrap();
    eprintln!("--- stderr ---\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs `c` paused at `job:encoding` for a few seconds, fills `disk` meanwhile, and
/// waits for the end; returns the filler file.
fn fill_during_encode(mut c: Command, disk: &Tmpfs) -> (Output, PathBuf) {
    c.env("AV1_PAUSE_AT", "job:encoding").env("AV1_PAUSE_SECONDS", "3");
    let p = Proc::spawn(c);
    p.wait_for("paused at job:encoding");
    let filler = disk.fill();
    let out = p_wait(p);
    (out, filler)
}

fn p_wait(mut p: Proc) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = p.child.try_wait() {
            return Output { status, stdout: Vec::new(), stderr: Vec::new() };
        }
        assert!(Instant::now() < deadline, "the run did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_of(db: &Path, name: &str) -> (String, String) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT status, coalesce(detail, '') FROM files WHERE path LIKE ?1 OR original_path LIKE ?1",
        [format!("%/{name}")],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// Files of ours (hidden temp/staged names) under `dir`.
fn ours_left(dir: &Path) -> Vec<PathBuf> {
    hashes(dir)
        .into_keys()
        .filter(|p| names::is_ours(p) || p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect()
}

fn library(lib: &Path, small: &[&str], big: &[&str]) {
    for name in small {
        clip_sized(lib, name, 1, 160, 120); // ~0.26 MB
    }
    for name in big {
        clip_sized(lib, name, 4, 320, 240); // ~3.9 MB: needs ~4.7 MB of room
    }
}

#[test]
#[ignore = "needs root (mounts size-limited file systems): make test runs it as root"]
fn a_full_temp_dir_makes_jobs_wait_and_loses_nothing() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    library(&lib, &["S1.mp4", "S2.mp4"], &["Big.mp4"]);
    let originals = hashes(&lib);
    let temp = Tmpfs::mount(&d.path().join("temp"), 3 << 20);
    let db = d.path().join("queue.sqlite");
    let env = [("TESTING_MODE", "1"), ("TEMP_DIR", temp.0.to_str().unwrap())];
    // Long enough (~1 MB, 4 s) to be paused while its result is being written.
    let mid_write = |lib: &Path, name: &str| clip_sized(lib, name, 4, 160, 120);

    // 1. Room for the small files only: they are done, the big one waits.
    let out = run(standalone(&lib, &db, &env));
    assert!(out.status.success(), "{out:?}");
    for name in ["S1.mp4", "S2.mp4"] {
        assert_eq!(status_of(&db, name).0, "done");
        check_av1(&names::target_for(&lib.join(name)), None).unwrap();
        assert_eq!(hash(&names::backup_for(&lib.join(name))), originals[&lib.join(name)]);
    }
    let (status, detail) = status_of(&db, "Big.mp4");
    assert_eq!(status, "pending", "{detail}");
    assert!(detail.contains("not enough free space"), "{detail}");
    assert_eq!(hash(&lib.join("Big.mp4")), originals[&lib.join("Big.mp4")]);
    assert!(ours_left(&temp.0).is_empty() && ours_left(&lib).is_empty());

    // 2. The temp dir fills up in the middle of an encode: the job waits, its partial
    //    result is gone, the original is untouched.
    mid_write(&lib, "S3.mp4");
    let s3 = hash(&lib.join("S3.mp4"));
    let (out, filler) = fill_during_encode(standalone(&lib, &db, &env), &temp);
    assert!(out.status.success(), "{out:?}");
    let (status, detail) = status_of(&db, "S3.mp4");
    assert_eq!(status, "pending", "{detail}");
    assert!(detail.contains("No space left") || detail.contains("not enough free space"), "{detail}");
    assert_eq!(hash(&lib.join("S3.mp4")), s3);
    assert!(!lib.join("S3.mkv").exists());
    assert_eq!(
        hashes(&temp.0).into_keys().collect::<Vec<_>>(),
        vec![filler.clone()],
        "only the filler is left"
    );
    assert!(ours_left(&lib).is_empty());

    // 3. Room again: everything is done.
    std::fs::remove_file(&filler).unwrap();
    let out = run(standalone(&lib, &db, &[("TESTING_MODE", "1")]));
    assert!(out.status.success(), "{out:?}");
    for name in ["Big.mp4", "S3.mp4"] {
        assert_eq!(status_of(&db, name).0, "done");
        check_av1(&names::target_for(&lib.join(name)), None).unwrap();
    }
    assert_eq!(hash(&lib.join("Big.mp4.bak")), originals[&lib.join("Big.mp4")]);
    assert_eq!(hash(&lib.join("S3.mp4.bak")), s3);
}

#[test]
#[ignore = "needs root (mounts size-limited file systems): make test runs it as root"]
fn a_full_library_disk_makes_jobs_wait_and_loses_nothing() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let made = d.path().join("made");
    std::fs::create_dir_all(&made).unwrap();
    library(&made, &["S1.mp4"], &["Big.mp4"]);
    clip_sized(&made, "S2.mp4", 4, 160, 120); // paused while its result is written
    let originals = hashes(&made);
    let size = |n: &str| std::fs::metadata(made.join(n)).unwrap().len();
    // The library's disk: its files and 2.5 MiB of room (the big one needs ~4.7 MB).
    let lib_disk =
        Tmpfs::mount(&d.path().join("lib"), size("S1.mp4") + size("Big.mp4") + size("S2.mp4") + (5 << 19));
    let lib = lib_disk.0.clone();
    for n in ["S1.mp4", "Big.mp4"] {
        std::fs::copy(made.join(n), lib.join(n)).unwrap();
    }
    let db = d.path().join("queue.sqlite");

    let out = run(standalone(&lib, &db, &[]));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(status_of(&db, "S1.mp4").0, "done");
    check_av1(&lib.join("S1.mkv"), None).unwrap();
    let (status, detail) = status_of(&db, "Big.mp4");
    assert_eq!(status, "pending", "{detail}");
    assert_eq!(hash(&lib.join("Big.mp4")), originals[&made.join("Big.mp4")]);
    assert!(ours_left(&lib).is_empty(), "{:?}", ours_left(&lib));

    // The library's disk fills up during an encode: no partial file stays beside the
    // original, which is untouched; the job waits.
    std::fs::copy(made.join("S2.mp4"), lib.join("S2.mp4")).unwrap();
    let (out, filler) = fill_during_encode(standalone(&lib, &db, &[]), &lib_disk);
    assert!(out.status.success(), "{out:?}");
    let (status, detail) = status_of(&db, "S2.mp4");
    assert_eq!(status, "pending", "{detail}");
    assert_eq!(hash(&lib.join("S2.mp4")), originals[&made.join("S2.mp4")]);
    assert!(!lib.join("S2.mkv").exists());
    assert!(ours_left(&lib).is_empty(), "{:?}", ours_left(&lib));
    assert_eq!(hash(&lib.join("Big.mp4")), originals[&made.join("Big.mp4")]);

    std::fs::remove_file(&filler).unwrap();
    let out = run(standalone(&lib, &db, &[]));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(status_of(&db, "S2.mp4").0, "done");
    check_av1(&lib.join("S2.mkv"), None).unwrap();
}

#[test]
#[ignore = "needs root (mounts size-limited file systems): make test runs it as root"]
fn a_worker_without_room_gives_the_file_back_and_serves_the_others() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    library(&lib, &["S1.mp4", "S2.mp4"], &["Big.mp4"]);
    let originals = hashes(&lib);
    // The worker's scratch space (downloads and results) holds 2 MiB: the big file's
    // download fills it.
    let state = Tmpfs::mount(&d.path().join("state"), 2 << 20);
    let (_master, url) = master(&lib, &d.path().join("master.sqlite"));
    let _w = worker(&url, "small", &state.0, &[("FILE_DISTRIBUTION_MODE", "true")]);
    settle(&url, "the small files", |s| s["done"] == 2);
    std::thread::sleep(Duration::from_secs(2));
    let s = stats(&url);
    assert_eq!(
        (s["done"].as_u64(), s["failed"].as_u64(), s["pending"].as_u64()),
        (Some(2), Some(0), Some(1)),
        "{s}"
    );
    let (_, files) = call(&url, "GET", "/api/v1/files?q=Big", None);
    let big = &files["files"][0];
    assert!(big["detail"].as_str().unwrap_or_default().contains("no room on"), "{big}");
    assert_eq!(hash(&lib.join("Big.mp4")), originals[&lib.join("Big.mp4")]);
    let work = state.0.join("worker-small/work");
    let left = std::fs::read_dir(&work).unwrap_or_else(|e| panic!("{}: {e}", work.display())).count();
    assert_eq!(left, 0, "scratch files left in {}", work.display());
}

#[test]
#[ignore = "needs root (mounts size-limited file systems): make test runs it as root"]
fn a_full_library_refuses_uploads_and_loses_nothing() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let made = d.path().join("made");
    std::fs::create_dir_all(&made).unwrap();
    library(&made, &["S1.mp4", "S2.mp4"], &[]);
    let originals = hashes(&made);
    let size = |n: &str| std::fs::metadata(made.join(n)).unwrap().len();
    let disk = Tmpfs::mount(&d.path().join("lib"), size("S1.mp4") + size("S2.mp4") + (1 << 20));
    let lib = disk.0.clone();
    for n in ["S1.mp4", "S2.mp4"] {
        std::fs::copy(made.join(n), lib.join(n)).unwrap();
    }
    let (_master, url) = master(&lib, &d.path().join("master.sqlite"));
    settle(&url, "the scan", |s| s["pending"] == 2);
    // The library's disk fills up: the master cannot take any upload (507).
    let filler = disk.fill();
    let a = worker(&url, "a", d.path(), &[("FILE_DISTRIBUTION_MODE", "true")]);
    let start = Instant::now();
    loop {
        let (_, files) = call(&url, "GET", "/api/v1/files", None);
        let given_back = files["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["status"] == "pending" && f["detail"].as_str().unwrap_or_default().contains("no room")
            })
            .count();
        if given_back == 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{files}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = stats(&url);
    assert_eq!((s["done"].as_u64(), s["failed"].as_u64()), (Some(0), Some(0)), "{s}");
    // Nothing but the originals (byte-identical) and the filler: no partial upload.
    let mut left: Vec<_> = hashes(&lib).into_keys().collect();
    left.sort();
    assert_eq!(left, vec![lib.join("S1.mp4"), lib.join("S2.mp4"), filler.clone()]);
    for n in ["S1.mp4", "S2.mp4"] {
        assert_eq!(hash(&lib.join(n)), originals[&made.join(n)]);
    }
    drop(a);
    // Room again: another worker finishes both (the first leaves them alone for a while).
    std::fs::remove_file(&filler).unwrap();
    let _b = worker(&url, "b", d.path(), &[("FILE_DISTRIBUTION_MODE", "true")]);
    settle(&url, "both files", |s| s["done"] == 2);
    for n in ["S1", "S2"] {
        check_av1(&lib.join(format!("{n}.mkv")), None).unwrap();
        assert_eq!(hash(&lib.join(format!("{n}.mp4.bak"))), originals[&made.join(format!("{n}.mp4"))]);
    }
}

#[test]
#[ignore = "needs root (mounts size-limited file systems): make test runs it as root"]
fn a_library_disk_gone_read_only_makes_jobs_wait() {
    require_root();
    let d = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&d.path().join("lib"), 8 << 20);
    let lib = disk.0.clone();
    library(&lib, &["S1.mp4", "S2.mp4"], &[]);
    let originals = hashes(&lib);
    let db = d.path().join("queue.sqlite");
    // The disk turns read-only after the scan (as ext4 does on errors): no job can
    // write its result; none is failed for it.
    let mut c = standalone(&lib, &db, &[("TESTING_MODE", "true")]);
    c.env("AV1_PAUSE_AT", "scan:recording").env("AV1_PAUSE_SECONDS", "2");
    let p = Proc::spawn(c);
    p.wait_for("paused at scan:recording");
    let remount = |how: &str| {
        let ok = Command::new("mount").args(["-o", &format!("remount,{how}")]).arg(&lib).status().unwrap();
        assert!(ok.success(), "remount {how}");
    };
    remount("ro");
    let out = p_wait(p);
    assert!(out.status.success(), "{out:?}");
    for name in ["S1.mp4", "S2.mp4"] {
        let (status, detail) = status_of(&db, name);
        assert_eq!(status, "pending", "{name}: {detail}");
        assert!(detail.contains("Read-only file system"), "{name}: {detail}");
    }
    assert_eq!(hashes(&lib), originals, "the library changed");
    // Writable again: the next run does them.
    remount("rw");
    let out = run(standalone(&lib, &db, &[("TESTING_MODE", "true")]));
    assert!(out.status.success(), "{out:?}");
    for name in ["S1", "S2"] {
        assert_eq!(status_of(&db, &format!("{name}.mkv")).0, "done");
        check_av1(&lib.join(format!("{name}.mkv")), None).unwrap();
        assert_eq!(hash(&lib.join(format!("{name}.mp4.bak"))), originals[&lib.join(format!("{name}.mp4"))]);
    }
    assert!(ours_left(&lib).is_empty(), "{:?}", ours_left(&lib));
}
