//! HDR side data: the `#[repr(C)]` structures `ffmpeg-next` has no bindings for
//! (mastering display, content light level, the Dolby Vision configuration record, after
//! FFmpeg's `libavutil/mastering_display_metadata.h` and `dovi_meta.h`), read from
//! streams and frames and written to output streams.

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

#[cfg(test)]
mod tests {
    use super::*;
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
