//! Benchmark: our transcode (`av1-worker transcode`) against the `ffmpeg` command line
//! with the same SVT-AV1 library and settings, on the same generated clips, runs
//! alternating. Prints wall time, fps, output size and PSNR against the source, and
//! the ratios. Not a test: timing belongs here.
//!
//! `make bench SVT=system` (our binary linked to the same SVT-AV1 1.4.1 as Debian's ffmpeg), or
//! `cargo run --release -p av1-worker --example bench -- [--runs N] [--preset P] [--crf C] [--quick]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};

mod common;
use common::{cores, cpu_model, ffmpeg, psnr, tool_version};

struct Clip {
    name: &'static str,
    /// lavfi source for the video.
    video: &'static str,
    /// x264 CRF of the source (a high-quality source, as films are).
    source_crf: &'static str,
}

const CLIPS: [Clip; 2] = [
    Clip {
        name: "720p-noise",
        video: "testsrc2=s=1280x720:r=24:d=10,noise=alls=12:allf=t",
        source_crf: "16",
    },
    Clip {
        name: "1080p-light",
        video: "testsrc2=s=1920x1080:r=24:d=10,noise=alls=4:allf=t",
        source_crf: "18",
    },
];

struct Run {
    seconds: f64,
    /// Of which verification (ours only; the command line does not verify).
    verify: f64,
    size: u64,
    psnr: f64,
}

fn main() -> anyhow::Result<()> {
    let mut runs = 3usize;
    let mut preset = 8i32;
    let mut crf = 30i32;
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--preset" => preset = args.next().context("--preset P")?.parse()?,
            "--crf" => crf = args.next().context("--crf C")?.parse()?,
            "--quick" => quick = true,
            other => bail!("unknown argument {other}"),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // `make bench SVT=system` builds into target/svt-system: the same library as the CLI.
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let ours = root.join(target).join("release/av1-worker");
    if !ours.exists() {
        bail!("build first: cargo build --release (make bench does)");
    }
    let dir = root.join("out/bench");
    std::fs::create_dir_all(&dir)?;

    println!("machine: {} cores, {}", cores(), cpu_model());
    println!(
        "versions: {}; {}",
        tool_version(&ours, "--version")?,
        tool_version(Path::new("ffmpeg"), "-version")?
    );
    println!("settings: preset {preset}, crf {crf}, keyframe every 10 s, Opus 96 kbit/s stereo, {runs} runs each, alternating\n");

    for clip in CLIPS.iter().take(if quick { 1 } else { 2 }) {
        let src = dir.join(format!("{}.mp4", clip.name));
        if !src.exists() {
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                clip.video,
                "-f",
                "lavfi",
                "-i",
                "sine=f=440:d=10",
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
                clip.source_crf,
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "192k",
                src.to_str().unwrap(),
            ])?;
        }
        let frames = 240.0;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..runs {
            let out = dir.join(format!("{}-ours-{i}.mkv", clip.name));
            let _ = std::fs::remove_file(&out);
            let t = Instant::now();
            let status = Command::new(&ours)
                .env("SVT_LOG", "1")
                .args(["transcode", src.to_str().unwrap(), "-o", out.to_str().unwrap()])
                .args([
                    "--preset",
                    &preset.to_string(),
                    "--crf",
                    &crf.to_string(),
                    "--keyint",
                    "10",
                    "--json",
                ])
                .output()?;
            let seconds = t.elapsed().as_secs_f64();
            if !status.status.success() {
                bail!("our transcode failed: {}", String::from_utf8_lossy(&status.stderr));
            }
            let report: serde_json::Value =
                serde_json::from_slice(&status.stdout).context("our --json report")?;
            let d = &report["verify_elapsed"];
            let verify = d["secs"].as_f64().unwrap_or(0.0) + d["nanos"].as_f64().unwrap_or(0.0) / 1e9;
            a.push(Run { seconds, verify, size: std::fs::metadata(&out)?.len(), psnr: psnr(&out, &src)? });

            let out = dir.join(format!("{}-ffmpeg-{i}.mkv", clip.name));
            let t = Instant::now();
            // The same library, preset, CRF, keyframe interval and audio. FFmpeg 5.1's
            // wrapper forces 4 hierarchical levels where SVT-AV1's own default (which
            // we keep) is 5 at this preset: pass the library default explicitly.
            ffmpeg(&[
                "-i",
                src.to_str().unwrap(),
                "-c:v",
                "libsvtav1",
                "-preset",
                &preset.to_string(),
                "-crf",
                &crf.to_string(),
                "-g",
                "240",
                "-svtav1-params",
                "hierarchical-levels=5",
                "-c:a",
                "libopus",
                "-b:a",
                "96k",
                out.to_str().unwrap(),
            ])?;
            let seconds = t.elapsed().as_secs_f64();
            b.push(Run {
                seconds,
                verify: 0.0,
                size: std::fs::metadata(&out)?.len(),
                psnr: psnr(&out, &src)?,
            });
        }
        report(clip.name, frames, &a, &b);
    }
    Ok(())
}

fn report(name: &str, frames: f64, ours: &[Run], cli: &[Run]) {
    let med = |v: &[Run], f: fn(&Run) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|a, b| a.total_cmp(b));
        x[x.len() / 2]
    };
    let (ta, tb) = (med(ours, |r| r.seconds), med(cli, |r| r.seconds));
    let te = med(ours, |r| r.seconds - r.verify);
    let (sa, sb) = (med(ours, |r| r.size as f64), med(cli, |r| r.size as f64));
    let (pa, pb) = (med(ours, |r| r.psnr), med(cli, |r| r.psnr));
    println!("## {name} ({frames} frames), medians of {} runs", ours.len());
    println!("| | wall s | fps | size bytes | PSNR dB |");
    println!("|---|---|---|---|---|");
    println!("| ours (incl. verification) | {ta:.2} | {:.2} | {sa:.0} | {pa:.3} |", frames / ta);
    println!("| ours, without the verification pass | {te:.2} | {:.2} | | |", frames / te);
    println!("| ffmpeg CLI | {tb:.2} | {:.2} | {sb:.0} | {pb:.3} |", frames / tb);
    println!(
        "| ratio ours/CLI | {:.3}x | | {:.3}x ({:+.1}%) | {:+.3} dB |",
        ta / tb,
        sa / sb,
        100.0 * (sa / sb - 1.0),
        pa - pb
    );
    println!("| ratio ours without verification/CLI | {:.3}x | | | |", te / tb);
    println!("runs (s): ours {:?}, CLI {:?}\n", secs(ours), secs(cli));
}

fn secs(v: &[Run]) -> Vec<String> {
    v.iter().map(|r| format!("{:.2}", r.seconds)).collect()
}
