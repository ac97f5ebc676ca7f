//! Fixtures made with the `ffmpeg` program, and results checked by `ffmpeg` and
//! `ffprobe` (not by our code).

use std::path::Path;
use std::process::Command;

/// Runs `ffmpeg -v error -y -nostdin ARGS` in `dir`; its stderr on failure.
pub fn try_ffmpeg(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .current_dir(dir)
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .output()
        .map_err(|e| format!("running ffmpeg: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// [`try_ffmpeg`], failing the test when the fixture cannot be made.
pub fn ffmpeg(dir: &Path, args: &[&str]) {
    if let Err(e) = try_ffmpeg(dir, args) {
        panic!("{e}");
    }
}

/// A 160×120 H.264 + AAC clip with grain (worth encoding), `seconds` long.
pub fn clip(dir: &Path, name: &str, seconds: u32) {
    clip_sized(dir, name, seconds, 160, 120);
}

/// [`clip`] at another size.
pub fn clip_sized(dir: &Path, name: &str, seconds: u32, width: u32, height: u32) {
    let d = seconds.to_string();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=s={width}x{height}:r=24:d={d},noise=alls=12:allf=t"),
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

/// ffprobe's answer for `path` with `ARGS`, trimmed (csv without keys).
pub fn probe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("running ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// ffprobe's whole description of `path` (format, streams, chapters) as JSON.
pub fn ffprobe_json(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-show_chapters"])
        .arg(path)
        .output()
        .expect("running ffprobe");
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe's JSON")
}

/// The container's duration in seconds.
pub fn duration(path: &Path) -> Option<f64> {
    probe(path, &["-show_entries", "format=duration"]).parse().ok()
}

/// Checked with the ffmpeg tools, not with our code: one AV1 video stream, every frame
/// decodes without a message, and (when given) the duration matches the source's.
pub fn check_av1(path: &Path, source_duration: Option<f64>) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("running ffmpeg");
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!("{}: {}", path.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let codec = probe(path, &["-select_streams", "v", "-show_entries", "stream=codec_name"]);
    if codec != "av1" {
        return Err(format!("{}: video streams {codec:?}, expected one av1", path.display()));
    }
    if let Some(want) = source_duration {
        let got = duration(path).ok_or_else(|| format!("{}: no duration", path.display()))?;
        if (got - want).abs() > (want * 0.01).max(0.5) {
            return Err(format!("{}: lasts {got:.2} s, the source {want:.2} s", path.display()));
        }
    }
    Ok(())
}

/// [`check_av1`] without a duration, failing the test.
pub fn assert_av1(path: &Path) {
    if let Err(e) = check_av1(path, None) {
        panic!("{e}");
    }
}
