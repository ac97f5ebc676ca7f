//! The FFI edge towards libav*: everything `ffmpeg-next` does not wrap. The structures
//! it has no bindings for — mastering display, content light level, Dolby Vision
//! configuration — are declared here `#[repr(C)]` after FFmpeg's headers
//! (`libavutil/mastering_display_metadata.h`, `libavutil/dovi_meta.h`), with the raw
//! reads and writes of stream side data, frame side data, codec parameters, extradata
//! and packet side data. Every raw libav access of the crate is in this folder, by
//! concern: [`hdr`] side data, stream [`params`], [`subtitles`], the [`resample`]r,
//! and the [`input`] context and packets.

mod hdr;
mod input;
mod params;
mod resample;
mod subtitles;

pub use hdr::*;
pub use input::*;
pub use params::*;
pub use resample::*;
pub use subtitles::*;
