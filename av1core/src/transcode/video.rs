//! The video stages: a frame-threaded decoder (with pixel-format conversion only when
//! the decoder's output is not what SVT-AV1 takes), and the SVT-AV1 encoder, each on
//! its own thread so decoding and encoding overlap.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};
use ff::format::Pixel;
use ffmpeg_next as ff;

use super::picture::PictureFilter;
use super::{Msg, Outgoing};
use crate::encode::svt::{Encoder, Picture};
use crate::error::{Error, Result};
use crate::plan::Plan;

/// A decoded frame with the timestamp the encoder should carry.
pub(crate) struct Frame {
    pub frame: ff::frame::Video,
    pub pts: i64,
}

/// Share of damaged video packets tolerated (concealed by the decoder, as players do)
/// before the file is declared corrupt.
const MAX_DAMAGED_SHARE: f64 = 0.01;
const MAX_DAMAGED_ALWAYS: u64 = 2;

/// Decodes video packets and hands frames in SVT-AV1's layout to the encoder. Returns
/// the number of damaged packets the decoder skipped.
pub(crate) fn decode(
    mut decoder: ff::decoder::Video,
    input: &Path,
    plan: &Plan,
    time_base: ff::Rational,
    rx: Receiver<Msg<ff::Packet>>,
    tx: Sender<Msg<Frame>>,
    stop: &AtomicBool,
) -> Result<u64> {
    let vp = &plan.video;
    let target = if vp.bit_depth > 8 { Pixel::YUV420P10LE } else { Pixel::YUV420P };
    // Deinterlaced and turned upright first, as decoded (the fields are still apart
    // before any chroma conversion), then converted at the planned size.
    // An odd size is converted whole; the encoder reads the even part of it.
    let (width, height) = vp.cut_from.unwrap_or((vp.width, vp.height));
    let mut conv = Converter { scaler: None, target, width, height };
    let mut filter = PictureFilter::new(vp.deinterlace, vp.rotation);
    let mut send = |mut frame: ff::frame::Video, pts: i64| -> Result<()> {
        let frame = conv.convert(&mut frame, input)?;
        tx.send(Msg::Item(Frame { frame, pts })).map_err(|_| super::stopped("video decode"))
    };
    let mut stamps = Stamps::new(vp.frame_rate, time_base);
    let mut decoded = ff::frame::Video::empty();
    let mut packets = 0u64;
    let mut damaged = 0u64;
    let stopped = || super::stopped("video decode");

    let mut drain = |decoder: &mut ff::decoder::Video, stamps: &mut Stamps| -> Result<()> {
        loop {
            match decoder.receive_frame(&mut decoded) {
                Ok(()) => {}
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == ff::ffi::EAGAIN => return Ok(()),
                Err(e) => return Err(Error::Ffmpeg { op: "decoding video", path: input.into(), source: e }),
            }
            let pts = stamps.next(decoded.timestamp());
            match filter.as_mut() {
                Some(f) => f.push(&mut decoded, pts, input, &mut send)?,
                None => send(std::mem::replace(&mut decoded, ff::frame::Video::empty()), pts)?,
            }
        }
    };

    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        match rx.recv() {
            Ok(Msg::Item(packet)) => {
                packets += 1;
                match decoder.send_packet(&packet) {
                    Ok(()) => {}
                    Err(ff::Error::InvalidData) => {
                        damaged += 1;
                        let allowed = MAX_DAMAGED_ALWAYS.max((packets as f64 * MAX_DAMAGED_SHARE) as u64);
                        if damaged > allowed && packets > 10 {
                            return Err(Error::Corrupt {
                                path: input.into(),
                                what: format!("{damaged} of {packets} video packets are damaged"),
                            });
                        }
                    }
                    Err(e) => {
                        return Err(Error::Ffmpeg { op: "decoding video", path: input.into(), source: e })
                    }
                }
                drain(&mut decoder, &mut stamps)?;
            }
            Ok(Msg::End) => break,
            Err(_) => return Err(stopped()),
        }
    }
    decoder.send_eof().map_err(Error::ffmpeg("flushing the video decoder", input))?;
    drain(&mut decoder, &mut stamps)?;
    if let Some(f) = filter.as_mut() {
        f.finish(input, &mut send)?;
    }
    if stamps.last.is_none() {
        return Err(Error::Corrupt { path: input.into(), what: "no video frame could be decoded".into() });
    }
    if damaged > MAX_DAMAGED_ALWAYS.max((packets as f64 * MAX_DAMAGED_SHARE) as u64) {
        return Err(Error::Corrupt {
            path: input.into(),
            what: format!("{damaged} of {packets} video packets are damaged"),
        });
    }
    tx.send(Msg::End).map_err(|_| stopped())?;
    Ok(damaged)
}

/// Timestamps for the encoder: the decoder's best-effort timestamp, made strictly
/// increasing (a repeated or missing one gets the previous plus one frame).
struct Stamps {
    last: Option<i64>,
    step: i64,
}

impl Stamps {
    fn new(rate: (i32, i32), tb: ff::Rational) -> Stamps {
        // One frame in the stream's time base.
        let step = if rate.0 > 0 && rate.1 > 0 && tb.numerator() > 0 {
            (i64::from(tb.denominator()) * i64::from(rate.1)
                / (i64::from(tb.numerator()) * i64::from(rate.0)))
            .max(1)
        } else {
            1
        };
        Stamps { last: None, step }
    }

    fn next(&mut self, ts: Option<i64>) -> i64 {
        let pts = match (ts, self.last) {
            (Some(t), Some(l)) if t > l => t,
            (Some(t), None) => t,
            (_, Some(l)) => l + self.step,
            (None, None) => 0,
        };
        self.last = Some(pts);
        pts
    }
}

/// Converts decoded frames to 4:2:0 at the encoder's bit depth and size, only when
/// they are not already so.
struct Converter {
    scaler: Option<(ff::software::scaling::Context, (Pixel, u32, u32))>,
    target: Pixel,
    width: u32,
    height: u32,
}

impl Converter {
    /// Returns the frame to encode; a frame already in the right layout is moved out
    /// (leaving `frame` empty for the next decode), never copied.
    fn convert(&mut self, frame: &mut ff::frame::Video, input: &Path) -> Result<ff::frame::Video> {
        let fmt = frame.format();
        // Full-range 4:2:0 has the same layout; the range travels in the colour description.
        let same_layout = fmt == self.target || (fmt == Pixel::YUVJ420P && self.target == Pixel::YUV420P);
        if same_layout && frame.width() == self.width && frame.height() == self.height {
            return Ok(std::mem::replace(frame, ff::frame::Video::empty()));
        }
        let key = (fmt, frame.width(), frame.height());
        if self.scaler.as_ref().is_none_or(|(_, k)| *k != key) {
            let ctx = ff::software::scaling::Context::get(
                fmt,
                frame.width(),
                frame.height(),
                self.target,
                self.width,
                self.height,
                ff::software::scaling::Flags::BICUBIC,
            )
            .map_err(Error::ffmpeg("setting up pixel format conversion", input))?;
            self.scaler = Some((ctx, key));
        }
        let (scaler, _) = self.scaler.as_mut().expect("set just above");
        let mut out = ff::frame::Video::empty();
        scaler.run(&*frame, &mut out).map_err(Error::ffmpeg("converting pixel format", input))?;
        Ok(out)
    }
}

/// Feeds frames to SVT-AV1 and passes its packets to the muxer; returns after the last
/// packet (which still carries a frame).
pub(crate) fn encode(
    mut encoder: Encoder,
    rx: Receiver<Msg<Frame>>,
    mux: Sender<Outgoing>,
    out_stream: usize,
    time_base: ff::Rational,
    stop: &AtomicBool,
) -> Result<()> {
    let result = encode_all(&mut encoder, rx, mux, out_stream, time_base, stop);
    if result.is_err() {
        // Draining what is in flight takes seconds: not on the way of a cancel.
        encoder.abandon();
    }
    result
}

fn encode_all(
    encoder: &mut Encoder,
    rx: Receiver<Msg<Frame>>,
    mux: Sender<Outgoing>,
    out_stream: usize,
    time_base: ff::Rational,
    stop: &AtomicBool,
) -> Result<()> {
    let stopped = || super::stopped("video encode");
    let cfg = encoder.config().clone();
    let step = Stamps::new((cfg.fps_num as i32, cfg.fps_den as i32), time_base).step;
    let forward = |p: &crate::encode::svt::Packet<'_>| -> bool {
        if p.data().is_empty() {
            return true;
        }
        // Stored without temporal delimiters (as Matroska does anyway), so the bytes the
        // check stage hashes are the bytes in the file.
        let mut packet = match super::check::strip_temporal_delimiters(p.data()) {
            Some(stripped) => ff::Packet::copy(&stripped),
            None => ff::Packet::copy(p.data()),
        };
        packet.set_pts(Some(p.pts()));
        packet.set_dts(Some(p.pts()));
        packet.set_duration(step);
        if p.is_keyframe() {
            packet.set_flags(ff::packet::Flags::KEY);
        }
        mux.send(Outgoing { stream: out_stream, packet, time_base, is_video: true }).is_ok()
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        match rx.recv() {
            Ok(Msg::Item(Frame { frame, pts })) => {
                let pic = Picture {
                    planes: [frame.data(0), frame.data(1), frame.data(2)],
                    strides: [frame.stride(0), frame.stride(1), frame.stride(2)],
                    pts,
                    keyframe: false,
                };
                encoder.send(&pic)?;
                while let Some(p) = encoder.receive(false)? {
                    if !forward(&p) {
                        return Err(stopped());
                    }
                }
            }
            Ok(Msg::End) => break,
            Err(_) => return Err(stopped()),
        }
    }
    encoder.finish()?;
    // Until the packet flagged last (which still carries a frame); `None` after it.
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        match encoder.receive(true)? {
            Some(p) => {
                if !forward(&p) {
                    return Err(stopped());
                }
            }
            None => return Ok(()),
        }
    }
}
