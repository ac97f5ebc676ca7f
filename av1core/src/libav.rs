//! The FFI edge towards libav*: everything `ffmpeg-next` does not wrap. The structures
//! it has no bindings for — mastering display, content light level, Dolby Vision
//! configuration — are declared here `#[repr(C)]` after FFmpeg's headers
//! (`libavutil/mastering_display_metadata.h`, `libavutil/dovi_meta.h`), with the raw
//! reads and writes of stream side data, frame side data, codec parameters, extradata
//! and packet side data. Every raw libav access of the crate is in this file.

use ffmpeg_next::ffi;
use ffmpeg_next::packet::Mut as _;

use crate::encode::svt::{ContentLight, MasteringDisplay};

/// `AVMasteringDisplayMetadata` (FFmpeg 4.0 – 7.x; unchanged layout).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct AVMasteringDisplayMetadata {
    /// [R, G, B] x [x, y]
    display_primaries: [[ffi::AVRational; 2]; 3],
    white_point: [ffi::AVRational; 2],
    min_luminance: ffi::AVRational,
    max_luminance: ffi::AVRational,
    has_primaries: i32,
    has_luminance: i32,
}

/// `AVContentLightMetadata`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct AVContentLightMetadata {
    max_cll: u32,
    max_fall: u32,
}

/// `AVDOVIDecoderConfigurationRecord`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct AVDOVIDecoderConfigurationRecord {
    dv_version_major: u8,
    dv_version_minor: u8,
    dv_profile: u8,
    dv_level: u8,
    rpu_present_flag: u8,
    el_present_flag: u8,
    bl_present_flag: u8,
    dv_bl_signal_compatibility_id: u8,
}

/// Dolby Vision configuration (from the DOVI configuration record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DoviConfig {
    pub profile: u8,
    pub level: u8,
    pub rpu: bool,
    pub el: bool,
    pub bl: bool,
    pub bl_compatibility_id: u8,
}

/// What HDR-related side data was found on a stream or a frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HdrSideData {
    pub mastering_display: Option<MasteringDisplay>,
    pub content_light: Option<ContentLight>,
    pub dovi: Option<DoviConfig>,
    /// SMPTE ST 2094-40 (HDR10+) dynamic metadata.
    pub hdr10plus: bool,
    /// Dolby Vision RPU on a frame.
    pub dovi_rpu: bool,
}

impl HdrSideData {
    /// Fills what `self` lacks from `other`.
    pub fn merge(&mut self, other: HdrSideData) {
        self.mastering_display = self.mastering_display.or(other.mastering_display);
        self.content_light = self.content_light.or(other.content_light);
        self.dovi = self.dovi.or(other.dovi);
        self.hdr10plus |= other.hdr10plus;
        self.dovi_rpu |= other.dovi_rpu;
    }
}

fn q(r: ffi::AVRational) -> f64 {
    if r.den == 0 {
        0.0
    } else {
        f64::from(r.num) / f64::from(r.den)
    }
}

fn mastering_from_raw(bytes: &[u8]) -> Option<MasteringDisplay> {
    if bytes.len() < std::mem::size_of::<AVMasteringDisplayMetadata>() {
        return None;
    }
    // SAFETY: the buffer holds at least one AVMasteringDisplayMetadata (checked above);
    // read_unaligned copes with any alignment; every bit pattern is a valid value.
    let m: AVMasteringDisplayMetadata = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    if m.has_primaries == 0 && m.has_luminance == 0 {
        return None;
    }
    let p = |i: usize| (q(m.display_primaries[i][0]), q(m.display_primaries[i][1]));
    Some(MasteringDisplay {
        red: p(0),
        green: p(1),
        blue: p(2),
        white_point: (q(m.white_point[0]), q(m.white_point[1])),
        max_luminance: q(m.max_luminance),
        min_luminance: q(m.min_luminance),
    })
}

fn content_light_from_raw(bytes: &[u8]) -> Option<ContentLight> {
    if bytes.len() < std::mem::size_of::<AVContentLightMetadata>() {
        return None;
    }
    // SAFETY: the buffer holds at least one AVContentLightMetadata (checked above).
    let c: AVContentLightMetadata = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    Some(ContentLight { max_cll: c.max_cll, max_fall: c.max_fall })
}

fn dovi_from_raw(bytes: &[u8]) -> Option<DoviConfig> {
    if bytes.len() < std::mem::size_of::<AVDOVIDecoderConfigurationRecord>() {
        return None;
    }
    // SAFETY: the buffer holds at least one record of eight bytes (checked above).
    let d: AVDOVIDecoderConfigurationRecord = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    Some(DoviConfig {
        profile: d.dv_profile,
        level: d.dv_level,
        rpu: d.rpu_present_flag != 0,
        el: d.el_present_flag != 0,
        bl: d.bl_present_flag != 0,
        bl_compatibility_id: d.dv_bl_signal_compatibility_id,
    })
}

/// HDR side data attached to a stream (the container's `mdcv`/`clli`/Colour elements,
/// the DOVI configuration record). Raw types are compared, never converted through
/// `ffmpeg-next`'s packet side-data enum (which panics on types it does not know).
pub fn stream_hdr(stream: &ffmpeg_next::format::stream::Stream<'_>) -> HdrSideData {
    let mut out = HdrSideData::default();
    // SAFETY: the stream pointer is valid for the borrow; side_data holds nb_side_data
    // entries whose data pointers hold `size` bytes (FFmpeg 5.1's AVStream layout).
    unsafe {
        let st = stream.as_ptr();
        let n = (*st).nb_side_data.max(0) as usize;
        if (*st).side_data.is_null() {
            return out;
        }
        for sd in std::slice::from_raw_parts((*st).side_data, n) {
            if sd.data.is_null() {
                continue;
            }
            let bytes = std::slice::from_raw_parts(sd.data, sd.size);
            match sd.type_ {
                ffi::AVPacketSideDataType::AV_PKT_DATA_MASTERING_DISPLAY_METADATA => {
                    out.mastering_display = mastering_from_raw(bytes)
                }
                ffi::AVPacketSideDataType::AV_PKT_DATA_CONTENT_LIGHT_LEVEL => {
                    out.content_light = content_light_from_raw(bytes)
                }
                ffi::AVPacketSideDataType::AV_PKT_DATA_DOVI_CONF => out.dovi = dovi_from_raw(bytes),
                _ => {}
            }
        }
    }
    out
}

/// HDR side data attached to a decoded frame (x265 puts mastering display and content
/// light level only here; HDR10+ and Dolby Vision RPUs are always here).
pub fn frame_hdr(frame: &ffmpeg_next::frame::Video) -> HdrSideData {
    use ffi::AVFrameSideDataType as T;
    let mut out = HdrSideData::default();
    // SAFETY: the frame pointer is valid for the borrow; av_frame_get_side_data returns
    // null or an entry whose data holds `size` bytes, alive while the frame is.
    unsafe {
        let f = frame.as_ptr();
        let get = |t: T| {
            let sd = ffi::av_frame_get_side_data(f, t);
            if sd.is_null() || (*sd).data.is_null() {
                None
            } else {
                Some(std::slice::from_raw_parts((*sd).data, (*sd).size as usize))
            }
        };
        out.mastering_display = get(T::AV_FRAME_DATA_MASTERING_DISPLAY_METADATA).and_then(mastering_from_raw);
        out.content_light = get(T::AV_FRAME_DATA_CONTENT_LIGHT_LEVEL).and_then(content_light_from_raw);
        out.hdr10plus = get(T::AV_FRAME_DATA_DYNAMIC_HDR_PLUS).is_some();
        out.dovi_rpu =
            get(T::AV_FRAME_DATA_DOVI_RPU_BUFFER).is_some() || get(T::AV_FRAME_DATA_DOVI_METADATA).is_some();
    }
    out
}

fn rational(v: f64, den: i32) -> ffi::AVRational {
    ffi::AVRational { num: (v * f64::from(den)).round() as i32, den }
}

/// Puts mastering display and content light level on an output stream: the Matroska
/// muxer writes them into the track's Colour element.
pub fn set_stream_hdr(
    stream: &mut ffmpeg_next::format::stream::StreamMut<'_>,
    mastering: Option<&MasteringDisplay>,
    light: Option<&ContentLight>,
) -> Result<(), ffmpeg_next::Error> {
    if let Some(m) = mastering {
        // Denominators as in FFmpeg's HEVC SEI parsing: 50000 for chromaticity,
        // 10000 for luminance.
        let c = |xy: (f64, f64)| [rational(xy.0, 50_000), rational(xy.1, 50_000)];
        let raw = AVMasteringDisplayMetadata {
            display_primaries: [c(m.red), c(m.green), c(m.blue)],
            white_point: c(m.white_point),
            min_luminance: rational(m.min_luminance, 10_000),
            max_luminance: rational(m.max_luminance, 10_000),
            has_primaries: 1,
            has_luminance: 1,
        };
        add_stream_side_data(
            stream,
            ffi::AVPacketSideDataType::AV_PKT_DATA_MASTERING_DISPLAY_METADATA,
            &raw,
        )?;
    }
    if let Some(l) = light {
        let raw = AVContentLightMetadata { max_cll: l.max_cll, max_fall: l.max_fall };
        add_stream_side_data(stream, ffi::AVPacketSideDataType::AV_PKT_DATA_CONTENT_LIGHT_LEVEL, &raw)?;
    }
    Ok(())
}

fn add_stream_side_data<T: Copy>(
    stream: &mut ffmpeg_next::format::stream::StreamMut<'_>,
    kind: ffi::AVPacketSideDataType,
    value: &T,
) -> Result<(), ffmpeg_next::Error> {
    let size = std::mem::size_of::<T>();
    // SAFETY: the stream pointer is valid and owned by the output context being set up;
    // av_stream_new_side_data returns null or a buffer of `size` bytes that the stream
    // owns, into which one T is copied (T is a plain repr(C) struct).
    unsafe {
        let data = ffi::av_stream_new_side_data(stream.as_mut_ptr(), kind, size as _);
        if data.is_null() {
            return Err(ffmpeg_next::Error::from(ffi::AVERROR(ffi::ENOMEM)));
        }
        std::ptr::copy_nonoverlapping((value as *const T).cast::<u8>(), data, size);
    }
    Ok(())
}

/// Colour and layout fields of a stream's codec parameters, as H.273 code points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawVideoParams {
    pub width: u32,
    pub height: u32,
    pub pix_fmt: i32,
    pub primaries: u8,
    pub transfer: u8,
    pub matrix: u8,
    pub range: u8,
    pub chroma_location: u8,
    pub field_order: u8,
}

/// The shape of a stream's pixels, as `av_guess_sample_aspect_ratio` finds it: the
/// container's value (MP4 `pasp`, Matroska display size), else the codec's; reduced,
/// and 1:1 when neither is set.
pub fn sample_aspect_ratio(st: &ffmpeg_next::format::stream::Stream<'_>) -> (u32, u32) {
    // SAFETY: the stream pointer is valid for the borrow; av_guess_sample_aspect_ratio
    // reads the stream's and its codec parameters' fields only (the format context is
    // unused, the frame may be null).
    let r = unsafe {
        ffi::av_guess_sample_aspect_ratio(std::ptr::null_mut(), st.as_ptr() as *mut _, std::ptr::null_mut())
    };
    // Real pixels are at most a few times wider than tall (4:3 anamorphic to 16:9 is
    // 4:3; DV and HDV are under 2:1); beyond 1:10..10:1 the value is damage, and the
    // Matroska muxer would refuse the display size it gives.
    let plausible = r.num > 0 && r.den > 0 && {
        let v = f64::from(r.num) / f64::from(r.den);
        (0.1..=10.0).contains(&v)
    };
    if plausible {
        (r.num as u32, r.den as u32)
    } else {
        (1, 1)
    }
}

/// How far a stream's pictures must be turned clockwise to be seen upright, from its
/// display matrix (MP4 `tkhd`, as phones write it): 0, 90, 180 or 270. Angles that are
/// not a right angle (within a degree) and mirrored matrices (not handled) count as 0.
pub fn display_rotation(stream: &ffmpeg_next::format::stream::Stream<'_>) -> u16 {
    // SAFETY: as in `stream_hdr`: side_data holds nb_side_data entries whose data pointers
    // hold `size` bytes; a display matrix is nine 32-bit integers (36 bytes), checked
    // before av_display_rotation_get reads them.
    let angle = unsafe {
        let st = stream.as_ptr();
        if (*st).side_data.is_null() {
            return 0;
        }
        let n = (*st).nb_side_data.max(0) as usize;
        let Some(sd) = std::slice::from_raw_parts((*st).side_data, n).iter().find(|sd| {
            sd.type_ == ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX
                && !sd.data.is_null()
                && sd.size >= 36
        }) else {
            return 0;
        };
        let m = std::slice::from_raw_parts(sd.data as *const i32, 9);
        // A mirrored picture (negative determinant) is not a turn: leave it alone.
        if i64::from(m[0]) * i64::from(m[4]) - i64::from(m[1]) * i64::from(m[3]) < 0 {
            return 0;
        }
        ffi::av_display_rotation_get(sd.data as *const i32)
    };
    clockwise_right_angle(angle)
}

/// av_display_rotation_get's counterclockwise angle as a clockwise right angle (0 when
/// it is none).
fn clockwise_right_angle(counterclockwise: f64) -> u16 {
    if !counterclockwise.is_finite() {
        return 0;
    }
    let clockwise = (-counterclockwise).rem_euclid(360.0);
    let right = (clockwise / 90.0).round() * 90.0;
    if (clockwise - right).abs() > 1.0 {
        return 0;
    }
    (right as u16) % 360
}

/// Whether FFmpeg's Matroska muxer can store streams of the codec named `codec`
/// (`avformat_query_codec`).
pub fn matroska_can_store(codec: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(codec) else { return false };
    // SAFETY: both names are NUL-terminated strings alive for the calls; the descriptor
    // and the output format are static tables of libavcodec/libavformat (or null).
    unsafe {
        let desc = ffi::avcodec_descriptor_get_by_name(name.as_ptr());
        let format = ffi::av_guess_format(c"matroska".as_ptr(), std::ptr::null(), std::ptr::null());
        !desc.is_null()
            && !format.is_null()
            && ffi::avformat_query_codec(format, (*desc).id, ffi::FF_COMPLIANCE_NORMAL) == 1
    }
}

/// Gives an output stream the source's pixel shape: the Matroska muxer writes it as the
/// track's display size. 1:1 is left unset (square pixels are the default).
pub fn set_sample_aspect_ratio(ost: &mut ffmpeg_next::format::stream::StreamMut<'_>, sar: (u32, u32)) {
    if sar.0 == sar.1 || sar.0 == 0 || sar.1 == 0 {
        return;
    }
    let r =
        ffi::AVRational { num: sar.0.min(i32::MAX as u32) as i32, den: sar.1.min(i32::MAX as u32) as i32 };
    // SAFETY: the stream and its codec parameters are valid and exclusively borrowed;
    // plain fields are written before the header.
    unsafe {
        let st = ost.as_mut_ptr();
        (*st).sample_aspect_ratio = r;
        if !(*st).codecpar.is_null() {
            (*(*st).codecpar).sample_aspect_ratio = r;
        }
    }
}

/// Reads the video fields of `AVCodecParameters`.
pub fn video_params(params: &ffmpeg_next::codec::Parameters) -> RawVideoParams {
    // SAFETY: the parameters pointer is valid for the borrow; only plain fields are read.
    unsafe {
        let p = params.as_ptr();
        RawVideoParams {
            width: (*p).width.max(0) as u32,
            height: (*p).height.max(0) as u32,
            pix_fmt: (*p).format,
            primaries: (*p).color_primaries as u8,
            transfer: (*p).color_trc as u8,
            matrix: (*p).color_space as u8,
            range: (*p).color_range as u8,
            chroma_location: (*p).chroma_location as u8,
            field_order: (*p).field_order as u8,
        }
    }
}

/// Bit depth and chroma subsampling (log2 w, log2 h) of a pixel format, from libavutil's
/// descriptor table. The raw value is matched against the table's ids rather than
/// converted to the Rust enum, so an unknown value is `None`, not undefined behaviour.
pub fn pixel_layout(pix_fmt: i32) -> Option<(u8, u8, u8)> {
    if pix_fmt < 0 {
        return None;
    }
    // SAFETY: av_pix_fmt_desc_next walks libavutil's static descriptor table, starting
    // from null and returning null after the last entry.
    unsafe {
        let mut d = ffi::av_pix_fmt_desc_next(std::ptr::null());
        while !d.is_null() {
            if ffi::av_pix_fmt_desc_get_id(d) as i32 == pix_fmt {
                return Some(((*d).comp[0].depth as u8, (*d).log2_chroma_w, (*d).log2_chroma_h));
            }
            d = ffi::av_pix_fmt_desc_next(d);
        }
    }
    None
}

/// Audio fields of `AVCodecParameters`: channels, rate, native-order mask (0 when the
/// order is not native), and the layout's name (`5.1(side)`, `stereo`, ...).
pub fn audio_params(params: &ffmpeg_next::codec::Parameters) -> (u16, u32, u64, String) {
    // SAFETY: the parameters pointer is valid for the borrow; ch_layout is read in place
    // and described into a local buffer that av_channel_layout_describe NUL-terminates.
    unsafe {
        let p = params.as_ptr();
        let layout = &(*p).ch_layout;
        let channels = layout.nb_channels.max(0) as u16;
        let mask =
            if layout.order == ffi::AVChannelOrder::AV_CHANNEL_ORDER_NATIVE { layout.u.mask } else { 0 };
        let mut buf = [0 as std::os::raw::c_char; 128];
        let name = if ffi::av_channel_layout_describe(layout, buf.as_mut_ptr(), buf.len()) > 0 {
            std::ffi::CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
        } else {
            format!("{channels} channels")
        };
        (channels, (*p).sample_rate.max(0) as u32, mask, name)
    }
}

/// The stream's disposition bits (`AV_DISPOSITION_*`).
pub fn disposition_bits(stream: &ffmpeg_next::format::stream::Stream<'_>) -> i32 {
    // SAFETY: the stream pointer is valid for the borrow.
    unsafe { (*stream.as_ptr()).disposition }
}

/// Sets the disposition bits of an output stream.
pub fn set_disposition_bits(stream: &mut ffmpeg_next::format::stream::StreamMut<'_>, bits: i32) {
    // SAFETY: the stream pointer is valid and owned by the output context being set up.
    unsafe { (*stream.as_mut_ptr()).disposition = bits }
}

/// The name of a raw pixel format value (`yuv420p10le`), or `unknown`.
pub fn pixel_format_name(pix_fmt: i32) -> String {
    // SAFETY: as in pixel_layout: the static descriptor table is walked, never indexed
    // by an unchecked value; names are static NUL-terminated strings.
    unsafe {
        let mut d = ffi::av_pix_fmt_desc_next(std::ptr::null());
        while !d.is_null() {
            if ffi::av_pix_fmt_desc_get_id(d) as i32 == pix_fmt && !(*d).name.is_null() {
                return std::ffi::CStr::from_ptr((*d).name).to_string_lossy().into_owned();
            }
            d = ffi::av_pix_fmt_desc_next(d);
        }
    }
    "unknown".into()
}

/// Copies `bytes` into newly allocated, padded extradata of `params`.
fn set_extradata(p: *mut ffi::AVCodecParameters, bytes: &[u8]) -> Result<(), ffmpeg_next::Error> {
    let pad = ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
    // SAFETY: p is a valid AVCodecParameters owned by the caller; the old extradata (if
    // any) was allocated by libav and is freed with av_freep; the new buffer is
    // av_mallocz'ed with the padding libav requires and filled with `bytes`.
    unsafe {
        ffi::av_freep((&mut (*p).extradata as *mut *mut u8).cast());
        (*p).extradata_size = 0;
        if bytes.is_empty() {
            return Ok(());
        }
        let buf = ffi::av_mallocz(bytes.len() + pad) as *mut u8;
        if buf.is_null() {
            return Err(ffmpeg_next::Error::from(ffi::AVERROR(ffi::ENOMEM)));
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        (*p).extradata = buf;
        (*p).extradata_size = bytes.len() as i32;
    }
    Ok(())
}

/// Codec parameters of the AV1 output stream.
pub fn av1_params(
    width: u32,
    height: u32,
    ten_bit: bool,
    color: Option<&crate::encode::svt::ColorDescription>,
    chroma_location: u8,
    sequence_header: &[u8],
) -> Result<ffmpeg_next::codec::Parameters, ffmpeg_next::Error> {
    let mut params = ffmpeg_next::codec::Parameters::new();
    params.set_medium(ffmpeg_next::media::Type::Video);
    params.set_id(ffmpeg_next::codec::Id::AV1);
    // SAFETY: params owns a freshly allocated AVCodecParameters; plain fields are set
    // with values of their own C enum types (from_raw-free: only known constants or
    // values copied from another AVCodecParameters of the same library).
    unsafe {
        let p = params.as_mut_ptr();
        (*p).width = width as i32;
        (*p).height = height as i32;
        (*p).format = if ten_bit {
            ffi::AVPixelFormat::AV_PIX_FMT_YUV420P10LE as i32
        } else {
            ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32
        };
        (*p).sample_aspect_ratio = ffi::AVRational { num: 0, den: 1 };
        if let Some(c) = color {
            (*p).color_primaries = std::mem::transmute::<u32, ffi::AVColorPrimaries>(u32::from(known(
                c.primaries,
                &[1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 22],
            )));
            (*p).color_trc = std::mem::transmute::<u32, ffi::AVColorTransferCharacteristic>(u32::from(
                known(c.transfer, &[1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]),
            ));
            (*p).color_space = std::mem::transmute::<u32, ffi::AVColorSpace>(u32::from(known(
                c.matrix,
                &[0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
            )));
            (*p).color_range = if c.full_range {
                ffi::AVColorRange::AVCOL_RANGE_JPEG
            } else {
                ffi::AVColorRange::AVCOL_RANGE_MPEG
            };
        }
        (*p).chroma_location = match chroma_location {
            1 => ffi::AVChromaLocation::AVCHROMA_LOC_LEFT,
            2 => ffi::AVChromaLocation::AVCHROMA_LOC_CENTER,
            3 => ffi::AVChromaLocation::AVCHROMA_LOC_TOPLEFT,
            _ => ffi::AVChromaLocation::AVCHROMA_LOC_UNSPECIFIED,
        };
        set_extradata(p, sequence_header)?;
    }
    Ok(params)
}

/// `value` when it is one of the `known` code points, else 2 (unspecified): a value
/// the Rust enum does not list must never be transmuted into it.
fn known(value: u8, known: &[u8]) -> u8 {
    if known.contains(&value) {
        value
    } else {
        2
    }
}

/// Codec parameters of an Opus output stream.
pub fn opus_params(
    channels: usize,
    head: &[u8],
    pre_skip: u16,
) -> Result<ffmpeg_next::codec::Parameters, ffmpeg_next::Error> {
    let mut params = ffmpeg_next::codec::Parameters::new();
    params.set_medium(ffmpeg_next::media::Type::Audio);
    params.set_id(ffmpeg_next::codec::Id::OPUS);
    // SAFETY: params owns a freshly allocated AVCodecParameters; av_channel_layout_default
    // fills the (empty) channel layout in place.
    unsafe {
        let p = params.as_mut_ptr();
        (*p).sample_rate = crate::encode::opus::SAMPLE_RATE as i32;
        ffi::av_channel_layout_from_mask(&mut (*p).ch_layout, crate::encode::opus::layout_mask(channels));
        (*p).initial_padding = i32::from(pre_skip);
        (*p).frame_size = crate::encode::opus::FRAME_SAMPLES as i32;
        set_extradata(p, head)?;
    }
    Ok(params)
}

/// Codec parameters of an attachment holding `data` (a picture turned attachment).
pub fn attachment_params(
    id: ffmpeg_next::codec::Id,
    data: &[u8],
) -> Result<ffmpeg_next::codec::Parameters, ffmpeg_next::Error> {
    let mut params = ffmpeg_next::codec::Parameters::new();
    params.set_medium(ffmpeg_next::media::Type::Attachment);
    params.set_id(id);
    // SAFETY: params owns a freshly allocated AVCodecParameters.
    unsafe { set_extradata(params.as_mut_ptr(), data)? };
    Ok(params)
}

/// The picture of a cover-art stream (`AVStream.attached_pic`), if any.
pub fn attached_picture(stream: &ffmpeg_next::format::stream::Stream<'_>) -> Option<Vec<u8>> {
    // SAFETY: the stream pointer is valid for the borrow; attached_pic is an AVPacket
    // embedded in the stream whose data holds `size` bytes when non-null.
    unsafe {
        let pkt = &(*stream.as_ptr()).attached_pic;
        if pkt.data.is_null() || pkt.size <= 0 {
            None
        } else {
            Some(std::slice::from_raw_parts(pkt.data, pkt.size as usize).to_vec())
        }
    }
}

/// Clears the codec tag of an output stream (a tag from another container is invalid).
pub fn clear_codec_tag(stream: &mut ffmpeg_next::format::stream::StreamMut<'_>) {
    // SAFETY: the stream and its codecpar are valid and owned by the output context.
    unsafe { (*(*stream.as_mut_ptr()).codecpar).codec_tag = 0 }
}

/// Marks the last `end` samples of an audio packet as padding to discard (Matroska's
/// DiscardPadding).
pub fn set_skip_samples_at_end(packet: &mut ffmpeg_next::Packet, end: u32) -> Result<(), ffmpeg_next::Error> {
    // SAFETY: the packet is valid and owned; av_packet_new_side_data returns null or a
    // zeroed buffer of 10 bytes owned by the packet (skip start u32le, skip end u32le,
    // two reason bytes).
    unsafe {
        let data = ffi::av_packet_new_side_data(
            packet.as_mut_ptr(),
            ffi::AVPacketSideDataType::AV_PKT_DATA_SKIP_SAMPLES,
            10,
        );
        if data.is_null() {
            return Err(ffmpeg_next::Error::from(ffi::AVERROR(ffi::ENOMEM)));
        }
        let bytes = std::slice::from_raw_parts_mut(data, 10);
        bytes[4..8].copy_from_slice(&end.to_le_bytes());
    }
    Ok(())
}

/// Gives a subtitle encoder the decoder's subtitle header (the ASS styles that text
/// subtitle encoders expect), before the encoder is opened.
pub fn copy_subtitle_header(
    from: &ffmpeg_next::codec::decoder::Subtitle,
    to: &mut ffmpeg_next::codec::encoder::subtitle::Subtitle,
) -> Result<(), ffmpeg_next::Error> {
    // SAFETY: both contexts are valid; the header is copied into an av_mallocz'ed buffer
    // with a terminating NUL that the encoder context then owns (freed by libavcodec).
    unsafe {
        let src = from.as_ptr();
        let dst = to.as_mut_ptr();
        let n = (*src).subtitle_header_size.max(0) as usize;
        if (*src).subtitle_header.is_null() || n == 0 {
            return Ok(());
        }
        let buf = ffi::av_mallocz(n + 1) as *mut u8;
        if buf.is_null() {
            return Err(ffmpeg_next::Error::from(ffi::AVERROR(ffi::ENOMEM)));
        }
        std::ptr::copy_nonoverlapping((*src).subtitle_header, buf, n);
        (*dst).subtitle_header = buf;
        (*dst).subtitle_header_size = n as i32;
    }
    Ok(())
}

/// Encodes one decoded subtitle into `out`; returns the number of bytes written
/// (`ffmpeg-next`'s wrapper drops that count).
pub fn encode_subtitle(
    enc: &mut ffmpeg_next::codec::encoder::subtitle::Encoder,
    sub: &ffmpeg_next::Subtitle,
    out: &mut [u8],
) -> Result<usize, ffmpeg_next::Error> {
    // SAFETY: the encoder is open, the subtitle valid, and `out` writable for its length.
    let n = unsafe {
        ffi::avcodec_encode_subtitle(enc.as_mut_ptr(), out.as_mut_ptr(), out.len() as i32, sub.as_ptr())
    };
    if n < 0 {
        Err(ffmpeg_next::Error::from(n))
    } else {
        Ok(n as usize)
    }
}

/// Audio resampling to interleaved `f32` at a fixed rate and channel layout, through
/// libswresample's `AVChannelLayout` API (FFmpeg 5.1+): frames whose layout is
/// unspecified get the default layout of their channel count.
pub struct Resampler {
    ptr: *mut ffi::SwrContext,
    out_channels: usize,
    out_rate: i64,
    in_rate: i64,
    /// (sample format, rate, channels, mask) of the input it was made for.
    key: (i32, i32, i32, u64),
}

// SAFETY: the SwrContext is owned exclusively by this value and only used through
// `&mut self`; libswresample keeps no thread-local state.
unsafe impl Send for Resampler {}

fn frame_key(frame: &ffmpeg_next::frame::Audio) -> (i32, i32, i32, u64) {
    // SAFETY: the frame pointer is valid for the borrow; plain fields are read.
    unsafe {
        let f = frame.as_ptr();
        let l = &(*f).ch_layout;
        let mask = if l.order == ffi::AVChannelOrder::AV_CHANNEL_ORDER_NATIVE { l.u.mask } else { 0 };
        ((*f).format, (*f).sample_rate, l.nb_channels, mask)
    }
}

impl Resampler {
    /// A resampler from `frame`'s format to `out_mask` (native channel mask) at `out_rate`.
    pub fn for_frame(
        frame: &ffmpeg_next::frame::Audio,
        out_mask: u64,
        out_rate: u32,
    ) -> Result<Resampler, ffmpeg_next::Error> {
        let key = frame_key(frame);
        if key.1 <= 0 || key.2 <= 0 {
            return Err(ffmpeg_next::Error::InvalidData);
        }
        let in_fmt: ffi::AVSampleFormat = frame.format().into();
        let mut ptr: *mut ffi::SwrContext = std::ptr::null_mut();
        // SAFETY: the layouts are initialised by libavutil (from the frame, or by default
        // for its count) and uninitialised afterwards; swr_alloc_set_opts2 writes a new
        // context into ptr, which this value owns from here on (freed in Drop).
        unsafe {
            let mut in_layout: ffi::AVChannelLayout = std::mem::zeroed();
            let f = frame.as_ptr();
            if (*f).ch_layout.order == ffi::AVChannelOrder::AV_CHANNEL_ORDER_UNSPEC {
                ffi::av_channel_layout_default(&mut in_layout, key.2);
            } else if ffi::av_channel_layout_copy(&mut in_layout, &(*f).ch_layout) < 0 {
                return Err(ffmpeg_next::Error::from(ffi::AVERROR(ffi::ENOMEM)));
            }
            let mut out_layout: ffi::AVChannelLayout = std::mem::zeroed();
            ffi::av_channel_layout_from_mask(&mut out_layout, out_mask);
            let rc = ffi::swr_alloc_set_opts2(
                &mut ptr,
                &mut out_layout,
                ffi::AVSampleFormat::AV_SAMPLE_FMT_FLT,
                out_rate as i32,
                &mut in_layout,
                in_fmt,
                key.1,
                0,
                std::ptr::null_mut(),
            );
            let out_channels = out_layout.nb_channels.max(0) as usize;
            ffi::av_channel_layout_uninit(&mut in_layout);
            ffi::av_channel_layout_uninit(&mut out_layout);
            if rc < 0 || ptr.is_null() {
                return Err(ffmpeg_next::Error::from(rc.min(-1)));
            }
            let r = Resampler {
                ptr,
                out_channels,
                out_rate: i64::from(out_rate),
                in_rate: i64::from(key.1),
                key,
            };
            let rc = ffi::swr_init(r.ptr);
            if rc < 0 {
                return Err(ffmpeg_next::Error::from(rc));
            }
            Ok(r)
        }
    }

    /// True when `frame` has the format this resampler was made for.
    pub fn accepts(&self, frame: &ffmpeg_next::frame::Audio) -> bool {
        frame_key(frame) == self.key
    }

    /// Converts `frame` and appends the interleaved samples to `out`.
    pub fn convert(
        &mut self,
        frame: &ffmpeg_next::frame::Audio,
        out: &mut Vec<f32>,
    ) -> Result<(), ffmpeg_next::Error> {
        let samples = frame.samples();
        // SAFETY: the frame pointer is valid; extended_data holds one pointer per plane
        // (or one for packed audio) with `samples` samples each.
        let input = unsafe { (*frame.as_ptr()).extended_data as *mut *const u8 };
        self.run(input, samples as i32, out)
    }

    /// Drains the samples still inside the resampler.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<(), ffmpeg_next::Error> {
        self.run(std::ptr::null_mut(), 0, out)
    }

    fn run(
        &mut self,
        input: *mut *const u8,
        in_samples: i32,
        out: &mut Vec<f32>,
    ) -> Result<(), ffmpeg_next::Error> {
        loop {
            // SAFETY: ptr is an initialised context.
            let delay = unsafe { ffi::swr_get_delay(self.ptr, self.in_rate) };
            let room = ((i64::from(in_samples) + delay) * self.out_rate / self.in_rate.max(1) + 64) as usize;
            let start = out.len();
            out.resize(start + room * self.out_channels, 0.0);
            let mut dst = out[start..].as_mut_ptr().cast::<u8>();
            // SAFETY: dst has room for `room` interleaved frames of out_channels f32s;
            // input is null (flush) or points to the frame's planes of in_samples samples.
            let n = unsafe { ffi::swr_convert(self.ptr, &mut dst, room as i32, input, in_samples) };
            if n < 0 {
                out.truncate(start);
                return Err(ffmpeg_next::Error::from(n));
            }
            out.truncate(start + n as usize * self.out_channels);
            // Input is consumed in one call; a flush is repeated until nothing comes out.
            if !input.is_null() || n == 0 {
                return Ok(());
            }
        }
    }
}

impl Drop for Resampler {
    fn drop(&mut self) {
        // SAFETY: ptr came from swr_alloc_set_opts2 and is freed only here.
        unsafe { ffi::swr_free(&mut self.ptr) };
    }
}

/// Consecutive unreadable packets (libavformat resynchronises after a damaged stretch)
/// after which a reader gives up on a file.
pub const MAX_BAD_READS: u32 = 1000;

/// Whether the container format allows timestamp discontinuities (`AVFMT_TS_DISCONT`:
/// MPEG transport and program streams).
pub fn allows_timestamp_jumps(ictx: &ffmpeg_next::format::context::Input) -> bool {
    // SAFETY: the context and its input format are valid for the borrow; a plain field is read.
    unsafe {
        let format = (*ictx.as_ptr()).iformat;
        !format.is_null() && (*format).flags & ffi::AVFMT_TS_DISCONT != 0
    }
}

/// The container's start time in `AV_TIME_BASE` units (`AV_NOPTS_VALUE` when unknown).
pub fn start_time(ictx: &ffmpeg_next::format::context::Input) -> i64 {
    // SAFETY: the context pointer is valid for the borrow; a plain field is read.
    unsafe { (*ictx.as_ptr()).start_time }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matrix_angles_become_clockwise_right_angles() {
        // ffprobe's "rotation=-90" (a phone held upright) needs a clockwise quarter turn.
        assert_eq!(clockwise_right_angle(-90.0), 90);
        assert_eq!(clockwise_right_angle(90.0), 270);
        assert_eq!(clockwise_right_angle(180.0), 180);
        assert_eq!(clockwise_right_angle(-180.0), 180);
        assert_eq!(clockwise_right_angle(0.0), 0);
        assert_eq!(clockwise_right_angle(-89.6), 90);
        assert_eq!(clockwise_right_angle(45.0), 0);
        assert_eq!(clockwise_right_angle(f64::NAN), 0);
    }
    use ffmpeg_next as ff;

    /// A real file carrying a Dolby Vision configuration record (MP4 `dvcC`), made by
    /// remuxing a generated HEVC clip with the record added as stream side data: the
    /// probe must classify it as Dolby Vision, and the plan must skip it.
    #[test]
    fn dovi_configuration_record_is_found_and_the_file_skipped() {
        crate::init();
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("hevc.mp4");
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-nostdin", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=1"])
            .args(["-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le"])
            .args([
                "-color_primaries",
                "bt2020",
                "-color_trc",
                "smpte2084",
                "-colorspace",
                "bt2020nc",
                "-tag:v",
                "hvc1",
            ])
            .arg(&src)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        let dv = d.path().join("dv.mp4");
        let mut ictx = ff::format::input(&src).unwrap();
        let mut octx = ff::format::output(&dv).unwrap();
        let record = AVDOVIDecoderConfigurationRecord {
            dv_version_major: 1,
            dv_version_minor: 0,
            dv_profile: 8,
            dv_level: 4,
            rpu_present_flag: 1,
            el_present_flag: 0,
            bl_present_flag: 1,
            dv_bl_signal_compatibility_id: 1,
        };
        for st in ictx.streams() {
            let mut ost = octx.add_stream(ff::encoder::find(ff::codec::Id::None)).unwrap();
            ost.set_parameters(st.parameters());
            ost.set_time_base(st.time_base());
            add_stream_side_data(&mut ost, ffi::AVPacketSideDataType::AV_PKT_DATA_DOVI_CONF, &record)
                .unwrap();
        }
        let mut opts = ff::Dictionary::new();
        opts.set("strict", "unofficial");
        octx.write_header_with(opts).unwrap();
        let otb = octx.stream(0).unwrap().time_base();
        let itb = ictx.stream(0).unwrap().time_base();
        for (_, mut p) in ictx.packets() {
            p.rescale_ts(itb, otb);
            p.set_position(-1);
            p.write_interleaved(&mut octx).unwrap();
        }
        octx.write_trailer().unwrap();

        let info = crate::probe(&dv).unwrap();
        assert_eq!(info.hdr.kind, crate::probe::HdrKind::DolbyVision);
        let rec = info.hdr.dovi.expect("the record is read back");
        assert_eq!((rec.profile, rec.level, rec.bl_compatibility_id), (8, 4, 1));
        match crate::plan(&info, &crate::Settings::default()).unwrap() {
            crate::Decision::Skip { reason, .. } => assert_eq!(reason, crate::SkipReason::DynamicHdr),
            d => panic!("expected a skip, got {d:?}"),
        }
        // The same clip without the record is plain HDR10.
        assert_eq!(crate::probe(&src).unwrap().hdr.kind, crate::probe::HdrKind::Hdr10);
    }
}
