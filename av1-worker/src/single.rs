//! `av1-worker transcode INPUT -o OUTPUT`: one file, verified, no replacement.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context as _};
use av1core::Decision;

use crate::progress::FileBar;
use crate::TranscodeArgs;

/// Exit code for a file skipped on purpose (dynamic HDR, already AV1): not a failure.
pub const EXIT_SKIPPED: u8 = 3;
/// Exit code after Ctrl-C / SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

pub fn transcode(args: &TranscodeArgs, output: &Path) -> anyhow::Result<ExitCode> {
    let [input] = args.paths.as_slice() else {
        bail!("with -o, give exactly one input file ({} given)", args.paths.len());
    };
    let settings = args.encoder.settings()?;
    let info = av1core::probe(input).with_context(|| format!("probing {}", input.display()))?;
    let plan =
        match av1core::plan(&info, &settings).with_context(|| format!("planning {}", input.display()))? {
            Decision::Encode(plan) => *plan,
            Decision::Skip { reason, detail } => {
                eprintln!("skipped {}: {} ({detail})", input.display(), reason.as_str());
                return Ok(ExitCode::from(EXIT_SKIPPED));
            }
        };
    tracing::info!(
        input = %input.display(),
        video = format!("{}x{} {} {} -> AV1 {}-bit crf {} preset {}{}", plan.video.width, plan.video.height,
            info.video().map_or("", |(s, _)| s.codec.as_str()), plan.video.hdr, plan.video.bit_depth,
            plan.video.crf, plan.video.preset, plan.picture_summary()),
        audio = plan.audio_summary(),
        "transcoding"
    );
    if output.exists() {
        bail!("{} exists already; not overwriting it", output.display());
    }

    let control = crate::signals::install("removing the partial output");
    let cancel = AtomicBool::new(false);
    let mut bar = FileBar::new(plan.frames, None);
    let report = av1core::transcode(input, output, &plan, &cancel, |p| {
        if control.requested().is_some() {
            cancel.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        bar.update(p);
    });
    bar.finish();
    if report.is_err() && control.requested().is_some() {
        // The transcode removed its partial output before returning.
        eprintln!("interrupted: {} was not written", output.display());
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    let report = report.with_context(|| format!("transcoding {}", input.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    let saved = 100.0 * (1.0 - report.output_size as f64 / report.input_size.max(1) as f64);
    eprintln!(
        "done: {} frames in {:.1} s ({:.2} fps), {} -> {} bytes ({saved:.1}% smaller), verified: {:.2} s, {} audio, {} subtitles, {} attachments, {} chapters, {}",
        report.frames,
        report.elapsed.as_secs_f64(),
        report.fps,
        report.input_size,
        report.output_size,
        report.verification.duration,
        report.verification.audio,
        report.verification.subtitles,
        report.verification.attachments,
        report.verification.chapters,
        report.verification.hdr,
    );
    Ok(ExitCode::SUCCESS)
}
