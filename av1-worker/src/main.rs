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

use av1_worker::cli::{EncoderArgs, RemoteArgs};
use av1_worker::remote;

use std::path::PathBuf;

use anyhow::Context as _;
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
    remote: RemoteArgs,
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
                remote::run(url, &cli.remote.config()?, fallback, cli.encoder.threads, drain)?;
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
