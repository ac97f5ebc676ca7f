//! Encoders: SVT-AV1 for video (through our own bindings) and libopus for audio.

pub mod opus;
pub mod svt;
