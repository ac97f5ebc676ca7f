//! Stream parameters: the fields of `AVCodecParameters` and `AVStream` that
//! `ffmpeg-next` does not wrap (colour, pixel shape, rotation, channel layout,
//! disposition), and the codec parameters of our output streams (AV1, Opus,
//! attachments) with their extradata.

use ffmpeg_next::ffi;

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
}
