//! av1core: turn one video file into a verified AV1 (SVT-AV1) + Opus Matroska file,
//! in-process: libavformat/libavcodec (through `ffmpeg-next`) demux and decode,
//! SVT-AV1 (through `av1core-sys`) encodes video, libopus encodes audio, libavformat
//! muxes Matroska. The library never prints; progress goes out through a callback.
//!
//! The pipeline, in the order a file goes through it:
//! [`probe`] → [`plan`] → [`transcode`] (demux, decode, [`encode`], mux) → [`verify`];
//! a whole library of files is the `av1-library` crate's concern, built on this one.
//!
//! Layering: stands on `av1core-sys` and the libav*/libopus bindings only; no database,
//! no directory walk, no network. Every `unsafe` of the workspace is here (in `libav`
//! and `encode`) or in av1core-sys, each with its SAFETY note.

pub mod encode;
pub mod error;
pub mod libav;
pub mod os;
pub mod plan;
pub mod probe;
pub mod transcode;
pub mod verify;

pub use error::{Error, Result};

/// Initialises libav* once and keeps its logging quiet (errors only): the library
/// never prints on its own, and callers report errors through `Error`.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}

pub use plan::{plan, Decision, Plan, Settings, SkipReason};
pub use probe::{probe, MediaInfo};
pub use transcode::{transcode, Progress, Report};
pub use verify::{verify, Verification};
