//! The `av1-worker transcode` command as a user runs it.

use std::path::Path;
use std::process::Command;

use av1_testkit::ffmpeg;

fn worker(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_av1-worker"))
        .current_dir(dir)
        .env("SVT_LOG", "1")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn transcodes_refuses_to_overwrite_and_skips_av1() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=160x120:r=24:d=1",
            "-f",
            "lavfi",
            "-i",
            "sine=d=1",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "in.mp4",
        ],
    );
    let out = worker(dir, &["transcode", "in.mp4", "-o", "out.mkv", "--preset", "12", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["frames"], 24);
    assert_eq!(report["verification"]["audio"], 1);
    assert!(report["encoder"].as_str().unwrap().starts_with("SVT-AV1 "));
    let before = std::fs::read(dir.join("out.mkv")).unwrap();

    // An existing output is never overwritten.
    let again = worker(dir, &["transcode", "in.mp4", "-o", "out.mkv", "--preset", "12"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwriting"));
    assert_eq!(std::fs::read(dir.join("out.mkv")).unwrap(), before);

    // An AV1 source is skipped on purpose (exit 3), not failed.
    let skip = worker(dir, &["transcode", "out.mkv", "-o", "again.mkv"]);
    assert_eq!(skip.status.code(), Some(3), "{}", String::from_utf8_lossy(&skip.stderr));
    assert!(String::from_utf8_lossy(&skip.stderr).contains("already AV1"));
    assert!(!dir.join("again.mkv").exists());

    // A broken file fails with the file named, and nothing written.
    std::fs::write(dir.join("broken.mkv"), b"not a video at all").unwrap();
    let bad = worker(dir, &["transcode", "broken.mkv", "-o", "b.mkv"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("broken.mkv"));
    assert!(!dir.join("b.mkv").exists());

    let probe = worker(dir, &["probe", "in.mp4"]);
    let info: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    assert_eq!(info["streams"][0]["codec"], "h264");
    assert_eq!(info["hdr"]["kind"], "sdr");
}

/// README: "Ctrl-C / SIGTERM stops within a second and removes the partial output" —
/// in the single-file mode, mid-encode, timed from the signal to the exit.
#[test]
fn ctrl_c_stops_a_single_file_within_a_second_and_leaves_nothing() {
    use std::time::{Duration, Instant};
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let video = "testsrc2=s=640x360:r=24:d=60,noise=alls=10:allf=t";
    ffmpeg(dir, &["-f", "lavfi", "-i", video, "-c:v", "libx264", "-preset", "ultrafast", "long.mp4"]);
    let source = std::fs::read(dir.join("long.mp4")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_av1-worker"))
        .current_dir(dir)
        .env("SVT_LOG", "1")
        .args(["transcode", "long.mp4", "-o", "out.mkv", "--preset", "8"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let partial = || {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(av1core::transcode::TEMP_SUFFIX))
    };
    let start = Instant::now();
    while !partial() {
        assert!(start.elapsed() < Duration::from_secs(60), "the encode never started writing");
        assert!(child.try_wait().unwrap().is_none(), "the worker ended before the signal");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500)); // well inside the encode
    let signalled = Instant::now();
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if signalled.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(1), "Ctrl-C took {took:?}");
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(!dir.join("out.mkv").exists(), "an output after Ctrl-C");
    assert!(!partial(), "the partial output was left");
    assert_eq!(std::fs::read(dir.join("long.mp4")).unwrap(), source, "the source was touched");
}

/// Settings that name a choice are checked at start: an unknown value is an error that
/// says what is allowed, not a silent default.
#[test]
fn unknown_settings_are_refused_at_start() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_str().unwrap();
    for (var, value, says) in [
        ("FILE_ORDER", "biggest", "oldest, newest, largest or smallest"),
        ("MIN_SAVINGS_PERCENT", "150", "from 0 to below 100"),
        ("MIN_SAVINGS_PERCENT", "lots", "from 0 to below 100"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_av1-worker"))
            .env(var, value)
            .args(["transcode", "--dry-run", dir])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(says) && stderr.contains(value), "{var}={value}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_av1-worker"))
        .env("FILE_DISTRIBUTION_MODE", "sometimes")
        .arg("http://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sometimes") && stderr.contains("auto, true, false"), "{stderr}");
}
