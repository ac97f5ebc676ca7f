//! `av1-worker`: for now, `av1-worker transcode INPUT -o OUTPUT` transcodes one file
//! with av1core and shows its progress (a bar on a terminal, log lines otherwise).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use av1core::{Decision, Progress, Settings};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(version = version(), about = "Transcode video to AV1 (SVT-AV1) + Opus in Matroska")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transcode one file and verify the result.
    Transcode(TranscodeArgs),
    /// Print what the probe finds in a file, as JSON.
    Probe { input: PathBuf },
}

#[derive(clap::Args)]
struct TranscodeArgs {
    input: PathBuf,
    /// Output file (Matroska). Written under a temporary name, verified, then renamed.
    #[arg(short, long)]
    output: PathBuf,
    /// SVT-AV1 preset, 0 (slowest) to 13 (fastest).
    #[arg(long, env = "SVT_AV1_PRESET", default_value_t = 8)]
    preset: i8,
    /// CRF instead of the quality table's.
    #[arg(long)]
    crf: Option<u8>,
    /// Film grain synthesis level (0 = off).
    #[arg(long, default_value_t = 0)]
    film_grain: u8,
    /// Keyframe interval in seconds.
    #[arg(long, default_value_t = 10.0)]
    keyint: f64,
    /// Encoder threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// Copy every audio track unchanged.
    #[arg(long)]
    copy_audio: bool,
    /// Encode the HDR10 base layer of HDR10+ / Dolby Vision sources instead of skipping them.
    #[arg(long)]
    dynamic_hdr_base_layer: bool,
    /// Re-encode sources that are already AV1.
    #[arg(long)]
    reencode_av1: bool,
    /// CRF table (quality_lookup.json) overriding the built-in one.
    #[arg(long, env = "QUALITY_LOOKUP")]
    quality_table: Option<PathBuf>,
    /// Opus bit-rate table (audio_codec_lookup.json) overriding the built-in one.
    #[arg(long, env = "AUDIO_LOOKUP")]
    audio_table: Option<PathBuf>,
    /// Print the report as one JSON line on standard output when done.
    #[arg(long)]
    json: bool,
    /// Extra SVT-AV1 parameter, KEY=VALUE (repeatable).
    #[arg(long = "svt", value_parser = parse_kv)]
    svt_params: Vec<(String, String)>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn version() -> &'static str {
    Box::leak(
        format!("{} (SVT-AV1 {})", env!("CARGO_PKG_VERSION"), av1core::encode::svt::version())
            .into_boxed_str(),
    )
}

fn main() -> std::process::ExitCode {
    // Silences SVT-AV1's banner on stderr. The library must not do this; a program may,
    // before any thread exists.
    if std::env::var_os("SVT_LOG").is_none() {
        std::env::set_var("SVT_LOG", "1");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Transcode(args) => transcode(args),
        Command::Probe { input } => {
            av1core::probe(&input).with_context(|| format!("probing {}", input.display())).and_then(|info| {
                println!("{}", serde_json::to_string_pretty(&info)?);
                Ok(std::process::ExitCode::SUCCESS)
            })
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Exit code for a file skipped on purpose (dynamic HDR, already AV1): not a failure.
const EXIT_SKIPPED: u8 = 3;

fn transcode(args: TranscodeArgs) -> anyhow::Result<std::process::ExitCode> {
    let tables =
        av1core::plan::Tables::with_overrides(args.quality_table.as_deref(), args.audio_table.as_deref())?;
    let settings = Settings {
        preset: args.preset,
        crf: args.crf,
        keyint_seconds: args.keyint,
        threads: args.threads,
        film_grain: args.film_grain,
        copy_audio: args.copy_audio,
        dynamic_hdr_base_layer: args.dynamic_hdr_base_layer,
        reencode_av1: args.reencode_av1,
        svt_params: args.svt_params,
        tables,
        ..Settings::default()
    };
    let input = &args.input;
    let info = av1core::probe(input).with_context(|| format!("probing {}", input.display()))?;
    let plan =
        match av1core::plan(&info, &settings).with_context(|| format!("planning {}", input.display()))? {
            Decision::Encode(plan) => *plan,
            Decision::Skip { reason, detail } => {
                eprintln!("skipped {}: {} ({detail})", input.display(), reason.as_str());
                return Ok(std::process::ExitCode::from(EXIT_SKIPPED));
            }
        };
    tracing::info!(
        input = %input.display(),
        video = format!("{}x{} {} {} -> AV1 {}-bit crf {} preset {}", plan.video.width, plan.video.height,
            info.video().map_or("", |(s, _)| s.codec.as_str()), plan.video.hdr, plan.video.bit_depth,
            plan.video.crf, plan.video.preset),
        audio = plan.audio_summary(),
        "transcoding"
    );
    if args.output.exists() {
        bail!("{} exists already; not overwriting it", args.output.display());
    }

    let cancel = Arc::new(AtomicBool::new(false));
    install_ctrl_c(cancel.clone());
    let mut draw = Drawer::new(plan.frames);
    let report = av1core::transcode(input, &args.output, &plan, &cancel, |p| draw.update(p));
    draw.finish();
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
    Ok(std::process::ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM raises the cancel flag: the transcode stops within a second and
/// removes its temporary file. A second one exits at once (the temporary file is
/// hidden and recognisable, and nothing else was touched).
fn install_ctrl_c(cancel: Arc<AtomicBool>) {
    let result = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping: removing the partial output (press Ctrl-C again to quit at once)");
    });
    if let Err(e) = result {
        tracing::warn!("no Ctrl-C handler: {e}");
    }
}

/// Progress on a terminal as a bar, otherwise as a log line every 10 seconds.
struct Drawer {
    bar: Option<ProgressBar>,
    last_log: Instant,
}

impl Drawer {
    fn new(total: u64) -> Drawer {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total.max(1));
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} frames  {msg}",
                )
                .expect("static template"),
            );
            b
        });
        Drawer { bar, last_log: Instant::now() }
    }

    fn update(&mut self, p: &Progress) {
        let eta = p.eta.map(|d| format!("ETA {}", fmt_duration(d))).unwrap_or_default();
        let size = p.projected_size.map(|s| format!("~{:.1} MB", s as f64 / 1e6)).unwrap_or_default();
        let msg = format!("{:.1}% {:.2} fps {eta} {size}", p.percent, p.fps);
        match &self.bar {
            Some(b) => {
                b.set_length(p.total_frames.max(1));
                b.set_position(p.frames);
                b.set_message(msg);
            }
            None if self.last_log.elapsed() >= Duration::from_secs(10) => {
                self.last_log = Instant::now();
                tracing::info!(frames = p.frames, total = p.total_frames, "{msg}");
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
