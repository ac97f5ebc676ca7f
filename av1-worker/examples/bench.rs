//! Benchmark: our transcode (`av1-worker transcode`) against the `ffmpeg` command line
//! on the **same SVT-AV1 library** (Debian's 1.4.1 on both sides: `make bench` builds
//! ours with `SVT=system`), with the settings ffmpeg is given read back from what our
//! encode told the library (preset, CRF, keyframe distance, mini-GOP, Opus bit rate),
//! and both encoders' own `SVT [config]` log compared on every run: a comparison of two
//! libraries or of different settings is refused, not printed. Runs alternate (ours
//! first, then the command line first), medians of each. Prints wall time, fps, the
//! bytes of video, audio and container apart, PSNR and SSIM against the source, and
//! the ratios. Not a test: timing belongs here.
//!
//! `make bench`, or `cargo run --release -p av1-worker --example bench -- OURS_BIN
//! [--runs N] [--preset P] [--crf C] [--real DIR] [--quick]`

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

mod common;
use common::{
    cores, cpu_model, ffmpeg_svt_version, frames, median, ours_svt_version, quality, real_clips, run_ours,
    synthetic_clip, tool_version, CliSettings, Clip, Encode, Quality,
};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let ours = PathBuf::from(args.next().context("OURS_BIN (av1-worker built with SVT=system)")?);
    let (mut runs, mut preset, mut crf, mut quick, mut real) = (3usize, 8i32, 30i32, false, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--preset" => preset = args.next().context("--preset P")?.parse()?,
            "--crf" => crf = args.next().context("--crf C")?.parse()?,
            "--real" => real = Some(PathBuf::from(args.next().context("--real DIR")?)),
            "--quick" => quick = true,
            other => bail!("unknown argument {other}"),
        }
    }
    let (lib_ours, lib_cli) = (ours_svt_version(&ours)?, ffmpeg_svt_version()?);
    if lib_ours != lib_cli {
        bail!(
            "refusing to compare: ours links SVT-AV1 {lib_ours}, ffmpeg {lib_cli}. This benchmark compares \
             the same library: build ours with `make build SVT=system` (make bench does); `make bench-svt` \
             compares libraries at equal quality"
        );
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../out/bench");
    std::fs::create_dir_all(&dir)?;
    let mut clips = vec![synthetic_clip(&dir, "noise", "1280x720", 10)?];
    if !quick {
        clips.push(synthetic_clip(&dir, "light", "1920x1080", 10)?);
        if let Some(real) = &real {
            clips.extend(real_clips(real)?);
        }
    }

    println!("machine: {} cores, {}", cores(), cpu_model());
    println!("ours: {}", tool_version(&ours, "--version")?);
    println!("ffmpeg: {} with libsvtav1 {lib_cli}", tool_version(Path::new("ffmpeg"), "-version")?);
    println!("same library on both sides: SVT-AV1 {lib_ours} (checked at run time, and each run's settings compared)");
    println!(
        "settings: product preset {preset}, crf {crf}, keyframe every 10 s; {runs} runs each, alternating\n"
    );
    for clip in &clips {
        compare(&ours, clip, &dir, preset, crf, runs)?;
    }
    Ok(())
}

/// `runs` alternating pairs on one clip, each checked for the same settings.
fn compare(ours: &Path, clip: &Clip, dir: &Path, preset: i32, crf: i32, runs: usize) -> anyhow::Result<()> {
    let (out_a, out_b) =
        (dir.join(format!("{}-ours.mkv", clip.name)), dir.join(format!("{}-ffmpeg.mkv", clip.name)));
    let first = run_ours(ours, &clip.path, &out_a, preset, crf)?;
    let cli = CliSettings::matching(&first, &clip.path)?;
    let (mut a, mut b) = (vec![first], Vec::new());
    for i in 0..runs {
        if i % 2 == 1 {
            b.push(cli.run(&clip.path, &out_b)?);
        }
        if i > 0 {
            a.push(run_ours(ours, &clip.path, &out_a, preset, crf)?);
        }
        if i % 2 == 0 {
            b.push(cli.run(&clip.path, &out_b)?);
        }
    }
    for (name, runs) in [("ours", &a), ("the command line", &b)] {
        let bytes: Vec<u64> = runs.iter().map(|e| e.bytes.video).collect();
        if bytes.iter().any(|v| *v != bytes[0]) {
            bail!(
                "{}: {name} made different video bytes in its runs ({bytes:?}): not deterministic",
                clip.name
            );
        }
    }
    for e in &b {
        let d = a[0].config.differences(&e.config);
        if !d.is_empty() {
            bail!(
                "{}: the command line did not get our settings ({}): refusing to compare",
                clip.name,
                d.join("; ")
            );
        }
    }
    let (qa, qb) = (quality(&out_a, &clip.path)?, quality(&out_b, &clip.path)?);
    report(clip, frames(&clip.path)?, &cli, (&a, qa), (&b, qb));
    Ok(())
}

fn report(
    clip: &Clip,
    frames: f64,
    cli: &CliSettings,
    (ours, qa): (&[Encode], Quality),
    (them, qb): (&[Encode], Quality),
) {
    let med = |v: &[Encode], f: fn(&Encode) -> f64| median(v.iter().map(f).collect());
    let (ta, tb) = (med(ours, |e| e.seconds), med(them, |e| e.seconds));
    let te = med(ours, |e| e.seconds - e.verify_seconds);
    let (ba, bb) = (ours[0].bytes, them[0].bytes);
    let c = &ours[0].config;
    println!("## {} ({frames} frames; {})", clip.name, clip.about);
    println!(
        "library settings (both, from SVT-AV1's log): preset {}, crf {}, gop {}, mini-gop {}; ffmpeg given: {}",
        c.get("preset").unwrap_or("?"),
        c.get("rate factor").unwrap_or("?"),
        c.get("gop size").unwrap_or("?"),
        c.get("mini-gop size").unwrap_or("?"),
        cli.describe()
    );
    println!("medians of {} runs each\n", ours.len());
    println!(
        "| | wall s | fps | total bytes | video bytes | audio bytes | container bytes | PSNR dB | SSIM |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let row = |name: &str, t: f64, b: common::Bytes, q: Quality| {
        println!(
            "| {name} | {t:.2} | {:.1} | {} | {} | {} | {} | {:.3} | {:.5} |",
            frames / t,
            b.total,
            b.video,
            b.audio,
            b.container(),
            q.psnr,
            q.ssim
        )
    };
    row("ours (incl. the decode check and the verification pass)", ta, ba, qa);
    println!(
        "| ours without the final verification pass (decode check still in) | {te:.2} | {:.1} | | | | | | |",
        frames / te
    );
    row("ffmpeg CLI (no check)", tb, bb, qb);
    let pct = |x: u64, y: u64| if y == 0 { "–".to_owned() } else { format!("{:.3}x", x as f64 / y as f64) };
    println!(
        "| ratio ours/CLI | {:.3}x | | {} | {} | {} | {:+} B | {:+.3} dB | {:+.5} |",
        ta / tb,
        pct(ba.total, bb.total),
        pct(ba.video, bb.video),
        pct(ba.audio, bb.audio),
        ba.container() as i64 - bb.container() as i64,
        qa.psnr - qb.psnr,
        qa.ssim - qb.ssim
    );
    println!("| ratio ours without the verification pass/CLI | {:.3}x | | | | | | | |", te / tb);
    let secs = |v: &[Encode]| v.iter().map(|e| format!("{:.2}", e.seconds)).collect::<Vec<_>>().join(", ");
    println!("\nruns (s): ours {}; CLI {}\n", secs(ours), secs(them));
}
