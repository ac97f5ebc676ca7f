//! `av1-master`: the coordinator of a distributed library transcode (HTTP API, SQLite
//! queue, scanner, replacement, web UI). Not built yet: this issue delivers the
//! transcode core it will stand on. For now it reports the encoder it would use.

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Coordinates AV1 transcoding of a media library (not built yet)")]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _ = Cli::parse();
    anyhow::bail!(
        "av1-master is not built yet; use `av1-worker transcode` (SVT-AV1 {})",
        av1core::encode::svt::version()
    )
}
