//! Probe: what a media file holds — container, streams, chapters, metadata — and the
//! HDR classification of its main video stream (which needs the first decoded frames:
//! x265 and HDR10+ put their metadata only there).

pub mod hdr;
pub(crate) mod timeline;

use std::path::{Path, PathBuf};

use ff::media::Type as Medium;
use ffmpeg_next as ff;

use crate::libav;
use serde::{Deserialize, Serialize};

use crate::encode::svt::{ContentLight, MasteringDisplay};
use crate::error::{Error, Result};
pub use crate::libav::DoviConfig;
pub use hdr::HdrKind;

/// Everything the planner and the verifier need to know about a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    pub path: PathBuf,
    /// Container short name(s), e.g. `matroska,webm` or `mov,mp4,m4a,3gp,3g2,mj2`.
    pub container: String,
    pub size: u64,
    /// Seconds.
    pub duration: f64,
    /// Bits per second of the whole file.
    pub bit_rate: u64,
    pub streams: Vec<StreamInfo>,
    pub chapters: Vec<Chapter>,
    pub metadata: Vec<(String, String)>,
    /// Index into `streams` of the video stream to encode (cover art excluded).
    pub main_video: Option<usize>,
    pub hdr: HdrInfo,
}

impl MediaInfo {
    pub fn video(&self) -> Option<(&StreamInfo, &VideoInfo)> {
        let s = &self.streams[self.main_video?];
        match &s.detail {
            StreamDetail::Video(v) => Some((s, v)),
            _ => None,
        }
    }

    /// Streams of `kind`. Cover art counts as an attachment, not as video: Matroska
    /// stores it as an attachment, and FFmpeg shows image attachments as picture streams.
    pub fn count(&self, kind: StreamKind) -> usize {
        self.streams
            .iter()
            .filter(|s| if s.attached_pic { kind == StreamKind::Attachment } else { s.kind == kind })
            .count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    Video,
    Audio,
    Subtitle,
    Attachment,
    Data,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub index: usize,
    pub kind: StreamKind,
    /// FFmpeg codec name: `h264`, `hevc`, `aac`, `subrip`, `ttf`...
    pub codec: String,
    pub language: Option<String>,
    pub title: Option<String>,
    pub default: bool,
    pub forced: bool,
    /// Cover art stored as a one-picture video stream.
    pub attached_pic: bool,
    pub bit_rate: u64,
    pub detail: StreamDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum StreamDetail {
    Video(VideoInfo),
    Audio(AudioInfo),
    Subtitle { bitmap: bool },
    Attachment { filename: Option<String>, mimetype: Option<String> },
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Frames per second as a fraction (average rate, else the stream's base rate).
    pub frame_rate: (i32, i32),
    pub pix_fmt: String,
    pub bit_depth: u8,
    /// log2 of the chroma subsampling (1, 1 for 4:2:0; 0, 0 for 4:4:4).
    pub chroma_shift: (u8, u8),
    /// H.273 code points.
    pub primaries: u8,
    pub transfer: u8,
    pub matrix: u8,
    /// 0 unspecified, 1 limited (tv), 2 full (pc).
    pub range: u8,
    /// FFmpeg's AVChromaLocation (0 unspecified, 1 left, 2 center, 3 top-left...).
    pub chroma_location: u8,
    /// FFmpeg's AVFieldOrder (0 unknown, 1 progressive, 2.. interlaced).
    pub field_order: u8,
    /// Frame count: the container's, or estimated from duration and rate.
    pub frames: u64,
    /// Shape of a pixel, width:height (1:1 square; 32:27 for 16:9 NTSC DVD).
    pub sample_aspect: (u32, u32),
    /// Clockwise turn (0, 90, 180, 270) that shows the picture upright (phones).
    pub rotation: u16,
}

impl VideoInfo {
    /// Width over height as displayed (pixel shape applied).
    pub fn display_aspect(&self) -> f64 {
        display_aspect(self.width, self.height, self.sample_aspect)
    }

    pub fn fps(&self) -> f64 {
        if self.frame_rate.1 == 0 {
            0.0
        } else {
            f64::from(self.frame_rate.0) / f64::from(self.frame_rate.1)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    pub channels: u16,
    /// FFmpeg's native channel mask (which speakers), 0 when the layout is not native.
    pub mask: u64,
    /// `stereo`, `5.1(side)`, `7.1`...
    pub layout: String,
    pub sample_rate: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chapter {
    /// Seconds.
    pub start: f64,
    pub end: f64,
    pub title: Option<String>,
}

/// HDR classification of the main video stream and its static metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HdrInfo {
    pub kind: HdrKind,
    pub mastering_display: Option<MasteringDisplay>,
    pub content_light: Option<ContentLight>,
    pub dovi: Option<DoviConfig>,
}

/// How many decoded frames are inspected for HDR side data.
const HDR_PROBE_FRAMES: usize = 3;
/// Give up looking for the first frames after this many packets of the video stream.
const HDR_PROBE_PACKETS: usize = 500;

/// Reads a file's container, streams, chapters and metadata, and decodes the first
/// frames of its main video stream to classify HDR. A file that cannot be opened or
/// whose video does not decode is an error naming the file.
pub fn probe(path: &Path) -> Result<MediaInfo> {
    crate::init();
    let meta = std::fs::metadata(path).map_err(Error::io("reading metadata", path))?;
    if !meta.is_file() {
        return Err(Error::Unsupported { path: path.into(), what: "not a regular file".into() });
    }
    if meta.len() == 0 {
        return Err(Error::EmptyFile { path: path.into() });
    }
    let mut ictx = ff::format::input(&path).map_err(Error::ffmpeg("opening the container", path))?;

    let mut streams = Vec::new();
    for st in ictx.streams() {
        streams.push(stream_info(&st));
    }
    let main_video = pick_main_video(&streams);

    let declared = {
        let d = ictx.duration();
        if d > 0 {
            d as f64 / f64::from(ff::ffi::AV_TIME_BASE)
        } else {
            ictx.streams().map(|s| s.duration() as f64 * f64::from(s.time_base())).fold(0.0, f64::max)
        }
    };
    // MPEG-TS/PS: a clock that jumps mid-file makes the declared duration meaningless.
    let duration = if libav::allows_timestamp_jumps(&ictx) {
        timeline::checked_duration(path, declared, meta.len())?
    } else {
        declared
    };
    for s in &mut streams {
        if let StreamDetail::Video(v) = &mut s.detail {
            // A count beyond the file's length (a stream duration spanning a clock jump)
            // is not believed either.
            let by_duration = (duration * v.fps()).round().max(0.0);
            if v.frames == 0 || (v.frames as f64 > by_duration * 1.05 + 1.0 && by_duration > 0.0) {
                v.frames = by_duration as u64;
            }
        }
    }

    let chapters = ictx
        .chapters()
        .map(|c| {
            let tb = f64::from(c.time_base());
            Chapter {
                start: c.start() as f64 * tb,
                end: c.end() as f64 * tb,
                title: c.metadata().get("title").map(str::to_owned),
            }
        })
        .collect();
    let metadata = ictx.metadata().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let container = ictx.format().name().to_owned();
    let bit_rate = ictx.bit_rate().max(0) as u64;

    let hdr = match main_video {
        Some(i) => probe_hdr(&mut ictx, i, path)?,
        None => HdrInfo { kind: HdrKind::Sdr, mastering_display: None, content_light: None, dovi: None },
    };

    Ok(MediaInfo {
        path: path.to_path_buf(),
        container,
        size: meta.len(),
        duration,
        bit_rate,
        streams,
        chapters,
        metadata,
        main_video,
        hdr,
    })
}

/// The first video stream that is not cover art, preferring one flagged default.
fn pick_main_video(streams: &[StreamInfo]) -> Option<usize> {
    let candidates = || streams.iter().filter(|s| s.kind == StreamKind::Video && !s.attached_pic);
    candidates().find(|s| s.default).or_else(|| candidates().next()).map(|s| s.index)
}

/// Width over height of `width` × `height` pixels shaped `sample_aspect` (width:height).
pub fn display_aspect(width: u32, height: u32, (n, d): (u32, u32)) -> f64 {
    f64::from(width) * f64::from(n.max(1)) / (f64::from(height.max(1)) * f64::from(d.max(1)))
}

/// How long one stream lasts, when the container says: its duration field, else the
/// `DURATION` tag Matroska muxers write (`01:23:45.678000000`).
fn stream_seconds(st: &ff::format::stream::Stream<'_>) -> Option<f64> {
    if st.duration() > 0 {
        return Some(st.duration() as f64 * f64::from(st.time_base()));
    }
    // mkvmerge writes `DURATION`, older versions `DURATION-eng`.
    st.metadata()
        .iter()
        .find(|(k, _)| k.to_ascii_uppercase().starts_with("DURATION"))
        .and_then(|(_, v)| duration_tag(v))
}

/// `01:23:45.678000000` in seconds.
fn duration_tag(tag: &str) -> Option<f64> {
    let mut parts = tag.trim().split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let seconds = h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?;
    (seconds.is_finite() && seconds > 0.0).then_some(seconds)
}

fn stream_info(st: &ff::format::stream::Stream<'_>) -> StreamInfo {
    let params = st.parameters();
    let codec = params.id().name().to_owned();
    let disposition = libav::disposition_bits(st);
    let md = st.metadata();
    let attached_pic = disposition & ff::ffi::AV_DISPOSITION_ATTACHED_PIC != 0;
    let (kind, detail) = match params.medium() {
        Medium::Video => {
            let raw = libav::video_params(&params);
            let (bit_depth, cw, ch) = libav::pixel_layout(raw.pix_fmt).unwrap_or((8, 1, 1));
            let rate = {
                let avg = st.avg_frame_rate();
                if avg.numerator() > 0 && avg.denominator() > 0 {
                    avg
                } else {
                    st.rate()
                }
            };
            let pix_fmt = libav::pixel_format_name(raw.pix_fmt);
            (
                StreamKind::Video,
                StreamDetail::Video(VideoInfo {
                    width: raw.width,
                    height: raw.height,
                    frame_rate: (rate.numerator(), rate.denominator()),
                    pix_fmt,
                    bit_depth,
                    chroma_shift: (cw, ch),
                    primaries: raw.primaries,
                    transfer: raw.transfer,
                    matrix: raw.matrix,
                    range: raw.range,
                    chroma_location: raw.chroma_location,
                    field_order: raw.field_order,
                    frames: match st.frames() {
                        n if n > 0 => n as u64,
                        // The stream's own length (a Matroska DURATION tag, say), not the
                        // file's: a subtitle that never ends must not make a film endless.
                        _ => stream_seconds(st).map_or(0, |s| (s * f64::from(rate)).round().max(0.0) as u64),
                    },
                    sample_aspect: libav::sample_aspect_ratio(st),
                    rotation: libav::display_rotation(st),
                }),
            )
        }
        Medium::Audio => {
            let (channels, sample_rate, mask, layout) = libav::audio_params(&params);
            (StreamKind::Audio, StreamDetail::Audio(AudioInfo { channels, mask, layout, sample_rate }))
        }
        Medium::Subtitle => (
            StreamKind::Subtitle,
            StreamDetail::Subtitle {
                bitmap: matches!(
                    codec.as_str(),
                    "hdmv_pgs_subtitle" | "dvd_subtitle" | "dvb_subtitle" | "xsub"
                ),
            },
        ),
        Medium::Attachment => (
            StreamKind::Attachment,
            StreamDetail::Attachment {
                filename: md.get("filename").map(str::to_owned),
                mimetype: md.get("mimetype").map(str::to_owned),
            },
        ),
        _ => (StreamKind::Data, StreamDetail::Other),
    };
    StreamInfo {
        index: st.index(),
        kind,
        codec,
        language: md.get("language").filter(|l| *l != "und").map(str::to_owned),
        title: md.get("title").map(str::to_owned),
        default: disposition & ff::ffi::AV_DISPOSITION_DEFAULT != 0,
        forced: disposition & ff::ffi::AV_DISPOSITION_FORCED != 0,
        attached_pic,
        bit_rate: params.bit_rate().max(0) as u64,
        detail,
    }
}

/// Decodes the first frames of stream `index` and classifies its dynamic range from the
/// stream's side data and the frames'.
fn probe_hdr(ictx: &mut ff::format::context::Input, index: usize, path: &Path) -> Result<HdrInfo> {
    let st = ictx.stream(index).ok_or_else(|| Error::NoVideoStream { path: path.into() })?;
    let mut side = libav::stream_hdr(&st);
    let transfer = libav::video_params(&st.parameters()).transfer;
    let mut decoder = open_video_decoder(&st, path, false)?;

    let mut frame = ff::frame::Video::empty();
    let mut frames = 0usize;
    let mut packets = 0usize;
    let mut inspect = |decoder: &mut ff::decoder::Video, frames: &mut usize| {
        while *frames < HDR_PROBE_FRAMES && decoder.receive_frame(&mut frame).is_ok() {
            side.merge(libav::frame_hdr(&frame));
            *frames += 1;
        }
    };
    for (stream, packet) in ictx.packets() {
        if stream.index() != index {
            continue;
        }
        packets += 1;
        // A damaged packet is not fatal here; the transcode decides what is.
        let _ = decoder.send_packet(&packet);
        inspect(&mut decoder, &mut frames);
        if frames >= HDR_PROBE_FRAMES || packets >= HDR_PROBE_PACKETS {
            break;
        }
    }
    if frames < HDR_PROBE_FRAMES {
        let _ = decoder.send_eof();
        inspect(&mut decoder, &mut frames);
    }
    if frames == 0 {
        return Err(Error::Corrupt { path: path.into(), what: "no video frame could be decoded".into() });
    }
    Ok(HdrInfo {
        kind: hdr::classify(transfer, &side),
        mastering_display: side.mastering_display,
        content_light: side.content_light,
        dovi: side.dovi,
    })
}

/// Opens a decoder for a video stream; `threaded` uses frame threading on every core.
pub(crate) fn open_video_decoder(
    st: &ff::format::stream::Stream<'_>,
    path: &Path,
    threaded: bool,
) -> Result<ff::decoder::Video> {
    let params = st.parameters();
    let id = params.id();
    if ff::codec::decoder::find(id).is_none() {
        return Err(Error::Unsupported {
            path: path.into(),
            what: format!("no decoder for video codec {}", id.name()),
        });
    }
    let mut ctx = ff::codec::context::Context::from_parameters(params)
        .map_err(Error::ffmpeg("reading the video codec parameters", path))?;
    if threaded {
        ctx.set_threading(ff::threading::Config {
            kind: ff::threading::Type::Frame,
            count: 0,
            ..Default::default()
        });
    }
    ctx.decoder().video().map_err(Error::ffmpeg("opening the video decoder", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matroska_duration_tags_are_read() {
        assert_eq!(duration_tag("00:00:02.023000000"), Some(2.023));
        assert_eq!(duration_tag("01:23:45.5"), Some(5025.5));
        assert_eq!(duration_tag("1193:02:48.56800000").map(|s| s.round()), Some(4294969.0));
        for bad in ["", "12.5", "a:b:c", "00:00:00.000", "1:2:3:4", "00:00:inf"] {
            assert_eq!(duration_tag(bad), None, "{bad}");
        }
    }
}
