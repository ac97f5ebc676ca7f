//! The transcode of one file, as pipelined threads joined by bounded channels:
//!
//! ```text
//! demux ──video packets──▶ video decode (+ pixel conversion) ──frames──▶ SVT-AV1 ──┐
//!   │ └───audio packets──▶ audio decode ▶ resample ▶ Opus ───────────────────────────┼──▶ mux (caller's thread)
//!   └─────copied packets (subtitles, Opus, text subtitles turned SRT) ──────────────┘
//! ```
//!
//! Decoding and encoding run at the same time, so neither waits for the other. The
//! caller's thread muxes, reports progress and watches the cancel flag. The output is
//! written to a hidden temporary file beside `output`, verified, and only then renamed
//! into place; on any error the temporary file is removed.

mod audio;
pub(crate) mod check;
mod demux;
mod mux;
mod picture;
mod video;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::verify::{self, Verification};

/// Progress of a running transcode, reported a few times a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Video frames encoded and written.
    pub frames: u64,
    /// Frames expected (estimated from duration and frame rate when the container
    /// does not say).
    pub total_frames: u64,
    /// Encoding speed in frames per second, since the start.
    pub fps: f64,
    /// 0..=100, by media time written.
    pub percent: f64,
    pub elapsed: Duration,
    pub eta: Option<Duration>,
    /// Bytes of packets written so far.
    pub bytes_written: u64,
    /// Size the output will have if the rest compresses like what is done.
    pub projected_size: Option<u64>,
}

/// What a finished transcode produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub output: PathBuf,
    pub input_size: u64,
    pub output_size: u64,
    pub frames: u64,
    pub elapsed: Duration,
    /// Part of `elapsed` spent verifying the output (decoding every frame again).
    pub verify_elapsed: Duration,
    pub fps: f64,
    /// Damaged video packets the decoder skipped (tolerated up to a small share).
    pub damaged_packets: u64,
    /// `SVT-AV1 1.4.1`.
    pub encoder: String,
    pub verification: Verification,
}

/// A packet on its way to the muxer.
pub(crate) struct Outgoing {
    pub stream: usize,
    pub packet: ff::Packet,
    pub time_base: ff::Rational,
    pub is_video: bool,
}

/// Messages between stages: an item, or the clean end of the stream. A channel that
/// closes without `End` means the sender failed.
pub(crate) enum Msg<T> {
    Item(T),
    End,
}

/// What a stage returns when it stops because a neighbour stopped first: not the
/// cause, just a consequence (the neighbour's own error is reported instead).
pub(crate) fn stopped(stage: &'static str) -> Error {
    Error::Stopped { stage }
}

/// How many frames may wait between decoder and encoder, and packets between demuxer
/// and decoders: enough to keep both busy, small enough to bound memory.
pub(crate) const FRAME_QUEUE: usize = 8;
pub(crate) const PACKET_QUEUE: usize = 256;

/// Transcodes `input` to `output` (Matroska) following `plan`, verifies the result and
/// only then moves it into place (an existing `output` is replaced atomically; callers
/// that must not overwrite check first). `cancel` is honoured within a second; `on_progress`
/// is called on the caller's thread a few times a second.
pub fn transcode(
    input: &Path,
    output: &Path,
    plan: &Plan,
    cancel: &AtomicBool,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Report> {
    crate::init();
    let started = Instant::now();
    let input_size = std::fs::metadata(input).map_err(Error::io("reading metadata", input))?.len();
    let temp = temp_path(output);
    // Ours by name; whatever is there (a stale one, a link someone planted) is removed
    // and the file created new, never opened through a link: libavformat writes it
    // through this descriptor (`/proc/self/fd/N`).
    let _ = std::fs::remove_file(&temp);
    let created = crate::os::create_new(&temp, 0o666).map_err(Error::io("creating the output", &temp))?;
    let guard = RemoveOnDrop(&temp);
    let written = crate::os::fd_path(&created);
    let names = [(written.as_path(), temp.as_path())];

    let stats = run(input, &written, plan, cancel, &mut on_progress).map_err(|e| e.naming(&names))?;
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    created.sync_all().map_err(Error::io("syncing the output", &temp))?;

    let verify_started = Instant::now();
    let verification =
        verify::verify_written(&written, plan, stats.frames, &stats.checked, stats.source_duration)
            .map_err(|e| e.naming(&names))?;
    let verify_elapsed = verify_started.elapsed();
    let output_size = created.metadata().map_err(Error::io("reading metadata", &temp))?.len();
    std::fs::rename(&temp, output).map_err(Error::io("renaming the output into place", output))?;
    std::mem::forget(guard);
    let elapsed = started.elapsed();
    Ok(Report {
        output: output.to_path_buf(),
        input_size,
        output_size,
        frames: stats.frames,
        elapsed,
        verify_elapsed,
        fps: stats.frames as f64 / elapsed.as_secs_f64().max(1e-9),
        damaged_packets: stats.damaged_packets,
        encoder: format!("SVT-AV1 {}", crate::encode::svt::version()),
        verification,
    })
}

/// `.NAME.av1-partial` beside `output`: hidden, and recognisable as ours.
pub fn temp_path(output: &Path) -> PathBuf {
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dot = if name.starts_with('.') { "" } else { "." };
    output.with_file_name(format!("{dot}{name}{TEMP_SUFFIX}"))
}

/// Suffix of the temporary files this library writes.
pub const TEMP_SUFFIX: &str = ".av1-partial";

struct RemoveOnDrop<'a>(&'a Path);
impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// Counts from a finished pipeline.
pub(crate) struct Stats {
    pub frames: u64,
    pub damaged_packets: u64,
    /// What the check stage decoded while the file was written.
    pub checked: check::Checked,
    /// The source's length as read, when its clock jumped (its declared one is wrong).
    pub source_duration: Option<f64>,
}

fn run(
    input: &Path,
    temp: &Path,
    plan: &Plan,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Stats> {
    let ictx = ff::format::input(&input).map_err(Error::ffmpeg("opening the container", input))?;
    let setup = mux::Setup::new(&ictx, input, temp, plan)?;
    let mux::Setup {
        octx,
        routes,
        video_encoder,
        video_decoder,
        audio_tracks,
        srt_tracks,
        video_out,
        time_bases,
    } = setup;

    // Every stage watches `stop` so that one failure or a cancel ends them all.
    let stop = AtomicBool::new(false);
    let (video_tx, video_rx) = crossbeam_channel::bounded(PACKET_QUEUE);
    let (audio_tx, audio_rx) = crossbeam_channel::bounded(PACKET_QUEUE);
    let (frame_tx, frame_rx) = crossbeam_channel::bounded(FRAME_QUEUE);
    let (mux_tx, mux_rx) = crossbeam_channel::bounded(PACKET_QUEUE);
    let (check_tx, check_rx) = crossbeam_channel::bounded(PACKET_QUEUE);
    let check_params = octx
        .stream(video_out)
        .map(|s| s.parameters())
        .ok_or_else(|| Error::Internal { stage: "mux", message: "no AV1 stream".into() })?;

    std::thread::scope(|s| {
        let stop = &stop;
        let demux = {
            let mux_tx = mux_tx.clone();
            let has_audio = !audio_tracks.is_empty();
            s.spawn(move || {
                let to =
                    demux::Downstream { video: video_tx, audio: has_audio.then_some(audio_tx), mux: mux_tx };
                demux::run(ictx, input, routes, srt_tracks, to, plan.duration, stop)
            })
        };
        let decode = s.spawn(move || {
            video::decode(video_decoder, input, plan, time_bases.video_in, video_rx, frame_tx, stop)
        });
        let encode = {
            let mux_tx = mux_tx.clone();
            let tb = time_bases.video_in;
            s.spawn(move || video::encode(video_encoder, frame_rx, mux_tx, video_out, tb, stop))
        };
        let audio = {
            let mux_tx = mux_tx.clone();
            s.spawn(move || audio::run(audio_tracks, audio_rx, mux_tx, input, stop))
        };
        let check = s.spawn(move || check::run(check_params, check_rx, temp));
        drop(mux_tx);

        let flags = mux::Flags { cancel, stop };
        let muxed = mux::write(octx, temp, plan, mux_rx, check_tx, flags, on_progress);
        if muxed.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let decoded = join(decode);
        let damaged_packets = *decoded.as_ref().unwrap_or(&0);
        let (checked, check_result) = match join(check) {
            Ok(c) => (Some(c), Ok(())),
            Err(e) => (None, Err(e)),
        };
        let demuxed = join(demux);
        let source_duration = demuxed.as_ref().ok().copied().flatten();
        let results = [demuxed.map(|_| ()), decoded.map(|_| ()), join(encode), join(audio), check_result];
        let frames = pick_error(muxed, results, cancel)?;
        let checked =
            checked.ok_or_else(|| Error::Internal { stage: "check", message: "no result".into() })?;
        Ok(Stats { frames, damaged_packets, checked, source_duration })
    })
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join().unwrap_or_else(|p| {
        let message = p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Err(Error::Internal { stage: "pipeline", message })
    })
}

/// The error to report: cancel first, then the first real cause, never the
/// "stopped because another stage stopped" consequences.
fn pick_error(muxed: Result<u64>, stages: [Result<()>; 5], cancel: &AtomicBool) -> Result<u64> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let is_consequence = |e: &Error| matches!(e, Error::Stopped { .. });
    let mut first_consequence = None;
    for r in stages {
        match r {
            Err(e) if is_consequence(&e) => first_consequence = first_consequence.or(Some(e)),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
    }
    match muxed {
        Err(e) if is_consequence(&e) => Err(first_consequence.unwrap_or(e)),
        other => match (other, first_consequence) {
            (Ok(_), Some(e)) => Err(e),
            (other, _) => other,
        },
    }
}
