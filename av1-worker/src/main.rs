//! `av1-worker`: transcodes video to AV1 (SVT-AV1) + Opus in Matroska.
//!
//! - `av1-worker transcode INPUT -o OUTPUT`: one file, no replacement.
//! - `av1-worker transcode DIR|FILE ...` (or `MEDIA_DIRS`): the standalone library
//!   mode — scan, queue (SQLite), transcode, verify, replace, summarise; re-running
//!   resumes where it stopped.
//! - `av1-worker probe INPUT`: what the probe finds, as JSON.

mod library;
mod progress;
mod signals;
mod single;

use av1_worker::remote;

use std::path::PathBuf;

use anyhow::Context as _;
use av1core::Settings;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version = version(),
    about = "Transcode video to AV1 (SVT-AV1) + Opus in Matroska: one file, a library, or jobs from a master",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    /// Work for the master at this URL (`http://master:8090`).
    #[arg(env = "MASTER_URL")]
    master_url: Option<String>,
    #[command(flatten)]
    remote: remote::RemoteArgs,
    #[command(flatten)]
    encoder: EncoderArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Transcode one file (with -o), or whole libraries: scan, queue, transcode, verify, replace.
    Transcode(Box<TranscodeArgs>),
    /// Print what the probe finds in a file, as JSON.
    Probe { input: PathBuf },
}

#[derive(clap::Args)]
struct TranscodeArgs {
    /// Directories or files. With -o, exactly one input file.
    #[arg(env = "MEDIA_DIRS", value_delimiter = ',', required = true)]
    paths: Vec<PathBuf>,
    /// Output file (Matroska) for a single-file transcode; without it, the paths are
    /// libraries whose files are replaced by their verified results.
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    encoder: EncoderArgs,
    #[command(flatten)]
    library: library::LibraryArgs,
    /// Print the report (single file) or the summary (library) as one JSON line on
    /// standard output when done.
    #[arg(long)]
    json: bool,
}

/// Encoder and planning settings, shared by both modes.
#[derive(clap::Args)]
struct EncoderArgs {
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
    pub threads: u32,
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
    /// Extra SVT-AV1 parameter, KEY=VALUE (repeatable).
    #[arg(long = "svt", value_parser = parse_kv)]
    svt_params: Vec<(String, String)>,
}

impl EncoderArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        let tables = av1core::plan::Tables::with_overrides(
            self.quality_table.as_deref(),
            self.audio_table.as_deref(),
        )?;
        let settings = Settings {
            preset: self.preset,
            crf: self.crf,
            keyint_seconds: self.keyint,
            threads: self.threads,
            film_grain: self.film_grain,
            copy_audio: self.copy_audio,
            dynamic_hdr_base_layer: self.dynamic_hdr_base_layer,
            reencode_av1: self.reencode_av1,
            svt_params: self.svt_params.clone(),
            tables,
            ..Settings::default()
        };
        settings.validate()?;
        Ok(settings)
    }
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
    av1_worker::logging::init();
    if let Err(e) = av1_library::fault::check_environment() {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        None => match &cli.master_url {
            Some(url) => cli.encoder.settings().and_then(|fallback| {
                let drain = signals::install_drain();
                remote::run(url, &cli.remote, fallback, cli.encoder.threads, drain)?;
                Ok(std::process::ExitCode::SUCCESS)
            }),
            None => Err(anyhow::anyhow!(
                "give a master's URL (or MASTER_URL) to work for it, or a command: `av1-worker --help`"
            )),
        },
        Some(Command::Transcode(args)) => match &args.output {
            Some(output) => single::transcode(&args, output),
            None => library::run(&args),
        },
        Some(Command::Probe { input }) => {
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
