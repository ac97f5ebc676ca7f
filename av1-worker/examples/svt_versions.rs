//! Benchmark of encoder versions: our transcode linked to SVT-AV1 2.3.0 and to Debian's
//! 1.4.1, and the `ffmpeg` command line (1.4.1), on the same generated clip, at two
//! presets and three CRF values each — wall time, fps, size and PSNR against the source,
//! and BD-rate / time at equal PSNR, so speed-ups are stated at equal quality.
//!
//! `make bench-svt` builds both binaries and runs it; by hand:
//! `cargo run --release -p av1-worker --example svt_versions -- NEW_BIN OLD_BIN [--presets 8,10] [--crfs 24,30,36]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};

mod common;
use common::{cores, cpu_model, ffmpeg, psnr, tool_version};

/// One encode: bytes, PSNR, seconds.
#[derive(Clone, Copy, Debug)]
struct Point {
    size: f64,
    psnr: f64,
    seconds: f64,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let new_bin = PathBuf::from(args.next().context("NEW_BIN (ours linked to the newer SVT-AV1)")?);
    let old_bin = PathBuf::from(args.next().context("OLD_BIN (ours linked to the system SVT-AV1)")?);
    let mut presets = vec![8, 10];
    let mut crfs = vec![24, 30, 36];
    let mut clip = "noise".to_owned();
    while let Some(a) = args.next() {
        let list = |v: Option<String>| -> anyhow::Result<Vec<i32>> {
            v.context("a comma-separated list")?.split(',').map(|x| Ok(x.trim().parse()?)).collect()
        };
        match a.as_str() {
            "--presets" => presets = list(args.next())?,
            "--crfs" => crfs = list(args.next())?,
            "--clip" => clip = args.next().context("--clip noise|light")?,
            other => bail!("unknown argument {other}"),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("out/bench-svt");
    std::fs::create_dir_all(&dir)?;
    // `noise`: heavy grain, a hard case; `light`: mild grain, closer to a clean film.
    let (filter, source_crf) = match clip.as_str() {
        "noise" => ("testsrc2=s=1280x720:r=24:d=10,noise=alls=12:allf=t", "16"),
        "light" => ("testsrc2=s=1280x720:r=24:d=10,noise=alls=4:allf=t", "18"),
        other => bail!("--clip noise|light, not {other}"),
    };
    let src = dir.join(format!("720p-{clip}.mp4"));
    if !src.exists() {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            filter,
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
            source_crf,
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
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!("ours (new): {}", tool_version(&new_bin, "--version")?);
    println!("ours (old): {}", tool_version(&old_bin, "--version")?);
    println!(
        "ffmpeg:     {} with libsvtav1 1.4.1 (Debian 12)",
        tool_version(Path::new("ffmpeg"), "-version")?
    );
    println!("clip: 1280x720, 24 fps, 240 frames, {clip} ({filter}); Opus 96 kbit/s; one run per point, encoders alternating\n");

    let mut measured = Vec::new();
    for &preset in &presets {
        let (mut new, mut old, mut cli) = (Vec::new(), Vec::new(), Vec::new());
        for &crf in &crfs {
            new.push(ours(&new_bin, &src, &dir, "new", preset, crf)?);
            old.push(ours(&old_bin, &src, &dir, "old", preset, crf)?);
            cli.push(ffmpeg_cli(&src, &dir, preset, crf)?);
        }
        println!("## preset {preset}");
        println!("| encoder | CRF | wall s | fps | size bytes | PSNR dB |");
        println!("|---|---|---|---|---|---|");
        for (name, pts) in
            [("ours, SVT-AV1 2.3.0", &new), ("ours, SVT-AV1 1.4.1", &old), ("ffmpeg CLI, 1.4.1", &cli)]
        {
            for (p, crf) in pts.iter().zip(&crfs) {
                println!(
                    "| {name} | {crf} | {:.2} | {:.1} | {:.0} | {:.3} |",
                    p.seconds,
                    frames / p.seconds,
                    p.size,
                    p.psnr
                );
            }
        }
        println!();
        for (name, pts) in [("ours 2.3.0", &new), ("ours 1.4.1", &old)] {
            match (bd(&cli, pts, |p| p.size), bd(&cli, pts, |p| p.seconds)) {
                (Some(rate), Some(time)) => println!(
                    "- {name} vs ffmpeg CLI 1.4.1 at equal PSNR: BD-rate {:+.1}%, time {:.2}x ({:.2}x faster)",
                    100.0 * (rate - 1.0),
                    time,
                    1.0 / time
                ),
                _ => println!("- {name}: the PSNR ranges do not overlap; no equal-quality comparison"),
            }
        }
        println!();
        measured.push((preset, new, old));
    }
    // Which 2.3 preset matches 1.4's default (8)? Each 2.3 preset against 1.4 at 8.
    if let Some((_, _, old8)) = measured.iter().find(|(p, _, _)| *p == 8) {
        println!("## SVT-AV1 2.3.0 presets against 1.4.1 preset 8 (our default), both in our transcode");
        for (preset, new, _) in &measured {
            if let (Some(rate), Some(time)) = (bd(old8, new, |p| p.size), bd(old8, new, |p| p.seconds)) {
                println!(
                    "- 2.3.0 preset {preset}: BD-rate {:+.1}%, time at equal PSNR {:.2}x ({:.2}x faster)",
                    100.0 * (rate - 1.0),
                    time,
                    1.0 / time
                );
            }
        }
    }
    Ok(())
}

/// Average ratio of `f` between `test` and `reference` at equal PSNR: log-domain,
/// piecewise-linear in PSNR over the overlapping range (BD-rate with linear instead of
/// cubic interpolation, as three points do not support a cubic).
fn bd(reference: &[Point], test: &[Point], f: fn(&Point) -> f64) -> Option<f64> {
    let curve = |pts: &[Point]| {
        let mut c: Vec<(f64, f64)> = pts.iter().map(|p| (p.psnr, f(p).ln())).collect();
        c.sort_by(|a, b| a.0.total_cmp(&b.0));
        c
    };
    let (a, b) = (curve(reference), curve(test));
    let lo = a.first()?.0.max(b.first()?.0);
    let hi = a.last()?.0.min(b.last()?.0);
    if hi <= lo {
        return None;
    }
    let at = |c: &[(f64, f64)], x: f64| {
        let i = c.windows(2).position(|w| x >= w[0].0 && x <= w[1].0).unwrap_or(0);
        let (p, q) = (c[i], c[(i + 1).min(c.len() - 1)]);
        if (q.0 - p.0).abs() < 1e-12 {
            p.1
        } else {
            p.1 + (q.1 - p.1) * (x - p.0) / (q.0 - p.0)
        }
    };
    let steps = 200;
    let mut sum = 0.0;
    for k in 0..=steps {
        let x = lo + (hi - lo) * k as f64 / steps as f64;
        sum += at(&b, x) - at(&a, x);
    }
    Some((sum / (steps + 1) as f64).exp())
}

fn ours(bin: &Path, src: &Path, dir: &Path, tag: &str, preset: i32, crf: i32) -> anyhow::Result<Point> {
    let out = dir.join(format!("ours-{tag}-p{preset}-crf{crf}.mkv"));
    let _ = std::fs::remove_file(&out);
    let t = Instant::now();
    let o = Command::new(bin)
        .env("SVT_LOG", "1")
        .args(["transcode", src.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(["--preset", &preset.to_string(), "--crf", &crf.to_string(), "--keyint", "10"])
        .output()?;
    let seconds = t.elapsed().as_secs_f64();
    if !o.status.success() {
        bail!("{} failed: {}", bin.display(), String::from_utf8_lossy(&o.stderr));
    }
    Ok(Point { size: std::fs::metadata(&out)?.len() as f64, psnr: psnr(&out, src)?, seconds })
}

fn ffmpeg_cli(src: &Path, dir: &Path, preset: i32, crf: i32) -> anyhow::Result<Point> {
    let out = dir.join(format!("ffmpeg-p{preset}-crf{crf}.mkv"));
    let t = Instant::now();
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
    Ok(Point { size: std::fs::metadata(&out)?.len() as f64, psnr: psnr(&out, src)?, seconds })
}
