//! Audio resampling through libswresample's `AVChannelLayout` API (FFmpeg 5.1+).

use std::ptr::NonNull;

use ffmpeg_next::ffi;

/// Audio resampling to interleaved `f32` at a fixed rate and channel layout, through
/// libswresample's `AVChannelLayout` API (FFmpeg 5.1+): frames whose layout is
/// unspecified get the default layout of their channel count.
pub struct Resampler {
    ptr: NonNull<ffi::SwrContext>,
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
            let ptr = match NonNull::new(ptr) {
                Some(ptr) if rc >= 0 => ptr,
                _ => return Err(ffmpeg_next::Error::from(rc.min(-1))),
            };
            let r = Resampler {
                ptr,
                out_channels,
                out_rate: i64::from(out_rate),
                in_rate: i64::from(key.1),
                key,
            };
            let rc = ffi::swr_init(r.ptr.as_ptr());
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
            let delay = unsafe { ffi::swr_get_delay(self.ptr.as_ptr(), self.in_rate) };
            let room = ((i64::from(in_samples) + delay) * self.out_rate / self.in_rate.max(1) + 64) as usize;
            let start = out.len();
            out.resize(start + room * self.out_channels, 0.0);
            let mut dst = out[start..].as_mut_ptr().cast::<u8>();
            // SAFETY: dst has room for `room` interleaved frames of out_channels f32s;
            // input is null (flush) or points to the frame's planes of in_samples samples.
            let n = unsafe { ffi::swr_convert(self.ptr.as_ptr(), &mut dst, room as i32, input, in_samples) };
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
        let mut ptr = self.ptr.as_ptr();
        // SAFETY: ptr came from swr_alloc_set_opts2 and is freed only here.
        unsafe { ffi::swr_free(&mut ptr) };
    }
}
