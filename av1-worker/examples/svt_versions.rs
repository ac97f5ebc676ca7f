//! Benchmark of encoder versions at equal quality: our transcode linked to the newer
//! SVT-AV1 (the default build) and to Debian's 1.4.1, and the `ffmpeg` command line
//! (Debian's, 1.4.1, set to what our 1.4.1 encode told the library), on synthetic
//! clips and on real footage, at presets × CRFs, each point run `--runs` times in
//! rotating order (medians of time; the bytes must be the same every run). Reports
//! video bytes, PSNR and SSIM against the source, and BD-rate (video bytes at equal
//! PSNR, and at equal SSIM) and time at equal PSNR. Versions are read at run time
//! from the binaries and from the library's own log, and label every row.
//!
//! `make bench-svt` builds both binaries, fetches the real clips and runs it; by hand:
//! `cargo run --release -p av1-worker --example svt_versions -- NEW_BIN OLD_BIN
//! [--real DIR] [--presets 8,9,10] [--crfs 24,30,36] [--runs 3] [--clips noise,light,bigbuckbunny,bikes]`

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

mod common;
use common::{
    cores, cpu_model, ffmpeg_svt_version, frames, median, ours_svt_version, quality, real_clips, run_ours,
    synthetic_clip, tool_version, CliSettings, Clip, Encode, Quality,
};

/// One point of a rate–quality curve: an encoder at one preset and CRF.
#[derive(Clone, Copy, Debug)]
struct Point {
    video_bytes: f64,
    q: Quality,
    /// Median wall time of the runs.
    seconds: f64,
}

struct Options {
    presets: Vec<i32>,
    crfs: Vec<i32>,
    runs: usize,
}

/// The three encoders, labelled with the versions found at run time.
struct Encoders {
    new: (PathBuf, String),
    old: (PathBuf, String),
    cli: String,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let new_bin = PathBuf::from(args.next().context("NEW_BIN (ours linked to the newer SVT-AV1)")?);
    let old_bin = PathBuf::from(args.next().context("OLD_BIN (ours linked to the system SVT-AV1)")?);
    let mut o = Options { presets: vec![8, 9, 10], crfs: vec![24, 30, 36], runs: 3 };
    let (mut real, mut names) = (None, "noise,light,bigbuckbunny,bikes".to_owned());
    while let Some(a) = args.next() {
        let list = |v: Option<String>| -> anyhow::Result<Vec<i32>> {
            v.context("a comma-separated list")?.split(',').map(|x| Ok(x.trim().parse()?)).collect()
        };
        match a.as_str() {
            "--presets" => o.presets = list(args.next())?,
            "--crfs" => o.crfs = list(args.next())?,
            "--runs" => o.runs = args.next().context("--runs N")?.parse()?,
            "--real" => real = Some(PathBuf::from(args.next().context("--real DIR")?)),
            "--clips" => names = args.next().context("--clips a,b")?,
            other => bail!("unknown argument {other}"),
        }
    }
    let e = Encoders {
        new: (new_bin.clone(), ours_svt_version(&new_bin)?),
        old: (old_bin.clone(), ours_svt_version(&old_bin)?),
        cli: ffmpeg_svt_version()?,
    };
    if e.old.1 != e.cli || e.new.1 == e.old.1 {
        bail!(
            "refusing: this compares a newer SVT-AV1 with the command line's ({}) through ours on that same \
             library; got new {}, old {}",
            e.cli,
            e.new.1,
            e.old.1
        );
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../out/bench-svt");
    std::fs::create_dir_all(&dir)?;
    let mut clips = Vec::new();
    for name in names.split(',') {
        match name {
            "noise" | "light" => clips.push(synthetic_clip(&dir, name, "1280x720", 5)?),
            real_name => {
                let all = real_clips(real.as_deref().context("--real DIR for the real clips")?)?;
                clips.extend(all.into_iter().filter(|c| c.name == real_name));
            }
        }
    }
    println!("machine: {} cores, {}", cores(), cpu_model());
    println!("ours (new): {}", tool_version(&e.new.0, "--version")?);
    println!("ours (old): {}", tool_version(&e.old.0, "--version")?);
    println!("ffmpeg:     {} with libsvtav1 {}", tool_version(Path::new("ffmpeg"), "-version")?, e.cli);
    println!(
        "product presets {:?} (ours on {} passes P-1 to the library), CRFs {:?}, keyframe every 10 s; {} runs \
         per point in rotating order, medians of time; BD-rate on video bytes\n",
        o.presets, e.new.1, o.crfs, o.runs
    );
    let mut summary = Vec::new();
    for clip in &clips {
        summary.extend(one_clip(&e, clip, &dir, &o)?);
    }
    println!(
        "## Summary: BD-rate (video bytes at equal quality; negative = smaller) and time at equal PSNR\n"
    );
    println!("| clip | comparison | BD-rate PSNR | BD-rate SSIM | time at equal PSNR |");
    println!("|---|---|---|---|---|");
    for s in summary {
        println!("{s}");
    }
    Ok(())
}

/// Every preset of one clip: the tables, and the summary rows.
fn one_clip(e: &Encoders, clip: &Clip, dir: &Path, o: &Options) -> anyhow::Result<Vec<String>> {
    let frames = frames(&clip.path)?;
    println!("# {} ({frames} frames; {})\n", clip.name, clip.about);
    let (mut rows, mut measured) = (Vec::new(), Vec::new());
    for &preset in &o.presets {
        let (mut new, mut old, mut cli) = (Vec::new(), Vec::new(), Vec::new());
        for &crf in &o.crfs {
            let [a, b, c] = point(e, clip, dir, preset, crf, o.runs)?;
            new.push(a);
            old.push(b);
            cli.push(c);
        }
        println!("## {} at preset {preset}\n", clip.name);
        println!("| encoder | CRF | wall s | fps | video bytes | PSNR dB | SSIM |");
        println!("|---|---|---|---|---|---|---|");
        let labels = [
            format!("ours, SVT-AV1 {}", e.new.1),
            format!("ours, SVT-AV1 {}", e.old.1),
            format!("ffmpeg CLI, {}", e.cli),
        ];
        for (name, pts) in labels.iter().zip([&new, &old, &cli]) {
            for (p, crf) in pts.iter().zip(&o.crfs) {
                println!(
                    "| {name} | {crf} | {:.2} | {:.1} | {:.0} | {:.3} | {:.5} |",
                    p.seconds,
                    frames / p.seconds,
                    p.video_bytes,
                    p.q.psnr,
                    p.q.ssim
                );
            }
        }
        println!();
        for (name, pts) in [(&labels[0], &new), (&labels[1], &old)] {
            let v = compare(&cli, pts);
            println!("- {name} vs the ffmpeg CLI at preset {preset}: {v}");
            rows.push(format!(
                "| {} | {name} vs ffmpeg CLI {}, preset {preset} | {} | {} | {} |",
                clip.name, e.cli, v.psnr, v.ssim, v.time
            ));
        }
        println!();
        measured.push((preset, new, old));
    }
    if let Some((_, _, old8)) = measured.iter().find(|(p, _, _)| *p == 8) {
        println!("## {}: each preset on {} against {} at preset 8, both ours\n", clip.name, e.new.1, e.old.1);
        for (preset, new, _) in &measured {
            println!("- {} preset {preset}: {}", e.new.1, compare(old8, new));
        }
        println!();
    }
    Ok(rows)
}

/// BD-rate on PSNR and on SSIM, and time at equal PSNR, of `test` against `reference`.
struct Versus {
    psnr: String,
    ssim: String,
    time: String,
}

impl std::fmt::Display for Versus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BD-rate PSNR {}, SSIM {}, time {}", self.psnr, self.ssim, self.time)
    }
}

fn compare(reference: &[Point], test: &[Point]) -> Versus {
    let psnr = |p: &Point| p.q.psnr;
    let ssim = |p: &Point| p.q.ssim_db();
    let pct = |r: Option<f64>| r.map_or("no overlap".to_owned(), |r| format!("{:+.1}%", 100.0 * (r - 1.0)));
    Versus {
        psnr: pct(bd(reference, test, psnr, |p| p.video_bytes)),
        ssim: pct(bd(reference, test, ssim, |p| p.video_bytes)),
        time: bd(reference, test, psnr, |p| p.seconds)
            .map_or("no overlap".to_owned(), |t| format!("{t:.2}x")),
    }
}

/// One preset and CRF for the three encoders, `runs` times in rotating order.
fn point(
    e: &Encoders,
    clip: &Clip,
    dir: &Path,
    preset: i32,
    crf: i32,
    runs: usize,
) -> anyhow::Result<[Point; 3]> {
    let out = |tag: &str| dir.join(format!("{}-{tag}-p{preset}-crf{crf}.mkv", clip.name));
    let (out_new, out_old, out_cli) = (out("new"), out("old"), out("ffmpeg"));
    let mut done: [Vec<Encode>; 3] = Default::default();
    done[1].push(run_ours(&e.old.0, &clip.path, &out_old, preset, crf)?);
    let cli = CliSettings::matching(&done[1][0], &clip.path)?;
    for r in 0..runs {
        for k in 0..3 {
            let which = (k + r) % 3;
            if r == 0 && which == 1 {
                continue; // ran first, to set the command line to its settings
            }
            done[which].push(match which {
                0 => run_ours(&e.new.0, &clip.path, &out_new, preset, crf)?,
                1 => run_ours(&e.old.0, &clip.path, &out_old, preset, crf)?,
                _ => cli.run(&clip.path, &out_cli)?,
            });
        }
    }
    for c in &done[2] {
        let d = done[1][0].config.differences(&c.config);
        if !d.is_empty() {
            bail!(
                "{} p{preset} crf{crf}: the command line did not get our settings: {}",
                clip.name,
                d.join("; ")
            );
        }
    }
    let mut points = Vec::new();
    for (runs, path) in done.iter().zip([&out_new, &out_old, &out_cli]) {
        let bytes: Vec<u64> = runs.iter().map(|e| e.bytes.video).collect();
        if bytes.iter().any(|b| *b != bytes[0]) {
            bail!(
                "{}: video bytes differ between runs of one encoder ({bytes:?}): not deterministic",
                path.display()
            );
        }
        points.push(Point {
            video_bytes: bytes[0] as f64,
            q: quality(path, &clip.path)?,
            seconds: median(runs.iter().map(|e| e.seconds).collect()),
        });
    }
    Ok([points[0], points[1], points[2]])
}

/// Average ratio of `f` between `test` and `reference` at equal quality `q`: log-domain,
/// piecewise-linear in quality over the overlapping range (BD-rate with linear instead
/// of cubic interpolation, as three points do not support a cubic).
fn bd(reference: &[Point], test: &[Point], q: fn(&Point) -> f64, f: fn(&Point) -> f64) -> Option<f64> {
    let curve = |pts: &[Point]| {
        let mut c: Vec<(f64, f64)> = pts.iter().map(|p| (q(p), f(p).ln())).collect();
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
    let sum: f64 =
        (0..=steps).map(|k| lo + (hi - lo) * k as f64 / steps as f64).map(|x| at(&b, x) - at(&a, x)).sum();
    Some((sum / (steps + 1) as f64).exp())
}
