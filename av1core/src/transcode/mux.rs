//! The Matroska side: output streams set up from the plan (AV1, Opus, copies, SRT,
//! cover art as attachment), metadata and chapters carried over, then the write loop
//! that interleaves packets, reports progress and watches the cancel flag.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use ffmpeg_next as ff;

use super::audio::AudioTrack;
use super::demux::{Route, SrtTrack};
use super::{Outgoing, Progress};
use crate::encode::opus::OpusEncoder;
use crate::encode::svt::{Encoder, EncoderConfig};
use crate::error::{Error, Result};
use crate::libav;
use crate::plan::{Plan, StreamAction};

/// Per-stream tags that describe the source encoding and would be wrong afterwards.
const STALE_TAGS: [&str; 6] =
    ["BPS", "DURATION", "NUMBER_OF_FRAMES", "NUMBER_OF_BYTES", "ENCODER", "_STATISTICS_"];

pub(crate) struct TimeBases {
    pub video_in: ff::Rational,
}

/// Everything the pipeline needs, made on the caller's thread before any thread starts.
pub(crate) struct Setup {
    pub octx: ff::format::context::Output,
    pub routes: HashMap<usize, Route>,
    pub video_encoder: Encoder,
    pub video_decoder: ff::decoder::Video,
    pub audio_tracks: Vec<AudioTrack>,
    pub srt_tracks: Vec<SrtTrack>,
    pub video_out: usize,
    pub time_bases: TimeBases,
}

impl Setup {
    /// The output's streams, one constructor per kind (video, Opus, copied, SRT, cover
    /// art), the container's metadata and chapters, and the header written.
    pub fn new(ictx: &ff::format::context::Input, input: &Path, temp: &Path, plan: &Plan) -> Result<Setup> {
        let fail = |op| Error::ffmpeg(op, temp);
        let mut octx = ff::format::output_as(&temp, "matroska").map_err(fail("creating the output"))?;
        let vp = &plan.video;
        let ist_video = ictx.stream(vp.stream).ok_or_else(|| Error::NoVideoStream { path: input.into() })?;
        let video_decoder = crate::probe::open_video_decoder(&ist_video, input, true)?;
        let video_encoder = Encoder::new(&encoder_config(vp))?;
        let mut routes = HashMap::new();
        let (mut audio_tracks, mut srt_tracks, mut video_out) = (Vec::new(), Vec::new(), 0);
        for sp in &plan.streams {
            let Some(ist) = ictx.stream(sp.index) else { continue };
            let out_index = octx.nb_streams() as usize;
            let route = match &sp.action {
                StreamAction::Drop { .. } => continue,
                StreamAction::EncodeVideo => {
                    add_video(&mut octx, &ist, vp, &video_encoder, temp)?;
                    video_out = out_index;
                    Some(Route::Video)
                }
                StreamAction::EncodeOpus { bitrate, channels } => {
                    let encoder = add_opus(&mut octx, &ist, *bitrate, *channels, temp)?;
                    audio_tracks.push(AudioTrack::new(&ist, input, encoder, out_index)?);
                    Some(Route::Audio(audio_tracks.len() - 1))
                }
                StreamAction::Copy => {
                    add_copy(&mut octx, &ist, temp)?;
                    Some(Route::Copy(out_index))
                }
                StreamAction::ToSrt => {
                    add_srt(&mut octx, &ist, temp)?;
                    srt_tracks.push(SrtTrack::new(&ist, input, out_index)?);
                    Some(Route::Srt(srt_tracks.len() - 1))
                }
                StreamAction::CoverArt if add_cover_art(&mut octx, &ist, temp)? => None,
                StreamAction::CoverArt => continue,
            };
            if let Some(route) = route {
                routes.insert(sp.index, route);
            }
            if let Some(mut ost) = octx.stream_mut(out_index) {
                libav::set_disposition_bits(
                    &mut ost,
                    libav::disposition_bits(&ist) & !ff::ffi::AV_DISPOSITION_ATTACHED_PIC,
                );
            }
        }
        carry_container_metadata(ictx, &mut octx, temp)?;
        octx.write_header().map_err(fail("writing the Matroska header"))?;
        Ok(Setup {
            octx,
            routes,
            video_encoder,
            video_decoder,
            audio_tracks,
            srt_tracks,
            video_out,
            time_bases: TimeBases { video_in: ist_video.time_base() },
        })
    }
}

type Istream<'a> = ff::format::stream::Stream<'a>;

/// The encoder's settings from the plan.
fn encoder_config(vp: &crate::plan::VideoPlan) -> EncoderConfig {
    EncoderConfig {
        width: vp.width,
        height: vp.height,
        bit_depth: vp.bit_depth,
        fps_num: vp.frame_rate.0.max(1) as u32,
        fps_den: vp.frame_rate.1.max(1) as u32,
        preset: vp.preset,
        crf: vp.crf,
        keyint: vp.keyint,
        threads: vp.threads,
        film_grain: vp.film_grain,
        color: vp.color,
        mastering_display: vp.mastering_display,
        content_light: vp.content_light,
        extra: vp.svt_params.clone(),
    }
}

/// A new output stream with `params` and the source stream's tags.
fn add_stream<'a>(
    octx: &'a mut ff::format::context::Output,
    ist: &Istream<'_>,
    params: ff::codec::Parameters,
    temp: &Path,
) -> Result<ff::format::stream::StreamMut<'a>> {
    let mut ost = octx
        .add_stream(ff::encoder::find(ff::codec::Id::None))
        .map_err(Error::ffmpeg("adding a stream", temp))?;
    ost.set_parameters(params);
    carry_stream_tags(ist, &mut ost);
    Ok(ost)
}

/// The AV1 stream: SVT-AV1's sequence header, colour, pixel shape and HDR side data.
fn add_video(
    octx: &mut ff::format::context::Output,
    ist: &Istream<'_>,
    vp: &crate::plan::VideoPlan,
    encoder: &Encoder,
    temp: &Path,
) -> Result<()> {
    let fail = |op| Error::ffmpeg(op, temp);
    let chroma_location = libav::video_params(&ist.parameters()).chroma_location;
    let header = encoder.sequence_header();
    let params =
        libav::av1_params(vp.width, vp.height, vp.bit_depth > 8, vp.color.as_ref(), chroma_location, header)
            .map_err(fail("setting up the AV1 stream"))?;
    let mut ost = add_stream(octx, ist, params, temp)?;
    ost.set_time_base(ist.time_base());
    ost.set_avg_frame_rate(ist.avg_frame_rate());
    libav::set_sample_aspect_ratio(&mut ost, vp.sample_aspect);
    libav::set_stream_hdr(&mut ost, vp.mastering_display.as_ref(), vp.content_light.as_ref())
        .map_err(fail("adding HDR metadata"))
}

/// An Opus stream and its encoder (at the source's sample rate, else 48 kHz).
fn add_opus(
    octx: &mut ff::format::context::Output,
    ist: &Istream<'_>,
    bitrate: u32,
    channels: u16,
    temp: &Path,
) -> Result<OpusEncoder> {
    let rate = match libav::audio_params(&ist.parameters()).1 {
        0 => crate::encode::opus::SAMPLE_RATE,
        r => r,
    };
    let encoder = OpusEncoder::new(usize::from(channels), bitrate, rate)?;
    let params = libav::opus_params(encoder.channels(), &encoder.head(), encoder.pre_skip())
        .map_err(Error::ffmpeg("setting up an Opus stream", temp))?;
    let mut ost = add_stream(octx, ist, params, temp)?;
    ost.set_time_base(ff::Rational(1, crate::encode::opus::SAMPLE_RATE as i32));
    Ok(encoder)
}

/// A stream copied as it is (no codec tag: Matroska has its own).
fn add_copy(octx: &mut ff::format::context::Output, ist: &Istream<'_>, temp: &Path) -> Result<()> {
    let mut ost = add_stream(octx, ist, ist.parameters(), temp)?;
    libav::clear_codec_tag(&mut ost);
    // A copied second video keeps its pixel shape (the muxer reads the stream's).
    libav::set_sample_aspect_ratio(&mut ost, libav::sample_aspect_ratio(ist));
    ost.set_time_base(ist.time_base());
    Ok(())
}

/// A SubRip stream (for mov_text subtitles, turned into SRT by the demuxer).
fn add_srt(octx: &mut ff::format::context::Output, ist: &Istream<'_>, temp: &Path) -> Result<()> {
    let mut params = ff::codec::Parameters::new();
    params.set_medium(ff::media::Type::Subtitle);
    params.set_id(ff::codec::Id::SUBRIP);
    let mut ost = add_stream(octx, ist, params, temp)?;
    ost.set_time_base(ist.time_base());
    Ok(())
}

/// The cover art as a Matroska attachment; false when the source stream holds none.
fn add_cover_art(octx: &mut ff::format::context::Output, ist: &Istream<'_>, temp: &Path) -> Result<bool> {
    let Some(data) = libav::attached_picture(ist) else { return Ok(false) };
    let id = ist.parameters().id();
    let (ext, mime) = if id == ff::codec::Id::PNG { ("png", "image/png") } else { ("jpg", "image/jpeg") };
    let params = libav::attachment_params(id, &data).map_err(Error::ffmpeg("adding the cover art", temp))?;
    let mut ost = octx
        .add_stream(ff::encoder::find(ff::codec::Id::None))
        .map_err(Error::ffmpeg("adding a stream", temp))?;
    ost.set_parameters(params);
    let mut md = ff::Dictionary::new();
    md.set("filename", &format!("cover.{ext}"));
    md.set("mimetype", mime);
    ost.set_metadata(md);
    Ok(true)
}

/// The container's metadata (but the old encoder's name) and chapters, as they are.
fn carry_container_metadata(
    ictx: &ff::format::context::Input,
    octx: &mut ff::format::context::Output,
    temp: &Path,
) -> Result<()> {
    let mut md = ff::Dictionary::new();
    for (k, v) in ictx.metadata().iter() {
        if !k.eq_ignore_ascii_case("encoder") {
            md.set(k, v);
        }
    }
    octx.set_metadata(md);
    for (i, c) in ictx.chapters().enumerate() {
        let title = c.metadata().get("title").unwrap_or("").to_owned();
        octx.add_chapter(i as i64 + 1, c.time_base(), c.start(), c.end(), &title)
            .map_err(Error::ffmpeg("adding a chapter", temp))?;
    }
    Ok(())
}

/// Language, title and other per-stream tags, without the statistics that describe
/// the old encoding.
fn carry_stream_tags(ist: &ff::format::stream::Stream<'_>, ost: &mut ff::format::stream::StreamMut<'_>) {
    let mut md = ff::Dictionary::new();
    for (k, v) in ist.metadata().iter() {
        let upper = k.to_ascii_uppercase();
        if STALE_TAGS.iter().any(|t| upper.starts_with(t)) {
            continue;
        }
        md.set(k, v);
    }
    ost.set_metadata(md);
}

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// How often the cancel flag is looked at while no packet arrives.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// The muxer refuses a stream whose DTS goes back or repeats (a damaged source, a copied
/// stream around a splice): such a packet is moved just after the previous one, as the
/// `ffmpeg` program does, instead of failing the whole file. Our own streams are
/// strictly increasing already.
fn keep_increasing(packet: &mut ff::Packet, last: &mut Option<i64>) {
    let Some(dts) = packet.dts() else { return };
    let dts = match *last {
        Some(l) if dts <= l => {
            let moved = l + 1;
            packet.set_dts(Some(moved));
            if packet.pts().is_some_and(|p| p < moved) {
                packet.set_pts(Some(moved));
            }
            moved
        }
        _ => dts,
    };
    *last = Some(dts);
}

/// The two flags the write loop watches: the caller's cancel, and the pipeline's stop
/// (raised by a stage that failed).
pub(crate) struct Flags<'a> {
    pub cancel: &'a AtomicBool,
    pub stop: &'a AtomicBool,
}

/// Writes packets until every sender is done (video packets also go to the check
/// stage); returns the number of video frames.
pub(crate) fn write(
    mut octx: ff::format::context::Output,
    temp: &Path,
    plan: &Plan,
    rx: Receiver<Outgoing>,
    check: crossbeam_channel::Sender<ff::Packet>,
    flags: Flags<'_>,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<u64> {
    let Flags { cancel, stop } = flags;
    let started = Instant::now();
    let mut last_report = started;
    let mut frames = 0u64;
    let mut bytes = 0u64;
    let mut media_time = 0f64;
    let out_tbs: Vec<ff::Rational> = octx.streams().map(|s| s.time_base()).collect();
    let mut last_dts: Vec<Option<i64>> = vec![None; out_tbs.len()];
    loop {
        if cancel.load(Ordering::Relaxed) {
            stop.store(true, Ordering::Relaxed);
            return Err(Error::Cancelled);
        }
        if stop.load(Ordering::Relaxed) {
            return Err(super::stopped("mux"));
        }
        let out = match rx.recv_timeout(CANCEL_POLL) {
            Ok(o) => o,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let Outgoing { stream, mut packet, time_base, is_video } = out;
        if is_video {
            frames += 1;
            if let Some(pts) = packet.pts() {
                media_time = media_time.max(pts as f64 * f64::from(time_base));
            }
        }
        bytes += packet.size() as u64;
        if is_video && check.send(packet.clone()).is_err() {
            // The check stage failed; its error is the one reported.
            return Err(super::stopped("mux"));
        }
        packet.set_stream(stream);
        packet.set_position(-1);
        packet.rescale_ts(time_base, out_tbs[stream]);
        keep_increasing(&mut packet, &mut last_dts[stream]);
        packet.write_interleaved(&mut octx).map_err(Error::ffmpeg("writing a packet", temp))?;

        // The first frame is reported at once (an encode has visibly started), then
        // every PROGRESS_EVERY.
        if last_report.elapsed() >= PROGRESS_EVERY || (is_video && frames == 1) {
            last_report = Instant::now();
            on_progress(&progress(plan, frames, bytes, media_time, started.elapsed()));
        }
    }
    if stop.load(Ordering::Relaxed) {
        return Err(super::stopped("mux"));
    }
    octx.write_trailer().map_err(Error::ffmpeg("writing the Matroska index", temp))?;
    on_progress(&progress(plan, frames, bytes, plan.duration, started.elapsed()));
    Ok(frames)
}

fn progress(plan: &Plan, frames: u64, bytes: u64, media_time: f64, elapsed: Duration) -> Progress {
    let secs = elapsed.as_secs_f64();
    let fraction = if plan.duration > 0.0 {
        (media_time / plan.duration).clamp(0.0, 1.0)
    } else if plan.frames > 0 {
        (frames as f64 / plan.frames as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eta = (fraction > 0.0 && fraction < 1.0)
        .then(|| Duration::from_secs_f64(secs * (1.0 - fraction) / fraction));
    Progress {
        frames,
        total_frames: plan.frames.max(frames),
        fps: if secs > 0.0 { frames as f64 / secs } else { 0.0 },
        percent: fraction * 100.0,
        elapsed,
        eta: if fraction >= 1.0 { Some(Duration::ZERO) } else { eta },
        bytes_written: bytes,
        projected_size: (fraction > 0.01).then(|| (bytes as f64 / fraction) as u64),
    }
}
