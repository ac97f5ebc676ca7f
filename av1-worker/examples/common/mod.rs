//! Helpers shared by the benchmark programs: the ffmpeg program (fixtures, the
//! reference encode, PSNR) and the machine's description.
#![allow(dead_code)] // each benchmark program uses its own part of it

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};

/// Runs `ffmpeg -v error -y -nostdin ARGS`.
pub fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .env("SVT_LOG", "1")
        .output()?;
    if !out.status.success() {
        bail!("ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Average PSNR (Y, U, V weighted as FFmpeg's psnr filter does) against the source.
pub fn psnr(out: &Path, src: &Path) -> anyhow::Result<f64> {
    let o = Command::new("ffmpeg")
        .args(["-v", "info", "-nostdin", "-i"])
        .arg(out)
        .arg("-i")
        .arg(src)
        .args(["-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"])
        .output()?;
    let text = String::from_utf8_lossy(&o.stderr);
    let avg = text
        .lines()
        .filter_map(|l| l.split("average:").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .next_back()
        .context("no PSNR in ffmpeg's output")?;
    Ok(avg.parse()?)
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
