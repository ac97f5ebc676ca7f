//! The libav structures `ffmpeg-next` has no bindings for — mastering display, content
//! light level, Dolby Vision configuration — declared here `#[repr(C)]` after FFmpeg's
//! headers (`libavutil/mastering_display_metadata.h`, `libavutil/dovi_meta.h`), with the
//! raw reads and writes of stream side data, frame side data and codec parameters.
//! This module is the FFI edge of probing and muxing: every raw libav access is here.

use ffmpeg_next::ffi;

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

/// The stream's disposition bits and codec id's name, read from the raw stream.
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
