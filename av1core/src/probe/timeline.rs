//! Timestamp jumps. MPEG transport and program streams (TV recordings, files cut and
//! joined) may restart or jump their clock in the middle of a file; libavformat marks
//! such formats (`AVFMT_TS_DISCONT`) and then reports a duration that spans the jump
//! (a clock going back looks like 26 hours of wrap-around). As the `ffmpeg` program
//! does, a video or audio packet whose DTS lands more than 10 s away from where its
//! stream was heading, or goes back, is taken for a splice — but only when it is also
//! more than 10 s away from where the file as a whole is (the furthest DTS of any video
//! or audio stream): a stream that merely stopped for a while (a dropout) is not moved.
//! Each stream keeps its own correction, so packets of the old clock that arrive after
//! another stream has crossed the splice are still placed right; other streams (subtitles)
//! follow the latest correction.
//!
//! The probe measures the duration this way when the declared one does not fit the
//! file; the demuxer applies the same correction to the packets it sends on.

use std::collections::HashMap;
use std::path::Path;

use ff::rescale::{Rescale, TIME_BASE};
use ffmpeg_next as ff;

use crate::error::{Error, Result};
use crate::libav;

/// A DTS this far (µs) from its stream's expected next one is a jump.
const JUMP_US: i64 = 10_000_000;
/// A DTS this far (µs) behind its stream's last one is a jump back.
const BACK_US: i64 = 100_000;

/// Keeps the timestamps of one file continuous across jumps.
pub(crate) struct Continuity {
    enabled: bool,
    /// The latest correction, in µs: for streams not watched, and streams seen first.
    offset: i64,
    /// Per watched stream: its correction, the DTS expected next and the last DTS
    /// seen (corrected), in µs.
    streams: HashMap<usize, Track>,
    /// Jumps corrected so far.
    pub jumps: u32,
}

#[derive(Clone, Copy)]
struct Track {
    offset: i64,
    next: i64,
    last: i64,
}

impl Continuity {
    pub fn new(ictx: &ff::format::context::Input) -> Continuity {
        Continuity {
            enabled: libav::allows_timestamp_jumps(ictx),
            offset: 0,
            streams: HashMap::new(),
            jumps: 0,
        }
    }

    /// Where the file is: the furthest DTS of the watched streams (corrected), in µs.
    fn clock(&self) -> Option<i64> {
        self.streams.values().map(|t| t.last).max()
    }

    /// Moves `packet` (of stream `index`, time base `tb`) by the correction so far, and
    /// detects a new jump when `watched` (video and audio streams: subtitles are sparse).
    pub fn fix(&mut self, packet: &mut ff::Packet, index: usize, tb: ff::Rational, watched: bool) {
        if !self.enabled {
            return;
        }
        if !watched {
            if self.offset != 0 {
                shift(packet, self.offset.rescale(TIME_BASE, tb));
            }
            return;
        }
        let Some(ts) = packet.dts().or(packet.pts()) else { return };
        let clock = self.clock();
        let track = self.streams.get(&index).copied();
        let offset = track.map_or(self.offset, |t| t.offset);
        let mut t = ts.rescale(tb, TIME_BASE).saturating_add(offset);
        let mut offset = offset;
        if let (Some(track), Some(clock)) = (track, clock) {
            let delta = t.saturating_sub(track.next);
            let off_course = !(-JUMP_US..=JUMP_US).contains(&delta) || t.saturating_add(BACK_US) < track.last;
            let off_clock = !(-JUMP_US..=JUMP_US).contains(&t.saturating_sub(clock));
            if off_course && off_clock {
                offset = offset.saturating_sub(delta);
                t = track.next;
                self.offset = offset;
                self.jumps += 1;
            }
        }
        if offset != 0 {
            shift(packet, offset.rescale(TIME_BASE, tb));
        }
        let duration = packet.duration().max(0).rescale(tb, TIME_BASE);
        self.streams.insert(index, Track { offset, next: t.saturating_add(duration), last: t });
    }
}

fn shift(packet: &mut ff::Packet, by: i64) {
    if let Some(p) = packet.pts() {
        packet.set_pts(Some(p.saturating_add(by)));
    }
    if let Some(d) = packet.dts() {
        packet.set_dts(Some(d.saturating_add(by)));
    }
}

/// The video and audio of a file as read packet by packet (no decoding).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Span {
    /// Seconds from the first packet's start to the last one's end, jumps removed.
    pub seconds: f64,
    pub bytes: u64,
    pub jumps: u32,
    /// Whether the whole file was read.
    pub complete: bool,
}

/// Reads the packets of `path` (at most `limit` bytes of them) and measures how long its
/// video and audio last once timestamp jumps are removed.
pub(crate) fn measure(path: &Path, limit: u64) -> Result<Span> {
    let mut ictx = ff::format::input(&path).map_err(Error::ffmpeg("opening the container", path))?;
    let watched: Vec<(bool, ff::Rational)> = ictx
        .streams()
        .map(|s| {
            let kind = s.parameters().medium();
            (matches!(kind, ff::media::Type::Video | ff::media::Type::Audio), s.time_base())
        })
        .collect();
    let mut continuity = Continuity::new(&ictx);
    let (mut first, mut end) = (i64::MAX, i64::MIN);
    let mut bytes = 0u64;
    let mut packet = ff::Packet::empty();
    let mut bad_reads = 0u32;
    let complete = loop {
        if bytes >= limit {
            break false;
        }
        match packet.read(&mut ictx) {
            Ok(()) => bad_reads = 0,
            Err(ff::Error::Eof) => break true,
            // A damaged stretch: resynchronise on the next read, unless nothing follows.
            Err(ff::Error::InvalidData) if bad_reads < libav::MAX_BAD_READS => {
                bad_reads += 1;
                continue;
            }
            Err(e) => return Err(Error::Ffmpeg { op: "reading a packet", path: path.into(), source: e }),
        }
        let index = packet.stream();
        let Some(&(is_media, tb)) = watched.get(index) else { continue };
        if !is_media {
            continue;
        }
        bytes += packet.size() as u64;
        continuity.fix(&mut packet, index, tb, true);
        if let Some(t) = packet.pts().or(packet.dts()) {
            let start = t.rescale(tb, TIME_BASE);
            first = first.min(start);
            end = end.max(start.saturating_add(packet.duration().max(0).rescale(tb, TIME_BASE)));
        }
    };
    let seconds =
        if end > first { end.saturating_sub(first) as f64 / f64::from(ff::ffi::AV_TIME_BASE) } else { 0.0 };
    Ok(Span { seconds, bytes, jumps: continuity.jumps, complete })
}

/// The length of `path` read packet by packet when its format allows clock jumps and
/// its clock does jump; `None` otherwise (the declared duration stands). Reads the whole
/// file in that case.
pub(crate) fn length_if_jumping(path: &Path) -> Result<Option<f64>> {
    let ictx = ff::format::input(&path).map_err(Error::ffmpeg("opening the container", path))?;
    if !libav::allows_timestamp_jumps(&ictx) {
        return Ok(None);
    }
    drop(ictx);
    let span = measure(path, u64::MAX)?;
    Ok((span.jumps > 0).then_some(span.seconds))
}

/// How much of a file is read to judge whether its declared duration can be trusted.
const SAMPLE_BYTES: u64 = 32 << 20;

/// The duration of a file whose format allows timestamp jumps: the declared one when
/// the start of the file agrees with it, else the one measured over the whole file.
pub(crate) fn checked_duration(path: &Path, declared: f64, file_size: u64) -> Result<f64> {
    let sample = measure(path, SAMPLE_BYTES)?;
    if sample.complete {
        return Ok(sample.seconds);
    }
    // The duration the file's size gives at the rate of its first megabytes; a declared
    // duration far from it (by 30%) spans a jump, or the file is truncated: read it all
    // (a demux without decoding, at disk speed). A jump that this misses is measured by
    // the transcode itself, which then verifies against the length it read.
    let expected = if sample.seconds > 0.0 {
        sample.seconds * file_size as f64 / sample.bytes.max(1) as f64
    } else {
        0.0
    };
    let plausible =
        declared > 0.0 && expected > 0.0 && declared < 1.3 * expected && declared > expected / 1.3;
    if sample.jumps == 0 && plausible {
        return Ok(declared);
    }
    Ok(measure(path, u64::MAX)?.seconds)
}
