//! A safe SVT-AV1 encoder: one owner per C object, packets borrowed from the encoder.
//!
//! Configuration goes through `svt_av1_enc_parse_parameter` (the same string keys as the
//! encoder's own command-line program), which keeps us clear of field layout changes
//! between releases and of the big-endian fixed point of the HDR structures.

use std::ffi::CString;
use std::marker::PhantomData;
use std::ptr::NonNull;

use av1core_sys as sys;

use crate::error::{Error, Result};

/// Version of the linked SVT-AV1 library, e.g. `"1.4.1"`.
pub fn version() -> &'static str {
    sys::VERSION
}

/// Smallest width and height SVT-AV1 1.4 accepts (measured: 64x64 encodes, 63x63 and
/// 64x36 are refused by `svt_av1_enc_set_parameter`).
pub const MIN_SIZE: u32 = 64;

/// Colour description written into the AV1 sequence header (ITU-T H.273 code points).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColorDescription {
    pub primaries: u8,
    pub transfer: u8,
    pub matrix: u8,
    pub full_range: bool,
    /// AV1 chroma sample position: 0 unknown, 1 vertical (left), 2 colocated (top-left).
    pub chroma_position: u8,
}

/// Static HDR10 metadata in the units people write (cd/m², CIE 1931 xy).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MasteringDisplay {
    /// Red, green, blue primaries as (x, y).
    pub red: (f64, f64),
    pub green: (f64, f64),
    pub blue: (f64, f64),
    pub white_point: (f64, f64),
    pub max_luminance: f64,
    pub min_luminance: f64,
}

/// Content light level: MaxCLL and MaxFALL in cd/m².
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContentLight {
    pub max_cll: u32,
    pub max_fall: u32,
}

/// Everything the encoder needs to know; `validate()` before use.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    pub width: u32,
    pub height: u32,
    /// 8 or 10.
    pub bit_depth: u8,
    pub fps_num: u32,
    pub fps_den: u32,
    /// SVT-AV1 preset, 0 (slowest) to 13 (fastest).
    pub preset: i8,
    /// Constant rate factor, 1..=63.
    pub crf: u8,
    /// Keyframe interval in frames (0 = library default).
    pub keyint: u32,
    /// 0 = automatic. SVT-AV1 1.4: logical processors to use; 2.3 and later: level of
    /// parallelism 1..=6 (larger values mean 6).
    pub threads: u32,
    /// Film grain synthesis level, 0 (off) to 50.
    pub film_grain: u8,
    pub color: Option<ColorDescription>,
    pub mastering_display: Option<MasteringDisplay>,
    pub content_light: Option<ContentLight>,
    /// Further `key=value` parameters in the encoder app's syntax.
    pub extra: Vec<(String, String)>,
}

/// The product's presets keep the meaning they had with SVT-AV1 1.4 (the speed and
/// quality trade-off users chose them for). SVT-AV1 2.3 renumbered its presets: its
/// 6..=10 do what 2.2's 7..=11 did, and its 11 what 2.2's 12 and 13 did. Measured
/// (`make bench-svt`, BENCHMARKS.md) against 1.4's preset 8 at equal PSNR, 2.3's
/// preset 7 gives files from 0.6% larger to 7.0% smaller on real footage, where 2.3's
/// preset 8 gives 0.3% smaller to 4.1% larger ones in 0.65–0.77× the time: so on 2.3
/// preset P becomes P − 1 for 7..=12 and 13 becomes 11 (size first; `--preset 9` is
/// the faster choice); the slow presets 0..=6 keep their numbers.
pub fn library_preset(preset: i8) -> i8 {
    if cfg!(svt_preset_shift) {
        match preset {
            7..=12 => preset - 1,
            13 => 11,
            p => p,
        }
    } else {
        preset
    }
}

impl EncoderConfig {
    /// Checks the ranges SVT-AV1 accepts, so a bad setting gives a readable error.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.width < MIN_SIZE || self.height < MIN_SIZE || self.width > 16384 || self.height > 8704 {
            return bad(format!(
                "frame size {}x{} is outside SVT-AV1's {MIN_SIZE}x{MIN_SIZE}..16384x8704",
                self.width, self.height
            ));
        }
        if self.bit_depth != 8 && self.bit_depth != 10 {
            return bad(format!("bit depth {} (8 or 10)", self.bit_depth));
        }
        if self.fps_num == 0 || self.fps_den == 0 {
            return bad(format!("frame rate {}/{}", self.fps_num, self.fps_den));
        }
        if !(0..=13).contains(&self.preset) {
            return bad(format!("preset {} (0..=13)", self.preset));
        }
        if !(1..=63).contains(&self.crf) {
            return bad(format!("crf {} (1..=63)", self.crf));
        }
        if self.film_grain > 50 {
            return bad(format!("film grain {} (0..=50)", self.film_grain));
        }
        Ok(())
    }

    /// The configuration as `key=value` pairs in SVT-AV1's parameter syntax.
    pub fn parameters(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| p.push((k.to_owned(), v));
        set("width", self.width.to_string());
        set("height", self.height.to_string());
        set("input-depth", self.bit_depth.to_string());
        set("fps-num", self.fps_num.to_string());
        set("fps-denom", self.fps_den.to_string());
        set("preset", library_preset(self.preset).to_string());
        set("crf", self.crf.to_string());
        if self.keyint > 0 {
            set("keyint", self.keyint.to_string());
        }
        // 1.4: logical processors to use; 2.3 and later: a level of parallelism 1..=6.
        #[cfg(not(svt_lp_levels))]
        set("lp", self.threads.to_string());
        // 2.3.0 at its presets 11 and above, with more than one level of parallelism,
        // now and then writes a frame no decoder accepts (measured: 7 of 10 encodes of
        // a clip whose pictures repeat; dav1d refuses the same frame; 0 of 10 with
        // lp=1, at the same speed on two cores). Our check stage catches it, but the
        // file would fail: those presets run at one level.
        #[cfg(svt_lp_levels)]
        let lp = if library_preset(self.preset) >= 11 { 1 } else { self.threads.min(6) };
        #[cfg(svt_lp_levels)]
        set("lp", lp.to_string());
        if self.film_grain > 0 {
            set("film-grain", self.film_grain.to_string());
        }
        if let Some(c) = self.color {
            set("color-primaries", c.primaries.to_string());
            set("transfer-characteristics", c.transfer.to_string());
            set("matrix-coefficients", c.matrix.to_string());
            set("color-range", u8::from(c.full_range).to_string());
            if c.chroma_position != 0 {
                set("chroma-sample-position", c.chroma_position.to_string());
            }
        }
        if self.mastering_display.is_some() || self.content_light.is_some() {
            // Without enable-hdr the library writes no HDR metadata at all.
            set("enable-hdr", "1".into());
        }
        if let Some(m) = self.mastering_display {
            set("mastering-display", mastering_display_string(&m));
        }
        if let Some(c) = self.content_light {
            set("content-light", format!("{},{}", c.max_cll, c.max_fall));
        }
        p.extend(self.extra.iter().cloned());
        p
    }
}

/// `G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)`, the syntax of SVT-AV1's `mastering-display`.
pub fn mastering_display_string(m: &MasteringDisplay) -> String {
    format!(
        "G({:.4},{:.4})B({:.4},{:.4})R({:.4},{:.4})WP({:.4},{:.4})L({:.4},{:.4})",
        m.green.0,
        m.green.1,
        m.blue.0,
        m.blue.1,
        m.red.0,
        m.red.1,
        m.white_point.0,
        m.white_point.1,
        m.max_luminance,
        m.min_luminance
    )
}

fn check(function: &'static str, code: sys::EbErrorType::Type) -> Result<()> {
    if code == sys::EbErrorType::EB_ErrorNone {
        Ok(())
    } else {
        Err(Error::Svt { function, code: code as u32, detail: None })
    }
}

/// Owns the encoder handle and its configuration block.
struct Handle {
    ptr: NonNull<sys::EbComponentType>,
    cfg: Box<sys::EbSvtAv1EncConfiguration>,
    initialized: bool,
}

impl Handle {
    fn new() -> Result<Handle> {
        let mut ptr: *mut sys::EbComponentType = std::ptr::null_mut();
        let mut cfg = Box::<sys::EbSvtAv1EncConfiguration>::default();
        #[cfg(not(svt_init_handle_2args))]
        // SAFETY: both out-pointers are valid for writes; app_data may be null.
        let rc = unsafe { sys::svt_av1_enc_init_handle(&mut ptr, std::ptr::null_mut(), &mut *cfg) };
        #[cfg(svt_init_handle_2args)]
        // SAFETY: both out-pointers are valid for writes.
        let rc = unsafe { sys::svt_av1_enc_init_handle(&mut ptr, &mut *cfg) };
        check("svt_av1_enc_init_handle", rc)?;
        let ptr = NonNull::new(ptr).ok_or(Error::Svt {
            function: "svt_av1_enc_init_handle",
            code: 0,
            detail: Some("null handle".into()),
        })?;
        Ok(Handle { ptr, cfg, initialized: false })
    }
}

/// SVT-AV1 1.4 keeps process-wide state (function-pointer tables set up by every
/// `svt_av1_enc_init`, torn down by `deinit`): a second encoder created or destroyed
/// while another one encodes crashes the process (seen here: a segfault inside the
/// library with two encoders in one test process). So one encoder lives at a time per
/// process; a second `Encoder::new` waits for the first to be gone. The product runs
/// one encode per process anyway; parallelism comes from SVT-AV1's own threads.
static BUSY: (std::sync::Mutex<bool>, std::sync::Condvar) =
    (std::sync::Mutex::new(false), std::sync::Condvar::new());

/// The right to have an SVT-AV1 encoder alive in this process; released on drop.
struct Exclusive;

impl Exclusive {
    fn acquire() -> Exclusive {
        let (lock, cvar) = &BUSY;
        let mut busy = lock.lock().unwrap_or_else(|e| e.into_inner());
        while *busy {
            busy = cvar.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy = true;
        Exclusive
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        let (lock, cvar) = &BUSY;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = false;
        cvar.notify_one();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: ptr came from svt_av1_enc_init_handle and is freed only here;
        // deinit runs only if svt_av1_enc_init succeeded.
        unsafe {
            if self.initialized {
                sys::svt_av1_enc_deinit(self.ptr.as_ptr());
            }
            sys::svt_av1_enc_deinit_handle(self.ptr.as_ptr());
        }
    }
}

/// One picture to encode: three planes of 8-bit samples, or 16-bit little-endian
/// samples for 10-bit input, with strides in bytes (as FFmpeg gives them).
pub struct Picture<'a> {
    pub planes: [&'a [u8]; 3],
    pub strides: [usize; 3],
    pub pts: i64,
    /// Ask for a keyframe here.
    pub keyframe: bool,
}

/// An SVT-AV1 encoder. Feed it with [`Encoder::send`], drain it with
/// [`Encoder::receive`], end with [`Encoder::finish`] and drain until
/// [`Packet::is_last`].
pub struct Encoder {
    handle: Handle,
    config: EncoderConfig,
    header: Vec<u8>,
    eos_sent: bool,
    done: bool,
    /// Pictures sent and packets received, so that an encoder ended early is drained
    /// exactly as far as the library will go.
    sent: u64,
    received: u64,
    /// Declared after `handle`, so it is released after the handle is freed.
    _exclusive: Exclusive,
}

// SAFETY: the SVT-AV1 handle is not bound to the thread that created it (the library
// runs its own thread pool and synchronises its queues); every call goes through
// `&mut self`, so the handle is used by one thread at a time. `Sync` is not claimed.
unsafe impl Send for Encoder {}
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Encoder>();
};

impl Encoder {
    /// Creates and initialises an encoder with `config`.
    pub fn new(config: &EncoderConfig) -> Result<Encoder> {
        config.validate()?;
        let exclusive = Exclusive::acquire();
        let mut handle = Handle::new()?;
        for (key, value) in config.parameters() {
            let (k, v) = match (CString::new(key.clone()), CString::new(value.clone())) {
                (Ok(k), Ok(v)) => (k, v),
                _ => return Err(Error::Config(format!("parameter {key}={value} contains NUL"))),
            };
            // SAFETY: cfg is a valid configuration filled by init_handle; k and v are
            // NUL-terminated and live across the call.
            let rc = unsafe { sys::svt_av1_enc_parse_parameter(&mut *handle.cfg, k.as_ptr(), v.as_ptr()) };
            if rc != sys::EbErrorType::EB_ErrorNone {
                return Err(Error::Svt {
                    function: "svt_av1_enc_parse_parameter",
                    code: rc as u32,
                    detail: Some(format!("{key}={value}")),
                });
            }
        }
        // SAFETY: the handle is live and the configuration is valid; the library copies it.
        let rc = unsafe { sys::svt_av1_enc_set_parameter(handle.ptr.as_ptr(), &mut *handle.cfg) };
        check("svt_av1_enc_set_parameter", rc)?;
        // SAFETY: the handle is live and configured.
        let rc = unsafe { sys::svt_av1_enc_init(handle.ptr.as_ptr()) };
        check("svt_av1_enc_init", rc)?;
        handle.initialized = true;

        let mut hdr: *mut sys::EbBufferHeaderType = std::ptr::null_mut();
        // SAFETY: the encoder is initialised; hdr receives a buffer we release below.
        let rc = unsafe { sys::svt_av1_enc_stream_header(handle.ptr.as_ptr(), &mut hdr) };
        check("svt_av1_enc_stream_header", rc)?;
        // SAFETY: on success hdr points to a header whose p_buffer holds n_filled_len bytes;
        // it is copied and released exactly once.
        let header = unsafe {
            let h = &*hdr;
            let bytes = if h.p_buffer.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(h.p_buffer, h.n_filled_len as usize).to_vec()
            };
            sys::svt_av1_enc_stream_header_release(hdr);
            bytes
        };
        Ok(Encoder {
            handle,
            config: config.clone(),
            header,
            eos_sent: false,
            done: false,
            sent: 0,
            received: 0,
            _exclusive: exclusive,
        })
    }

    /// The AV1 sequence header OBU: Matroska's codec private (`av1C` is built from it).
    pub fn sequence_header(&self) -> &[u8] {
        &self.header
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Sends one picture. The library copies it, so the planes may be reused at once.
    pub fn send(&mut self, pic: &Picture<'_>) -> Result<()> {
        if self.eos_sent {
            return Err(Error::Config("picture sent after end of stream".into()));
        }
        let bytes_per_sample = if self.config.bit_depth > 8 { 2 } else { 1 };
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        // The library reads width x height samples (and half that for chroma): check the
        // planes really hold them, so a short buffer is an error, not an overread.
        for (i, (plane, stride)) in pic.planes.iter().zip(pic.strides).enumerate() {
            let (pw, ph) = if i == 0 { (w, h) } else { (cw, ch) };
            let row = pw * bytes_per_sample;
            if stride < row || plane.len() < stride * (ph - 1) + row {
                return Err(Error::Config(format!(
                    "plane {i} too small: {} bytes, stride {stride}, need {ph} rows of {row}",
                    plane.len()
                )));
            }
        }
        let mut io = sys::EbSvtIOFormat {
            luma: pic.planes[0].as_ptr().cast_mut(),
            cb: pic.planes[1].as_ptr().cast_mut(),
            cr: pic.planes[2].as_ptr().cast_mut(),
            // Strides are in samples, not bytes.
            y_stride: (pic.strides[0] / bytes_per_sample) as u32,
            cb_stride: (pic.strides[1] / bytes_per_sample) as u32,
            cr_stride: (pic.strides[2] / bytes_per_sample) as u32,
            width: w as u32,
            height: h as u32,
            color_fmt: sys::EbColorFormat::EB_YUV420,
            bit_depth: if bytes_per_sample == 2 {
                sys::EbBitDepth::EB_TEN_BIT
            } else {
                sys::EbBitDepth::EB_EIGHT_BIT
            },
            ..Default::default()
        };
        let mut buf = sys::EbBufferHeaderType {
            size: std::mem::size_of::<sys::EbBufferHeaderType>() as u32,
            p_buffer: (&mut io as *mut sys::EbSvtIOFormat).cast(),
            n_filled_len: ((w * h + 2 * cw * ch) * bytes_per_sample) as u32,
            pts: pic.pts,
            pic_type: if pic.keyframe {
                sys::EbAv1PictureType::EB_AV1_KEY_PICTURE
            } else {
                sys::EbAv1PictureType::EB_AV1_INVALID_PICTURE
            },
            ..Default::default()
        };
        // SAFETY: the handle is initialised; buf and io live across the call and point to
        // planes checked above to hold the configured size. The library copies the
        // samples and never writes through these pointers.
        let rc = unsafe { sys::svt_av1_enc_send_picture(self.handle.ptr.as_ptr(), &mut buf) };
        check("svt_av1_enc_send_picture", rc)?;
        self.sent += 1;
        Ok(())
    }

    fn send_grey(&mut self) -> Result<()> {
        let bps = if self.config.bit_depth > 8 { 2 } else { 1 };
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        // Mid-grey: 128 in 8 bits, 512 (little-endian) in 10 bits.
        let sample: &[u8] = if bps == 2 { &[0x00, 0x02] } else { &[0x80] };
        let luma = sample.repeat(w * h);
        let chroma = sample.repeat(cw * ch);
        self.send(&Picture {
            planes: [&luma, &chroma, &chroma],
            strides: [w * bps, cw * bps, cw * bps],
            pts: 0,
            keyframe: false,
        })
    }

    /// Signals end of stream. Keep calling `receive(true)` until a packet `is_last()`.
    pub fn finish(&mut self) -> Result<()> {
        if self.eos_sent {
            return Ok(());
        }
        if self.sent == 0 {
            // SVT-AV1 1.4 never answers an empty stream with an EOS packet, and its
            // deinit waits for one forever: an empty stream gets one grey picture.
            self.send_grey()?;
        }
        let mut buf = sys::EbBufferHeaderType {
            size: std::mem::size_of::<sys::EbBufferHeaderType>() as u32,
            flags: sys::EB_BUFFERFLAG_EOS,
            pic_type: sys::EbAv1PictureType::EB_AV1_INVALID_PICTURE,
            ..Default::default()
        };
        // SAFETY: the handle is initialised; an empty buffer with the EOS flag is the
        // documented end-of-stream signal.
        let rc = unsafe { sys::svt_av1_enc_send_picture(self.handle.ptr.as_ptr(), &mut buf) };
        check("svt_av1_enc_send_picture(EOS)", rc)?;
        self.eos_sent = true;
        Ok(())
    }

    /// Returns the next encoded packet, or `None` when none is ready (or after the last).
    /// After [`finish`](Self::finish), `wait = true` blocks until the next packet.
    pub fn receive(&mut self, wait: bool) -> Result<Option<Packet<'_>>> {
        if self.done {
            return Ok(None);
        }
        let mut out: *mut sys::EbBufferHeaderType = std::ptr::null_mut();
        let pic_send_done = u8::from(wait && self.eos_sent);
        // SAFETY: the handle is initialised; out receives a buffer owned by the library
        // until released by Packet's Drop.
        let rc = unsafe { sys::svt_av1_enc_get_packet(self.handle.ptr.as_ptr(), &mut out, pic_send_done) };
        if rc == sys::EbErrorType::EB_NoErrorEmptyQueue {
            return Ok(None);
        }
        check("svt_av1_enc_get_packet", rc)?;
        let Some(ptr) = NonNull::new(out) else {
            return Ok(None);
        };
        let packet = Packet { ptr, _encoder: PhantomData };
        if packet.flags() & sys::EB_BUFFERFLAG_ERROR_MASK != 0 {
            return Err(Error::Svt {
                function: "svt_av1_enc_get_packet",
                code: packet.flags(),
                detail: Some("packet flagged as an encoding error".into()),
            });
        }
        self.received += 1;
        if packet.is_last() || (self.eos_sent && self.received >= self.sent) {
            self.done = true;
        }
        Ok(Some(packet))
    }
}

impl Drop for Encoder {
    /// SVT-AV1 1.4 hangs in `svt_av1_enc_deinit` when pictures are still in flight, so
    /// an encoder dropped before the end of its stream is ended and drained first.
    /// This can take a few seconds of encoding: callers that must not wait (a cancel)
    /// drop the encoder on another thread (see [`Encoder::abandon`]).
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.finish().is_err() {
            return;
        }
        // One packet per picture sent; `receive` stops at the last one.
        while let Ok(Some(_)) = self.receive(true) {}
    }
}

impl Encoder {
    /// Ends and frees the encoder on a background thread, so the caller returns at once.
    pub fn abandon(self) {
        if self.done {
            return;
        }
        let _ = std::thread::Builder::new().name("svt-abandon".into()).spawn(move || drop(self));
    }
}

/// An encoded packet, borrowed from the encoder and released to it on drop.
pub struct Packet<'enc> {
    ptr: NonNull<sys::EbBufferHeaderType>,
    _encoder: PhantomData<&'enc mut Encoder>,
}

impl Packet<'_> {
    fn header(&self) -> &sys::EbBufferHeaderType {
        // SAFETY: ptr came from svt_av1_enc_get_packet and stays valid until released
        // in Drop; the encoder is mutably borrowed for as long as the packet lives.
        unsafe { self.ptr.as_ref() }
    }

    /// The AV1 temporal unit (OBUs). The last packet still carries a frame.
    pub fn data(&self) -> &[u8] {
        let h = self.header();
        if h.p_buffer.is_null() || h.n_filled_len == 0 {
            return &[];
        }
        // SAFETY: p_buffer holds n_filled_len bytes owned by this packet.
        unsafe { std::slice::from_raw_parts(h.p_buffer, h.n_filled_len as usize) }
    }

    pub fn pts(&self) -> i64 {
        self.header().pts
    }

    pub fn is_keyframe(&self) -> bool {
        let t = self.header().pic_type;
        t == sys::EbAv1PictureType::EB_AV1_KEY_PICTURE
            || t == sys::EbAv1PictureType::EB_AV1_INTRA_ONLY_PICTURE
    }

    /// True for the last packet of the stream (flagged end of stream by the library).
    pub fn is_last(&self) -> bool {
        self.flags() & sys::EB_BUFFERFLAG_EOS != 0
    }

    fn flags(&self) -> u32 {
        self.header().flags
    }
}

impl Drop for Packet<'_> {
    fn drop(&mut self) {
        let mut p = self.ptr.as_ptr();
        // SAFETY: the packet came from svt_av1_enc_get_packet and is released exactly once.
        unsafe { sys::svt_av1_enc_release_out_buffer(&mut p) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bit_depth: u8) -> EncoderConfig {
        EncoderConfig {
            width: 64,
            height: 64,
            bit_depth,
            fps_num: 24,
            fps_den: 1,
            preset: 12,
            crf: 35,
            keyint: 0,
            threads: 0,
            film_grain: 0,
            color: None,
            mastering_display: None,
            content_light: None,
            extra: Vec::new(),
        }
    }

    fn send_frames(enc: &mut Encoder, n: i64, bit_depth: u8) -> usize {
        let bps = if bit_depth > 8 { 2 } else { 1 };
        let y = vec![0u8; 64 * 64 * bps];
        let c = vec![0u8; 32 * 32 * bps];
        let mut got = 0;
        for pts in 0..n {
            let y: Vec<u8> =
                y.iter().enumerate().map(|(i, _)| ((i as i64 + pts * 3) % 200) as u8 & 0x7f).collect();
            let pic = Picture {
                planes: [&y, &c, &c],
                strides: [64 * bps, 32 * bps, 32 * bps],
                pts,
                keyframe: false,
            };
            enc.send(&pic).unwrap();
            while let Some(p) = enc.receive(false).unwrap() {
                assert!(!p.data().is_empty());
                got += 1;
            }
        }
        got
    }

    #[test]
    fn encodes_8_and_10_bit_and_the_last_packet_holds_a_frame() {
        for depth in [8, 10] {
            let mut enc = Encoder::new(&config(depth)).unwrap();
            assert!(!enc.sequence_header().is_empty());
            assert_eq!(enc.sequence_header()[0] >> 3 & 0xf, 1, "an OBU_SEQUENCE_HEADER");
            let mut got = send_frames(&mut enc, 20, depth);
            enc.finish().unwrap();
            let mut pts = Vec::new();
            // 1.4 flags the packet of the last frame as end of stream; newer versions may
            // end when every frame is out. Either way no frame is lost.
            while let Some(p) = enc.receive(true).unwrap() {
                if p.is_last() && version().starts_with("1.") {
                    assert!(!p.data().is_empty(), "the EOS packet still carries a frame");
                }
                if !p.data().is_empty() {
                    pts.push(p.pts());
                    got += 1;
                }
                if p.is_last() {
                    break;
                }
            }
            assert_eq!(got, 20, "{depth}-bit: one packet per frame");
            assert!(enc.receive(true).unwrap().is_none());
            assert_eq!(*pts.last().unwrap(), 19);
        }
    }

    #[test]
    fn dropping_mid_stream_does_not_hang_and_frees_the_slot() {
        // On its own thread: a drop that hangs fails the test after a minute instead of
        // holding the suite.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut enc = Encoder::new(&config(8)).unwrap();
            send_frames(&mut enc, 12, 8);
            drop(enc);
            // The next encoder works to its end: every frame comes out.
            let mut enc = Encoder::new(&config(8)).unwrap();
            let mut got = send_frames(&mut enc, 3, 8);
            enc.finish().unwrap();
            while let Some(p) = enc.receive(true).unwrap() {
                got += usize::from(!p.data().is_empty());
                if p.is_last() {
                    break;
                }
            }
            let _ = done.send(got);
        });
        let got = finished.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(got, Ok(3), "dropping an encoder mid-stream hung or broke the next one");
    }

    #[test]
    fn short_planes_and_bad_settings_are_errors() {
        let mut enc = Encoder::new(&config(8)).unwrap();
        let small = vec![0u8; 100];
        let pic =
            Picture { planes: [&small, &small, &small], strides: [64, 32, 32], pts: 0, keyframe: false };
        assert!(matches!(enc.send(&pic), Err(Error::Config(_))));
        drop(enc);
        assert!(Encoder::new(&EncoderConfig { crf: 0, ..config(8) }).is_err());
        assert!(Encoder::new(&EncoderConfig { preset: 14, ..config(8) }).is_err());
        let bad_key = EncoderConfig { extra: vec![("no-such-key".into(), "1".into())], ..config(8) };
        assert!(matches!(Encoder::new(&bad_key), Err(Error::Svt { .. })));
    }
}
