//! Reading: what the demuxer needs of the input context, and the packet side data the
//! audio encoder sets (Matroska's DiscardPadding).

use ffmpeg_next::ffi;
use ffmpeg_next::packet::Mut as _;

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
