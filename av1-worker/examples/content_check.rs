//! Benchmark: what the content check costs the master. On a generated 1080p clip
//! (x264, a film-like source with light grain), one encode at the product's default
//! settings, then the master's verification of that result with and without the
//! content check (`verify_from` against `verify`), runs alternating; medians. Prints
//! the check's extra time against the encode's time. Not a test: timing belongs here.
//!
//! `make bench-content`, or
//! `cargo run --release -p av1-worker --example content_check -- [--runs N] [--seconds S]`

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context as _;

mod common;
use common::{cores, cpu_model, ffmpeg};

fn main() -> anyhow::Result<()> {
    let (mut runs, mut seconds) = (5usize, 30u32);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().context("a value after each flag")?;
        match a.as_str() {
            "--runs" => runs = value.parse()?,
            "--seconds" => seconds = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("film-1080p.mp4");
    let video = format!("testsrc2=s=1920x1080:r=24:d={seconds},noise=alls=4:allf=t");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video,
        "-c:v",
        "libx264",
        "-crf",
        "18",
        "-preset",
        "veryfast",
        source_str(&source)?,
    ])?;
    let settings = av1core::Settings::default();
    let info = av1core::probe(&source)?;
    let plan = match av1core::plan(&info, &settings)? {
        av1core::Decision::Encode(p) => *p,
        av1core::Decision::Skip { reason, detail } => anyhow::bail!("skipped: {reason:?} {detail}"),
    };
    let out = dir.path().join("film-1080p.mkv");
    let started = Instant::now();
    let report = av1core::transcode(&source, &out, &plan, &AtomicBool::new(false), |_| {})?;
    let encode = started.elapsed().as_secs_f64();

    let (mut plain, mut with_content) = (Vec::new(), Vec::new());
    let mut lowest = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        av1core::verify::verify(&out, &plan, Some(report.frames))?;
        plain.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let v = av1core::verify::verify_from(&source, &out, &plan, Some(report.frames))?;
        with_content.push(t.elapsed().as_secs_f64());
        lowest = lowest.min(v.content_psnr.unwrap_or(f64::NAN));
    }
    let (p, c) = (median(&mut plain), median(&mut with_content));
    println!("machine: {} ({} cores), {}", cpu_model(), cores(), report.encoder);
    println!(
        "1080p, {seconds} s, {} frames, preset {} CRF {}: encode {encode:.1} s ({:.1} fps)",
        report.frames, plan.video.preset, plan.video.crf, report.fps
    );
    println!("verification, medians of {runs} alternating runs:");
    println!("  without the content check (verify)      {p:.2} s");
    println!("  with it (verify_from)                   {c:.2} s");
    println!(
        "  the content check                       {:.2} s = {:.2}% of the encode's time (lowest PSNR {lowest:.1} dB)",
        c - p,
        100.0 * (c - p) / encode
    );
    Ok(())
}

fn source_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("a UTF-8 temp path")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
