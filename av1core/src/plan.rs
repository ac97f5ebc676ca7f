//! The plan for one file: CRF, bit depth, colour, and what happens to every stream.
//! One function, [`plan`], that the dry run, the standalone mode and the master call.

pub mod quality;

use serde::{Deserialize, Serialize};

use crate::encode::svt::{ColorDescription, ContentLight, MasteringDisplay};
use crate::error::{Error, Result};
use crate::probe::{HdrKind, MediaInfo, StreamDetail, StreamInfo, StreamKind, VideoInfo};
pub use quality::Tables;

/// Encoder and policy settings shared by every file of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// SVT-AV1 preset 0..=13.
    pub preset: i8,
    /// Use this CRF instead of the table's.
    pub crf: Option<u8>,
    /// Added to the table's CRF for HDR sources.
    pub hdr_crf_offset: i8,
    /// Keyframe interval in seconds.
    pub keyint_seconds: f64,
    /// Encoder threads (0 = all cores).
    pub threads: u32,
    /// Film grain synthesis level 0..=50.
    pub film_grain: u8,
    /// Copy every audio track unchanged instead of encoding to Opus.
    pub copy_audio: bool,
    /// Encode the HDR10 base layer of HDR10+ and Dolby Vision sources instead of skipping them.
    pub dynamic_hdr_base_layer: bool,
    /// Re-encode sources that are already AV1.
    pub reencode_av1: bool,
    /// Further SVT-AV1 parameters (`key=value` as in the encoder app).
    pub svt_params: Vec<(String, String)>,
    pub tables: Tables,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            preset: 8,
            crf: None,
            hdr_crf_offset: 0,
            keyint_seconds: 10.0,
            threads: 0,
            film_grain: 0,
            copy_audio: false,
            dynamic_hdr_base_layer: false,
            reencode_av1: false,
            svt_params: Vec::new(),
            tables: Tables::default(),
        }
    }
}

impl Settings {
    pub fn validate(&self) -> Result<()> {
        if !(0..=13).contains(&self.preset) {
            return Err(Error::Config(format!("preset {} is outside 0..=13", self.preset)));
        }
        if let Some(crf) = self.crf {
            if !(1..=63).contains(&crf) {
                return Err(Error::Config(format!("CRF {crf} is outside 1..=63")));
            }
        }
        if !(self.keyint_seconds >= 0.0 && self.keyint_seconds <= 60.0) {
            return Err(Error::Config(format!(
                "keyframe interval {} s is outside 0..=60",
                self.keyint_seconds
            )));
        }
        if self.film_grain > 50 {
            return Err(Error::Config(format!("film grain {} is outside 0..=50", self.film_grain)));
        }
        self.tables.validate()
    }
}

/// Why a file is not encoded. Not an error: the file is fine, there is just nothing
/// (worth) doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// HDR10+ or Dolby Vision: their dynamic metadata cannot be carried.
    DynamicHdr,
    AlreadyAv1,
    /// The result would not be enough smaller.
    NotWorthIt,
    Manual,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::DynamicHdr => "dynamic HDR",
            SkipReason::AlreadyAv1 => "already AV1",
            SkipReason::NotWorthIt => "not worth it",
            SkipReason::Manual => "manual",
        }
    }
}

/// What to do with a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "decision")]
pub enum Decision {
    Encode(Box<Plan>),
    Skip { reason: SkipReason, detail: String },
}

/// What happens to one input stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum StreamAction {
    /// The main video stream, to AV1.
    EncodeVideo,
    /// To Opus at `bitrate` bits per second, keeping every channel.
    EncodeOpus { bitrate: u32, channels: u16 },
    /// Packets copied unchanged.
    Copy,
    /// Text subtitles Matroska cannot hold as they are (MP4's mov_text): to SRT.
    ToSrt,
    /// Cover art stored as a picture stream: kept as a Matroska attachment.
    CoverArt,
    /// Not carried, with the reason (e.g. a data stream Matroska has no place for).
    Drop { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamPlan {
    pub index: usize,
    pub kind: StreamKind,
    pub codec: String,
    #[serde(flatten)]
    pub action: StreamAction,
}

/// Everything the transcode needs to know about the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoPlan {
    pub stream: usize,
    pub width: u32,
    pub height: u32,
    /// Shape of a pixel (width:height), kept so that anamorphic video (DVD, SD TV)
    /// is displayed as wide as its source.
    pub sample_aspect: (u32, u32),
    /// Clockwise turn applied to every picture before encoding (a phone's portrait
    /// video); `width`, `height` and `sample_aspect` are those after the turn.
    pub rotation: u16,
    /// The upright decoded size when it is odd: SVT-AV1 encodes only even sizes (4:2:0),
    /// so its last column and/or row is left out and the rest of every picture is kept
    /// as it is, unscaled; `width` and `height` are the encoded, even size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_from: Option<(u32, u32)>,
    /// Pictures flagged interlaced are deinterlaced (the source's field order says
    /// interlaced: DVD, broadcast TV); AV1 has no fields.
    pub deinterlace: bool,
    /// Frames per second as a fraction.
    pub frame_rate: (i32, i32),
    pub class: String,
    pub family: String,
    pub crf: u8,
    pub preset: i8,
    /// 8 or 10.
    pub bit_depth: u8,
    /// In frames.
    pub keyint: u32,
    pub threads: u32,
    pub film_grain: u8,
    pub hdr: HdrKind,
    pub color: Option<ColorDescription>,
    pub mastering_display: Option<MasteringDisplay>,
    pub content_light: Option<ContentLight>,
    pub svt_params: Vec<(String, String)>,
}

impl VideoPlan {
    /// The encoder settings that shape the result, as JSON: recorded with every result.
    pub fn settings_json(&self) -> String {
        serde_json::json!({
            "encoder": format!("SVT-AV1 {}", crate::encode::svt::version()),
            "preset": self.preset,
            "library_preset": crate::encode::svt::library_preset(self.preset),
            "crf": self.crf,
            "bit_depth": self.bit_depth,
            "keyint": self.keyint,
            "film_grain": self.film_grain,
            "svt_params": self.svt_params,
        })
        .to_string()
    }
}

/// The plan for one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub video: VideoPlan,
    pub streams: Vec<StreamPlan>,
    pub chapters: usize,
    /// Frames expected (for progress and ETA).
    pub frames: u64,
    /// Seconds.
    pub duration: f64,
}

impl Plan {
    /// Streams of `kind` the output must hold (cover art counts as an attachment).
    pub fn expected(&self, kind: StreamKind) -> usize {
        self.streams
            .iter()
            .filter(|s| match s.action {
                StreamAction::Drop { .. } => false,
                StreamAction::CoverArt => kind == StreamKind::Attachment,
                _ => s.kind == kind,
            })
            .count()
    }

    pub fn action(&self, index: usize) -> Option<&StreamAction> {
        self.streams.iter().find(|s| s.index == index).map(|s| &s.action)
    }

    /// What is done to the pictures besides encoding, for people: empty, or any of
    /// `, deinterlaced`, `, turned 90° clockwise`, `, 720x405 cut to 720x404 (…)`.
    pub fn picture_summary(&self) -> String {
        let mut out = String::new();
        if self.video.deinterlace {
            out.push_str(", deinterlaced");
        }
        if self.video.rotation != 0 {
            out.push_str(&format!(", turned {}° clockwise", self.video.rotation));
        }
        if let Some((w, h)) = self.video.cut_from {
            let (ew, eh) = (self.video.width, self.video.height);
            out.push_str(&format!(", {w}x{h} cut to {ew}x{eh} (SVT-AV1 encodes even sizes only)"));
        }
        out
    }

    /// One line per track for people: `a:1 eac3 5.1(side) -> opus 256k`.
    pub fn audio_summary(&self) -> String {
        let parts: Vec<String> = self
            .streams
            .iter()
            .filter(|s| s.kind == StreamKind::Audio)
            .map(|s| match &s.action {
                StreamAction::EncodeOpus { bitrate, channels } => {
                    format!("{} {}ch->opus {}k", s.codec, channels, bitrate / 1000)
                }
                StreamAction::Copy => format!("{} copy", s.codec),
                StreamAction::Drop { .. } => format!("{} drop", s.codec),
                _ => s.codec.clone(),
            })
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Subtitle codecs the Matroska muxer stores as they are.
const MKV_SUBTITLES: [&str; 7] =
    ["subrip", "ass", "ssa", "webvtt", "hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle"];

/// Decides what to do with a probed file. Errors only for files that cannot be
/// transcoded at all (no video); skips are decisions, not errors.
pub fn plan(info: &MediaInfo, settings: &Settings) -> Result<Decision> {
    settings.validate()?;
    let Some((vs, v)) = info.video() else {
        return Err(Error::NoVideoStream { path: info.path.clone() });
    };
    if let Some(skip) = refuse_or_skip(info, settings, vs, v)? {
        return Ok(skip);
    }
    let streams = info
        .streams
        .iter()
        .map(|s| StreamPlan {
            index: s.index,
            kind: s.kind,
            codec: s.codec.clone(),
            action: stream_action(s, vs.index, settings),
        })
        .collect();
    Ok(Decision::Encode(Box::new(Plan {
        video: video_plan(info, settings, vs, v),
        streams,
        chapters: info.chapters.len(),
        frames: v.frames,
        duration: info.duration,
    })))
}

/// What cannot be encoded (an error) or should not be (a skip), before any planning.
fn refuse_or_skip(
    info: &MediaInfo,
    settings: &Settings,
    vs: &StreamInfo,
    v: &VideoInfo,
) -> Result<Option<Decision>> {
    if v.width == 0 || v.height == 0 {
        return Err(Error::Unsupported {
            path: info.path.clone(),
            what: format!("video stream without dimensions ({}x{})", v.width, v.height),
        });
    }
    let min = crate::encode::svt::MIN_SIZE;
    if v.width < min || v.height < min {
        return Err(Error::Unsupported {
            path: info.path.clone(),
            what: format!("{}x{} video is below SVT-AV1's minimum of {min}x{min}", v.width, v.height),
        });
    }
    if v.frames <= 1 && info.duration < 0.5 {
        return Err(Error::Unsupported {
            path: info.path.clone(),
            what: "a still image, not a video".into(),
        });
    }
    if info.hdr.kind.is_dynamic() && !settings.dynamic_hdr_base_layer {
        return Ok(Some(Decision::Skip {
            reason: SkipReason::DynamicHdr,
            detail: format!("{} metadata cannot be carried into AV1 yet", info.hdr.kind),
        }));
    }
    if vs.codec == "av1" && !settings.reencode_av1 {
        return Ok(Some(Decision::Skip {
            reason: SkipReason::AlreadyAv1,
            detail: "the video is already AV1".into(),
        }));
    }

    Ok(None)
}

/// The video's plan: CRF from the tables (or the setting), bit depth, keyframes, colour,
/// the picture turned upright and cut to even sizes, HDR side data.
fn video_plan(info: &MediaInfo, settings: &Settings, vs: &StreamInfo, v: &VideoInfo) -> VideoPlan {
    let class = quality::resolution_class(v.width, v.height);
    let family = quality::codec_family(&vs.codec);
    let hdr = info.hdr.kind;
    let crf = match settings.crf {
        Some(c) => c,
        None => {
            let base = i16::from(settings.tables.crf(class, family));
            let offset = if hdr.is_hdr() { i16::from(settings.hdr_crf_offset) } else { 0 };
            (base + offset).clamp(1, 63) as u8
        }
    };
    let bit_depth = if v.bit_depth > 8 || hdr.is_hdr() { 10 } else { 8 };
    let fps = if v.fps() > 0.0 { v.fps() } else { 25.0 };
    let keyint = (fps * settings.keyint_seconds).round() as u32;
    // The colour description is passed on when the source states one; HDR always
    // states it (PQ/HLG make no sense without BT.2020).
    let color =
        (v.primaries != 2 || v.transfer != 2 || v.matrix != 2 || v.range != 0).then_some(ColorDescription {
            primaries: v.primaries,
            transfer: v.transfer,
            matrix: v.matrix,
            full_range: v.range == 2,
            chroma_position: match v.chroma_location {
                1 => 1, // left -> vertical
                3 => 2, // top-left -> colocated
                _ => 0,
            },
        });
    let quarter_turn = matches!(v.rotation, 90 | 270);
    let upright = if quarter_turn { (v.height, v.width) } else { (v.width, v.height) };
    let even = (upright.0 & !1, upright.1 & !1);
    VideoPlan {
        stream: vs.index,
        width: even.0,
        height: even.1,
        cut_from: (even != upright).then_some(upright),
        sample_aspect: if quarter_turn { (v.sample_aspect.1, v.sample_aspect.0) } else { v.sample_aspect },
        rotation: v.rotation,
        // AVFieldOrder: 0 unknown, 1 progressive, 2..=5 the interlaced orders.
        deinterlace: (2..=5).contains(&v.field_order),
        frame_rate: if v.fps() > 0.0 { v.frame_rate } else { (25, 1) },
        class: class.into(),
        family: family.into(),
        crf,
        preset: settings.preset,
        bit_depth,
        keyint,
        threads: settings.threads,
        film_grain: settings.film_grain,
        hdr,
        color,
        mastering_display: if hdr.is_hdr() { info.hdr.mastering_display } else { None },
        content_light: if hdr.is_hdr() { info.hdr.content_light } else { None },
        svt_params: settings.svt_params.clone(),
    }
}

/// What becomes of one stream of the source.
fn stream_action(s: &StreamInfo, video_index: usize, settings: &Settings) -> StreamAction {
    match (&s.kind, &s.detail) {
        _ if s.index == video_index => StreamAction::EncodeVideo,
        (StreamKind::Video, _) if s.attached_pic => StreamAction::CoverArt,
        // A second picture (another angle, a signer): kept as it is, not lost.
        (StreamKind::Video, _) if crate::libav::matroska_can_store(&s.codec) => StreamAction::Copy,
        (StreamKind::Video, _) => StreamAction::Drop {
            reason: format!("a second video stream in {} cannot be stored in Matroska", s.codec),
        },
        (StreamKind::Audio, StreamDetail::Audio(a)) => {
            let source_bps = u32::try_from(s.bit_rate).unwrap_or(u32::MAX);
            if s.codec == "opus" || settings.copy_audio {
                StreamAction::Copy
            } else if a.channels == 0 || usize::from(a.channels) > crate::encode::opus::MAX_CHANNELS {
                // Opus carries up to 8 channels here; never downmix: keep it as it is.
                StreamAction::Copy
            } else {
                let table = settings.tables.audio_kbps(u32::from(a.channels)) * 1000;
                let floor = 12_000 * u32::from(a.channels);
                let bitrate = if source_bps > 0 { table.min(source_bps.max(floor)) } else { table };
                // The bit rate is the source's channels'; added silent channels cost nothing.
                let channels = crate::encode::opus::channels_for(a.mask, usize::from(a.channels)) as u16;
                StreamAction::EncodeOpus { bitrate, channels }
            }
        }
        (StreamKind::Subtitle, _) if MKV_SUBTITLES.contains(&s.codec.as_str()) => StreamAction::Copy,
        (StreamKind::Subtitle, _) if s.codec == "mov_text" || s.codec == "text" => StreamAction::ToSrt,
        (StreamKind::Subtitle, _) => {
            StreamAction::Drop { reason: format!("{} subtitles cannot be stored in Matroska", s.codec) }
        }
        (StreamKind::Attachment, _) => StreamAction::Copy,
        _ => StreamAction::Drop { reason: format!("{} data stream has no place in Matroska", s.codec) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{AudioInfo, HdrInfo, StreamInfo, VideoInfo};

    fn stream(index: usize, kind: StreamKind, codec: &str, detail: StreamDetail) -> StreamInfo {
        StreamInfo {
            index,
            kind,
            codec: codec.into(),
            language: None,
            title: None,
            default: false,
            forced: false,
            attached_pic: false,
            bit_rate: 0,
            detail,
        }
    }

    fn video(codec: &str, w: u32, h: u32, depth: u8, transfer: u8) -> StreamInfo {
        stream(
            0,
            StreamKind::Video,
            codec,
            StreamDetail::Video(VideoInfo {
                width: w,
                height: h,
                frame_rate: (24000, 1001),
                pix_fmt: "yuv420p".into(),
                bit_depth: depth,
                chroma_shift: (1, 1),
                primaries: if transfer == 16 { 9 } else { 1 },
                transfer,
                matrix: if transfer == 16 { 9 } else { 1 },
                range: 1,
                chroma_location: 1,
                field_order: 1,
                frames: 24_000,
                sample_aspect: (1, 1),
                rotation: 0,
            }),
        )
    }

    fn audio(index: usize, codec: &str, channels: u16, bit_rate: u64) -> StreamInfo {
        let mut s = stream(
            index,
            StreamKind::Audio,
            codec,
            StreamDetail::Audio(AudioInfo { channels, mask: 0, layout: String::new(), sample_rate: 48_000 }),
        );
        s.bit_rate = bit_rate;
        s
    }

    fn info(streams: Vec<StreamInfo>, hdr: HdrKind) -> MediaInfo {
        MediaInfo {
            path: "film.mkv".into(),
            container: "matroska,webm".into(),
            size: 1 << 30,
            duration: 1000.0,
            bit_rate: 8_000_000,
            main_video: Some(0),
            streams,
            chapters: Vec::new(),
            metadata: Vec::new(),
            hdr: HdrInfo { kind: hdr, mastering_display: None, content_light: None, dovi: None },
        }
    }

    fn encode(i: &MediaInfo, s: &Settings) -> Plan {
        match plan(i, s).unwrap() {
            Decision::Encode(p) => *p,
            d => panic!("expected a plan, got {d:?}"),
        }
    }

    #[test]
    fn crf_depth_and_keyframes_follow_the_source() {
        let s = Settings::default();
        let cases = [
            ("h264", 1920, 800, 8, 1, 24, 8),
            ("hevc", 3840, 2160, 10, 16, 22, 10),
            ("mpeg2video", 720, 576, 8, 1, 28, 8),
            ("vp9", 1280, 720, 10, 1, 28, 10),
        ];
        for (codec, w, h, depth, trc, crf, out_depth) in cases {
            let hdr = if trc == 16 { HdrKind::Hdr10 } else { HdrKind::Sdr };
            let p = encode(&info(vec![video(codec, w, h, depth, trc)], hdr), &s);
            assert_eq!((p.video.crf, p.video.bit_depth), (crf, out_depth), "{codec} {w}x{h}");
            assert_eq!(p.video.keyint, 240, "10 s at 23.976 fps");
            assert_eq!(p.video.preset, 8);
        }
        let p = encode(
            &info(vec![video("h264", 1920, 1080, 8, 1)], HdrKind::Sdr),
            &Settings { crf: Some(33), ..s },
        );
        assert_eq!(p.video.crf, 33);
    }

    #[test]
    fn dynamic_hdr_and_av1_are_skipped_unless_asked() {
        let s = Settings::default();
        for kind in [HdrKind::Hdr10Plus, HdrKind::DolbyVision] {
            let i = info(vec![video("hevc", 3840, 2160, 10, 16)], kind);
            assert!(matches!(plan(&i, &s).unwrap(), Decision::Skip { reason: SkipReason::DynamicHdr, .. }));
            let p = encode(&i, &Settings { dynamic_hdr_base_layer: true, ..s.clone() });
            assert_eq!(p.video.bit_depth, 10);
        }
        let i = info(vec![video("av1", 1920, 1080, 8, 1)], HdrKind::Sdr);
        assert!(matches!(plan(&i, &s).unwrap(), Decision::Skip { reason: SkipReason::AlreadyAv1, .. }));
        assert_eq!(encode(&i, &Settings { reencode_av1: true, ..s }).video.crf, 31);
    }

    #[test]
    fn every_audio_track_gets_an_action_without_downmix() {
        let streams = vec![
            video("h264", 1920, 1080, 8, 1),
            audio(1, "eac3", 6, 640_000),
            audio(2, "aac", 2, 64_000),
            audio(3, "opus", 2, 0),
            audio(4, "truehd", 8, 0),
            audio(5, "pcm_s16le", 12, 0),
            stream(6, StreamKind::Subtitle, "mov_text", StreamDetail::Subtitle { bitmap: false }),
            stream(7, StreamKind::Subtitle, "hdmv_pgs_subtitle", StreamDetail::Subtitle { bitmap: true }),
            stream(8, StreamKind::Subtitle, "eia_608", StreamDetail::Subtitle { bitmap: false }),
            stream(9, StreamKind::Data, "bin_data", StreamDetail::Other),
            stream(
                10,
                StreamKind::Attachment,
                "ttf",
                StreamDetail::Attachment { filename: None, mimetype: None },
            ),
        ];
        let p = encode(&info(streams, HdrKind::Sdr), &Settings::default());
        let actions: Vec<_> = p.streams.iter().map(|s| s.action.clone()).collect();
        assert_eq!(actions[0], StreamAction::EncodeVideo);
        assert_eq!(actions[1], StreamAction::EncodeOpus { bitrate: 256_000, channels: 6 });
        assert_eq!(
            actions[2],
            StreamAction::EncodeOpus { bitrate: 64_000, channels: 2 },
            "never above the source"
        );
        assert_eq!(actions[3], StreamAction::Copy, "Opus is copied");
        assert_eq!(actions[4], StreamAction::EncodeOpus { bitrate: 320_000, channels: 8 });
        assert_eq!(actions[5], StreamAction::Copy, "12 channels: kept as they are, not downmixed");
        assert_eq!(actions[6], StreamAction::ToSrt);
        assert_eq!(actions[7], StreamAction::Copy);
        assert!(matches!(actions[8], StreamAction::Drop { .. }));
        assert!(matches!(actions[9], StreamAction::Drop { .. }));
        assert_eq!(actions[10], StreamAction::Copy);
        assert_eq!((p.expected(StreamKind::Audio), p.expected(StreamKind::Subtitle)), (5, 2));
        assert_eq!(p.expected(StreamKind::Attachment), 1);

        let copy_all = encode(
            &info(vec![video("h264", 1920, 1080, 8, 1), audio(1, "eac3", 6, 640_000)], HdrKind::Sdr),
            &Settings { copy_audio: true, ..Settings::default() },
        );
        assert_eq!(copy_all.streams[1].action, StreamAction::Copy);
    }

    #[test]
    fn bad_settings_and_sources_are_errors() {
        let i = info(vec![video("h264", 1920, 1080, 8, 1)], HdrKind::Sdr);
        for s in [
            Settings { preset: 14, ..Settings::default() },
            Settings { crf: Some(0), ..Settings::default() },
            Settings { keyint_seconds: -1.0, ..Settings::default() },
            Settings { film_grain: 51, ..Settings::default() },
        ] {
            assert!(matches!(plan(&i, &s), Err(Error::Config(_))), "{s:?}");
        }
        let tiny = info(vec![video("h264", 48, 48, 8, 1)], HdrKind::Sdr);
        assert!(matches!(plan(&tiny, &Settings::default()), Err(Error::Unsupported { .. })));
        let mut no_video = info(vec![audio(0, "aac", 2, 0)], HdrKind::Sdr);
        no_video.main_video = None;
        assert!(matches!(plan(&no_video, &Settings::default()), Err(Error::NoVideoStream { .. })));
    }
}
