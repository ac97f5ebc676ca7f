//! The check stage: every AV1 packet handed to the muxer is also decoded here, while
//! the encoder works (a decode costs little next to an encode, and overlapping it with
//! the encode hides most of it). Verification afterwards reads the written file's
//! packets back and compares their count and hash with what was decoded here, so
//! "every frame decodes" still holds for the file on disk, without a second decode.

use std::hash::Hasher;
use std::path::Path;

use crossbeam_channel::Receiver;
use ffmpeg_next as ff;

use crate::error::{Error, Result};
use crate::libav::{self, HdrSideData};

/// What the check stage saw: packets (count and hash of their bytes, in order) and the
/// frames they decoded to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Checked {
    pub packets: u64,
    pub hash: u64,
    pub frames: u64,
    /// HDR metadata of the first decoded frame (the AV1 metadata OBUs).
    pub bitstream: HdrSideData,
}

/// Hash of a sequence of packet payloads, the same here and in verification.
#[derive(Default)]
pub(crate) struct PacketHash {
    hasher: std::hash::DefaultHasher,
    pub packets: u64,
}

impl PacketHash {
    pub fn add(&mut self, data: &[u8]) {
        self.hasher.write_usize(data.len());
        self.hasher.write(data);
        self.packets += 1;
    }

    pub fn finish(&self) -> u64 {
        self.hasher.finish()
    }
}

pub(crate) fn run(params: ff::codec::Parameters, rx: Receiver<ff::Packet>, path: &Path) -> Result<Checked> {
    let fail = |what: String| Error::Verify { path: path.into(), problems: vec![what] };
    let mut ctx = ff::codec::context::Context::from_parameters(params)
        .map_err(Error::ffmpeg("setting up the AV1 check decoder", path))?;
    // One thread: dav1d decodes far faster than SVT-AV1 encodes, so a single thread keeps
    // up, and it costs the encoder the least (no thread synchronisation, no extra frame
    // buffers) on a machine the encoder keeps busy.
    ctx.set_threading(ff::threading::Config {
        kind: ff::threading::Type::Frame,
        count: 1,
        ..Default::default()
    });
    let mut decoder = ctx.decoder().video().map_err(Error::ffmpeg("opening the AV1 check decoder", path))?;
    let mut hash = PacketHash::default();
    let mut checked = Checked::default();
    let mut frame = ff::frame::Video::empty();
    let mut receive = |decoder: &mut ff::decoder::Video, checked: &mut Checked| -> Result<()> {
        loop {
            match decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    if checked.frames == 0 {
                        checked.bitstream = libav::frame_hdr(&frame);
                    }
                    checked.frames += 1;
                }
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == ff::ffi::EAGAIN => return Ok(()),
                Err(e) => return Err(fail(format!("frame {} does not decode: {e}", checked.frames + 1))),
            }
        }
    };
    // Ends when the muxer drops its sender.
    for packet in rx {
        hash.add(packet.data().unwrap_or(&[]));
        decoder
            .send_packet(&packet)
            .map_err(|e| fail(format!("packet {} does not decode: {e}", hash.packets)))?;
        receive(&mut decoder, &mut checked)?;
    }
    decoder.send_eof().map_err(|e| fail(format!("the AV1 stream does not end cleanly: {e}")))?;
    receive(&mut decoder, &mut checked)?;
    checked.packets = hash.packets;
    checked.hash = hash.finish();
    Ok(checked)
}

/// Removes temporal delimiter and padding OBUs from an AV1 temporal unit, as the
/// Matroska muxer would: the packet then reaches the file byte for byte as hashed.
pub(crate) fn strip_temporal_delimiters(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut pos = 0;
    while pos < data.len() {
        let header = data[pos];
        let obu_type = (header >> 3) & 0xf;
        let has_extension = header & 0x4 != 0;
        let has_size = header & 0x2 != 0;
        let header_len = 1 + usize::from(has_extension);
        if !has_size || pos + header_len > data.len() {
            return None; // not the layout SVT-AV1 writes: leave the packet as it is
        }
        let (size, leb_len) = leb128(&data[pos + header_len..])?;
        let end = pos.checked_add(header_len + leb_len)?.checked_add(size)?;
        if end > data.len() {
            return None;
        }
        if obu_type != 2 && obu_type != 15 {
            out.extend_from_slice(&data[pos..end]);
        }
        pos = end;
    }
    Some(out)
}

fn leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, b) in bytes.iter().take(8).enumerate() {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_delimiters_and_padding_are_removed_and_the_rest_kept() {
        // TD (type 2, size 0), a frame OBU (type 6) of 3 bytes, padding (type 15) of 2.
        let tu = [0x12, 0x00, 0x32, 0x03, 1, 2, 3, 0x7a, 0x02, 0, 0];
        assert_eq!(strip_temporal_delimiters(&tu).unwrap(), vec![0x32, 0x03, 1, 2, 3]);
        // A truncated OBU is refused, not cut.
        assert!(strip_temporal_delimiters(&[0x32, 0x05, 1]).is_none());
        assert_eq!(leb128(&[0x80, 0x01]), Some((128, 2)));
    }
}
