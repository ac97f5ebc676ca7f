//! The demuxer thread: reads packets in file order, shifts timestamps so the output
//! starts at zero, and routes each packet to its stage. Text subtitles Matroska cannot
//! hold (MP4's mov_text) are turned into SRT here: it costs next to nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Sender;
use ffmpeg_next as ff;

use super::{Msg, Outgoing};
use crate::error::{Error, Result};
use crate::libav;
use crate::probe::timeline::Continuity;

/// Where the packets of an input stream go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Video,
    /// Index into the audio stage's tracks.
    Audio(usize),
    /// Output stream index.
    Copy(usize),
    /// Index into the SRT conversions.
    Srt(usize),
}

/// A text subtitle track converted to SRT.
pub(crate) struct SrtTrack {
    decoder: ff::decoder::Subtitle,
    encoder: ff::encoder::subtitle::Encoder,
    out: usize,
}

impl SrtTrack {
    pub fn new(ist: &ff::format::stream::Stream<'_>, input: &Path, out: usize) -> Result<SrtTrack> {
        let fail = |op| Error::ffmpeg(op, input);
        let decoder = ff::codec::context::Context::from_parameters(ist.parameters())
            .map_err(fail("reading subtitle parameters"))?
            .decoder()
            .subtitle()
            .map_err(fail("opening a subtitle decoder"))?;
        let codec = ff::encoder::find(ff::codec::Id::SUBRIP).ok_or_else(|| Error::Unsupported {
            path: input.into(),
            what: "this FFmpeg has no SRT encoder".into(),
        })?;
        let mut enc = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .subtitle()
            .map_err(fail("creating the SRT encoder"))?;
        enc.set_time_base(ist.time_base());
        libav::copy_subtitle_header(&decoder, &mut enc).map_err(fail("preparing the SRT encoder"))?;
        let encoder = enc.open_as(codec).map_err(fail("opening the SRT encoder"))?;
        Ok(SrtTrack { decoder, encoder, out })
    }

    /// The SRT packet for one input packet, or None for an empty (gap) sample.
    fn convert(&mut self, packet: &ff::Packet) -> Result<Option<ff::Packet>, ff::Error> {
        let mut sub = ff::Subtitle::new();
        if !self.decoder.decode(packet, &mut sub)? || sub.rects().count() == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; 64 * 1024];
        let n = libav::encode_subtitle(&mut self.encoder, &sub, &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        let mut out = ff::Packet::copy(&buf[..n]);
        out.set_pts(packet.pts());
        out.set_dts(packet.pts());
        out.set_duration(packet.duration());
        Ok(Some(out))
    }
}

/// Where the demuxer sends packets: one channel per downstream stage.
pub(crate) struct Downstream {
    pub video: Sender<Msg<ff::Packet>>,
    /// None when no audio track is encoded.
    pub audio: Option<Sender<Msg<(usize, ff::Packet)>>>,
    /// Copied packets go straight to the muxer.
    pub mux: Sender<Outgoing>,
}

/// Reads every packet and routes it. Returns the media's length as read when its clock
/// jumped (the declared one is then meaningless), else `None`.
pub(crate) fn run(
    mut ictx: ff::format::context::Input,
    input: &Path,
    routes: HashMap<usize, Route>,
    mut srt: Vec<SrtTrack>,
    to: Downstream,
    declared_duration: f64,
    stop: &AtomicBool,
) -> Result<Option<f64>> {
    let Downstream { video, audio, mux } = to;
    let start = libav::start_time(&ictx);
    let start = if start == ff::ffi::AV_NOPTS_VALUE { 0 } else { start };
    let time_bases: Vec<ff::Rational> = ictx.streams().map(|s| s.time_base()).collect();
    let mut continuity = Continuity::new(&ictx);
    let stopped = || super::stopped("demux");
    let mut packet = ff::Packet::empty();
    let mut bad_reads = 0u32;
    // Where the media read so far ends, in seconds from the start.
    let mut last_end = 0f64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        match packet.read(&mut ictx) {
            Ok(()) => bad_reads = 0,
            Err(ff::Error::Eof) => break,
            // A damaged stretch: libavformat resynchronises on the next read, unless
            // nothing readable follows.
            Err(ff::Error::InvalidData) if bad_reads < libav::MAX_BAD_READS => {
                bad_reads += 1;
                continue;
            }
            Err(e) => return Err(Error::Ffmpeg { op: "reading a packet", path: input.into(), source: e }),
        }
        let index = packet.stream();
        let Some(route) = routes.get(&index) else { continue };
        let tb = time_bases[index];
        continuity.fix(&mut packet, index, tb, matches!(route, Route::Video | Route::Audio(_)));
        let shift = ff::rescale::Rescale::rescale(&start, ff::rescale::TIME_BASE, tb);
        if let Some(p) = packet.pts() {
            packet.set_pts(Some(p - shift));
        }
        if let Some(d) = packet.dts() {
            packet.set_dts(Some(d - shift));
        }
        if let Some(t) = packet.pts().or(packet.dts()) {
            let end = (t + packet.duration().max(0)) as f64 * f64::from(tb);
            if end.is_finite() && end > last_end {
                last_end = end;
            }
        }
        let p = std::mem::replace(&mut packet, ff::Packet::empty());
        let sent = match *route {
            Route::Video => video.send(Msg::Item(p)).is_ok(),
            Route::Audio(track) => audio.as_ref().is_some_and(|a| a.send(Msg::Item((track, p))).is_ok()),
            Route::Copy(out) => {
                mux.send(Outgoing { stream: out, packet: p, time_base: tb, is_video: false }).is_ok()
            }
            Route::Srt(i) => match srt[i].convert(&p) {
                Ok(Some(converted)) => {
                    let out = srt[i].out;
                    mux.send(Outgoing { stream: out, packet: converted, time_base: tb, is_video: false })
                        .is_ok()
                }
                Ok(None) => true,
                // One unreadable subtitle cue is dropped, not the film.
                Err(_) => true,
            },
        };
        if !sent {
            return Err(stopped());
        }
    }
    // A file that ends well before the duration its header declares was cut short:
    // say so now, rather than let verification find a short output. A file whose clock
    // jumped declares a duration that spans the jumps: its length is the one read here.
    let tolerance = (declared_duration * 0.01).max(0.5);
    if continuity.jumps == 0 && declared_duration > 0.0 && last_end + tolerance < declared_duration {
        return Err(Error::Corrupt {
            path: input.into(),
            what: format!(
                "the media ends at {last_end:.2} s but the file declares {declared_duration:.2} s: it is truncated"
            ),
        });
    }
    let ended = video.send(Msg::End).is_ok() && audio.as_ref().is_none_or(|a| a.send(Msg::End).is_ok());
    if ended {
        Ok((continuity.jumps > 0).then_some(last_end))
    } else {
        Err(stopped())
    }
}
