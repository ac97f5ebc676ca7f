//! Subtitle encoding calls `ffmpeg-next` does not wrap: the decoder's header handed to
//! the encoder, and the encoded size it drops.

use ffmpeg_next::ffi;

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
