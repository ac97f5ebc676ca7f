//! The audio stage: every track being encoded is decoded, resampled to 48 kHz float in
//! the canonical layout of its channel count (no downmix: 5.1(side) becomes 5.1 with
//! the same speakers), cut into 20 ms frames and encoded to Opus. Timestamps count
//! samples from the track's first decoded frame, so audio stays where it was; a hole
//! in the source's audio is filled with silence so that what follows stays in sync.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next as ff;

use super::{Msg, Outgoing};
use crate::encode::opus::{self, OpusEncoder, FRAME_SAMPLES, SAMPLE_RATE};
use crate::error::{Error, Result};
use crate::libav::{self, Resampler};

/// One audio track from decoder to Opus packets.
pub(crate) struct AudioTrack {
    decoder: ff::decoder::Audio,
    time_base: ff::Rational,
    resampler: Option<Resampler>,
    encoder: OpusEncoder,
    out: usize,
    /// Interleaved samples waiting for a full frame.
    fifo: Vec<f32>,
    /// Timestamp (in 1/48000) of the first sample in `fifo`.
    next_pts: Option<i64>,
    /// Samples fed to the encoder, padding excluded.
    samples_in: u64,
    damaged: u64,
    /// The source, for error messages.
    path: std::path::PathBuf,
}

/// Damaged audio packets tolerated per track (dropped, as players do).
const MAX_DAMAGED: u64 = 50;

impl AudioTrack {
    pub fn new(
        ist: &ff::format::stream::Stream<'_>,
        input: &Path,
        encoder: OpusEncoder,
        out: usize,
    ) -> Result<AudioTrack> {
        let id = ist.parameters().id();
        if ff::decoder::find(id).is_none() {
            return Err(Error::Unsupported {
                path: input.into(),
                what: format!("no decoder for audio codec {}", id.name()),
            });
        }
        let decoder = ff::codec::context::Context::from_parameters(ist.parameters())
            .map_err(Error::ffmpeg("reading audio parameters", input))?
            .decoder()
            .audio()
            .map_err(Error::ffmpeg("opening an audio decoder", input))?;
        Ok(AudioTrack {
            decoder,
            time_base: ist.time_base(),
            resampler: None,
            encoder,
            out,
            fifo: Vec::new(),
            next_pts: None,
            samples_in: 0,
            damaged: 0,
            path: input.to_path_buf(),
        })
    }

    fn decode(&mut self, packet: Option<&ff::Packet>, input: &Path, mux: &Sender<Outgoing>) -> Result<bool> {
        let sent = match packet {
            Some(p) => self.decoder.send_packet(p),
            None => self.decoder.send_eof(),
        };
        match sent {
            Ok(()) => {}
            Err(ff::Error::InvalidData) => {
                self.damaged += 1;
                if self.damaged > MAX_DAMAGED {
                    return Err(Error::Corrupt {
                        path: input.into(),
                        what: format!("more than {MAX_DAMAGED} damaged audio packets"),
                    });
                }
            }
            Err(e) => return Err(Error::Ffmpeg { op: "decoding audio", path: input.into(), source: e }),
        }
        let mut frame = ff::frame::Audio::empty();
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {}
                Err(ff::Error::Eof) => break,
                Err(ff::Error::Other { errno }) if errno == ff::ffi::EAGAIN => break,
                Err(ff::Error::InvalidData) => continue,
                Err(e) => return Err(Error::Ffmpeg { op: "decoding audio", path: input.into(), source: e }),
            }
            if frame.samples() == 0 {
                continue;
            }
            let at = frame.timestamp().or(frame.pts()).map(|t| {
                ff::rescale::Rescale::rescale(&t, self.time_base, ff::Rational(1, SAMPLE_RATE as i32))
            });
            match (self.next_pts, at) {
                (None, at) => self.next_pts = Some(at.unwrap_or(0)),
                (Some(_), Some(at)) => {
                    if !self.keep_in_step(at, &frame, input, mux)? {
                        continue;
                    }
                }
                (Some(_), None) => {}
            }
            if self.resampler.as_ref().is_none_or(|r| !r.accepts(&frame)) {
                // Samples still inside the old resampler come first.
                if let Some(r) = self.resampler.as_mut() {
                    r.flush(&mut self.fifo).map_err(Error::ffmpeg("resampling audio", input))?;
                }
                let mask = opus::layout_mask(self.encoder.channels());
                self.resampler = Some(
                    Resampler::for_frame(&frame, mask, SAMPLE_RATE)
                        .map_err(Error::ffmpeg("setting up audio resampling", input))?,
                );
            }
            let r = self.resampler.as_mut().expect("set just above");
            r.convert(&frame, &mut self.fifo).map_err(Error::ffmpeg("resampling audio", input))?;
            if !self.encode_frames(mux)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Keeps the track in step with its timestamps, which the samples alone would lose:
    /// a hole in the source's audio (a broadcast dropout) is filled with silence, so
    /// what follows still plays with its pictures; a frame lying wholly before where
    /// the track already is, by at most 2 s (audio repeated around a splice), is
    /// dropped. A clock that goes back further is broken, not a repeat: its samples are
    /// kept and counted on. Deviations under 100 ms are left alone. False when this
    /// frame is to be skipped.
    fn keep_in_step(
        &mut self,
        at: i64,
        frame: &ff::frame::Audio,
        input: &Path,
        mux: &Sender<Outgoing>,
    ) -> Result<bool> {
        const TOLERANCE: i64 = SAMPLE_RATE as i64 / 10;
        const MAX_REPEAT: i64 = SAMPLE_RATE as i64 * 2;
        // Longer holes are left as a jump of the timestamps (nothing to fill a broken
        // clock with hours of silence).
        const MAX_FILL: i64 = SAMPLE_RATE as i64 * 600;
        let ch = self.encoder.channels();
        let expected = self.next_pts.unwrap_or(at) + (self.fifo.len() / ch) as i64;
        let hole = at.saturating_sub(expected);
        let length = frame.samples() as i64 * SAMPLE_RATE as i64 / i64::from(frame.rate().max(1));
        if hole < -MAX_REPEAT {
            return Ok(true);
        }
        if at.saturating_add(length) <= expected - TOLERANCE {
            return Ok(false);
        }
        if hole <= TOLERANCE {
            return Ok(true);
        }
        // What the resampler holds belongs before the hole.
        if let Some(mut r) = self.resampler.take() {
            r.flush(&mut self.fifo).map_err(Error::ffmpeg("resampling audio", input))?;
        }
        if hole > MAX_FILL {
            // Pad to a whole frame, then continue at the new time.
            let partial = self.fifo.len() % (FRAME_SAMPLES * ch);
            if partial > 0 {
                self.fifo.resize(self.fifo.len() + FRAME_SAMPLES * ch - partial, 0.0);
            }
            if !self.encode_frames(mux)? {
                return Err(super::stopped("audio"));
            }
            self.next_pts = Some(at);
            return Ok(true);
        }
        let mut left = hole as usize * ch;
        while left > 0 {
            let n = left.min(FRAME_SAMPLES * ch * 50);
            self.fifo.resize(self.fifo.len() + n, 0.0);
            left -= n;
            if !self.encode_frames(mux)? {
                return Err(super::stopped("audio"));
            }
        }
        Ok(true)
    }

    /// Encodes every full frame in the FIFO. False when the muxer is gone.
    fn encode_frames(&mut self, mux: &Sender<Outgoing>) -> Result<bool> {
        let ch = self.encoder.channels();
        let frame_len = FRAME_SAMPLES * ch;
        let mut offset = 0;
        let fifo = std::mem::take(&mut self.fifo);
        let mut alive = true;
        while alive && fifo.len() - offset >= frame_len {
            let chunk = &fifo[offset..offset + frame_len];
            offset += frame_len;
            self.samples_in += FRAME_SAMPLES as u64;
            alive = self.send(chunk, None, mux)?;
        }
        self.fifo = fifo;
        self.fifo.drain(..offset);
        Ok(alive)
    }

    fn send(&mut self, chunk: &[f32], discard_end: Option<u32>, mux: &Sender<Outgoing>) -> Result<bool> {
        let pts = self.next_pts.unwrap_or(0);
        let data = self.encoder.encode(chunk)?;
        let mut packet = ff::Packet::copy(data);
        // Matroska's rule: a block's timestamp is that of its first sample *after* the
        // codec delay (pre-skip) is removed, so the first packet sits exactly where the
        // source's first sample was. (FFmpeg 5.1's own Opus path writes it `pre_skip`
        // early and so shifts every other track 6.5 ms late.)
        packet.set_pts(Some(pts));
        packet.set_dts(Some(pts));
        packet.set_duration(FRAME_SAMPLES as i64);
        if let Some(end) = discard_end.filter(|e| *e > 0) {
            libav::set_skip_samples_at_end(&mut packet, end).map_err(|source| Error::Ffmpeg {
                op: "marking audio padding",
                path: self.path.clone(),
                source,
            })?;
        }
        self.next_pts = Some(pts + FRAME_SAMPLES as i64);
        let tb = ff::Rational(1, SAMPLE_RATE as i32);
        Ok(mux.send(Outgoing { stream: self.out, packet, time_base: tb, is_video: false }).is_ok())
    }

    /// Drains decoder and resampler, then pads the tail so that every real sample
    /// survives the decoder's pre-skip; the padding is marked for discarding.
    fn finish(&mut self, input: &Path, mux: &Sender<Outgoing>) -> Result<bool> {
        if !self.decode(None, input, mux)? {
            return Ok(false);
        }
        if let Some(r) = self.resampler.as_mut() {
            r.flush(&mut self.fifo).map_err(Error::ffmpeg("resampling audio", input))?;
        }
        if !self.encode_frames(mux)? {
            return Ok(false);
        }
        let ch = self.encoder.channels();
        let real = (self.fifo.len() / ch) as u64;
        if self.next_pts.is_none() {
            return Ok(true); // the track had no audio at all
        }
        let pre_skip = u64::from(self.encoder.pre_skip());
        // Total samples the decoder must produce: everything fed + pre-skip.
        let needed = self.samples_in + real + pre_skip;
        let mut coded = self.samples_in;
        let frame_len = FRAME_SAMPLES * ch;
        let mut tail = std::mem::take(&mut self.fifo);
        while coded < needed {
            tail.resize(frame_len, 0.0);
            coded += FRAME_SAMPLES as u64;
            let discard = (coded >= needed).then(|| (coded - needed) as u32);
            if !self.send(&tail, discard, mux)? {
                return Ok(false);
            }
            tail.clear();
        }
        Ok(true)
    }
}

/// Runs every audio track until the demuxer says the stream ended.
pub(crate) fn run(
    mut tracks: Vec<AudioTrack>,
    rx: Receiver<Msg<(usize, ff::Packet)>>,
    mux: Sender<Outgoing>,
    input: &Path,
    stop: &AtomicBool,
) -> Result<()> {
    if tracks.is_empty() {
        return Ok(());
    }
    let stopped = || super::stopped("audio");
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        match rx.recv() {
            Ok(Msg::Item((i, packet))) => {
                if !tracks[i].decode(Some(&packet), input, &mux)? {
                    return Err(stopped());
                }
            }
            Ok(Msg::End) => break,
            Err(_) => return Err(stopped()),
        }
    }
    for t in &mut tracks {
        if !t.finish(input, &mux)? {
            return Err(stopped());
        }
    }
    Ok(())
}
