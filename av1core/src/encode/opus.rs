//! Opus audio through libopus's multistream encoder: mono and stereo as one stream,
//! surround (3–8 channels) with channel mapping family 1 — never a downmix.

use ::opus::{Application, Bitrate, MSEncoder};

use crate::error::{Error, Result};

/// Opus always runs at 48 kHz here; 20 ms frames.
pub const SAMPLE_RATE: u32 = 48_000;
pub const FRAME_SAMPLES: usize = 960;

/// Streams, coupled streams and mapping of family 1 (RFC 7845 §5.1.1.2; the table
/// libopus itself uses), indexed by channel count - 1.
const VORBIS_MAPPINGS: [(u8, u8, &[u8]); 8] = [
    (1, 0, &[0]),
    (1, 1, &[0, 1]),
    (2, 1, &[0, 2, 1]),
    (2, 2, &[0, 1, 2, 3]),
    (3, 2, &[0, 4, 1, 2, 3]),
    (4, 2, &[0, 4, 1, 2, 3, 5]),
    (4, 3, &[0, 4, 1, 2, 3, 5, 6]),
    (5, 3, &[0, 6, 1, 2, 3, 4, 5, 7]),
];

/// For each Vorbis-order channel, the index of that channel in FFmpeg's native order
/// for the canonical layout of that count (see `audio::canonical_layout`):
/// mono, stereo, 3.0, quad, 5.0(back), 5.1(back), 6.1, 7.1.
const FROM_NATIVE: [&[usize]; 8] = [
    &[0],
    &[0, 1],
    &[0, 2, 1],
    &[0, 1, 2, 3],
    &[0, 2, 1, 3, 4],
    &[0, 2, 1, 4, 5, 3],
    &[0, 2, 1, 5, 6, 4, 3],
    &[0, 2, 1, 6, 7, 4, 5, 3],
];

/// FFmpeg native channel masks of the canonical layout for each count, the order
/// `FROM_NATIVE` expects: mono, stereo, 3.0, quad, 5.0(back), 5.1(back), 6.1, 7.1.
/// A source with another layout of the same count is remapped by the resampler
/// (5.1(side) becomes 5.1 with the side pair as the back pair: the same speakers for Opus).
pub fn layout_mask(channels: usize) -> u64 {
    use ffmpeg_next::ffi::*;
    match channels {
        1 => AV_CH_LAYOUT_MONO,
        2 => AV_CH_LAYOUT_STEREO,
        3 => AV_CH_LAYOUT_SURROUND,
        4 => AV_CH_LAYOUT_QUAD,
        5 => AV_CH_LAYOUT_5POINT0_BACK,
        6 => AV_CH_LAYOUT_5POINT1_BACK,
        7 => AV_CH_LAYOUT_6POINT1,
        _ => AV_CH_LAYOUT_7POINT1,
    }
}

/// How many channels the Opus track gets for a source with these speakers (`mask`, FFmpeg's
/// native mask) and `count` channels: the smallest canonical layout that holds every
/// source speaker (side and back pairs standing for each other), so that nothing is mixed
/// away — 2.1 and 3.1 become 5.1 with silent channels rather than losing their LFE. A
/// layout no canonical one holds (or an unknown one) keeps its count.
pub fn channels_for(mask: u64, count: usize) -> usize {
    use ffmpeg_next::ffi::*;
    let side = AV_CH_SIDE_LEFT | AV_CH_SIDE_RIGHT;
    let back = AV_CH_BACK_LEFT | AV_CH_BACK_RIGHT;
    // 5.1(side), quad(side)... name the same speakers as their back versions.
    let as_back = if mask & side == side && mask & back == 0 { (mask & !side) | back } else { mask };
    if mask == 0 || mask.count_ones() as usize != count {
        return count;
    }
    (count.max(1)..=MAX_CHANNELS)
        .find(|&n| {
            let c = layout_mask(n);
            mask & !c == 0 || as_back & !c == 0
        })
        .unwrap_or(count)
}

/// Largest channel count Opus carries here (mapping family 1).
pub const MAX_CHANNELS: usize = 8;

/// An Opus encoder for one audio track.
pub struct OpusEncoder {
    enc: MSEncoder,
    channels: usize,
    pre_skip: u16,
    input_rate: u32,
    reordered: Vec<f32>,
    out: Vec<u8>,
}

impl OpusEncoder {
    /// `channels` in 1..=8, `bitrate` in bits per second for the whole track,
    /// `input_rate` the source's sample rate (recorded in the header only).
    pub fn new(channels: usize, bitrate: u32, input_rate: u32) -> Result<OpusEncoder> {
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(Error::Config(format!("Opus cannot carry {channels} channels (1..=8)")));
        }
        let (streams, coupled, mapping) = VORBIS_MAPPINGS[channels - 1];
        let op = |op| move |source| Error::Opus { op, source };
        let mut enc = MSEncoder::new(SAMPLE_RATE, streams, coupled, mapping, Application::Audio)
            .map_err(op("multistream encoder create"))?;
        enc.set_bitrate(Bitrate::Bits(bitrate as i32)).map_err(op("set bitrate"))?;
        enc.set_vbr(true).map_err(op("set vbr"))?;
        let pre_skip = enc.get_lookahead().map_err(op("get lookahead"))?;
        Ok(OpusEncoder {
            enc,
            channels,
            pre_skip: u16::try_from(pre_skip).unwrap_or(312),
            input_rate,
            reordered: vec![0.0; FRAME_SAMPLES * channels],
            out: vec![0; 4000 * channels],
        })
    }

    /// Samples the decoder must drop at the start (the encoder's look-ahead).
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The `OpusHead` identification header: Matroska's codec private.
    pub fn head(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(19 + 2 + self.channels);
        h.extend_from_slice(b"OpusHead");
        h.push(1);
        h.push(self.channels as u8);
        h.extend_from_slice(&self.pre_skip.to_le_bytes());
        h.extend_from_slice(&self.input_rate.to_le_bytes());
        h.extend_from_slice(&0i16.to_le_bytes());
        if self.channels <= 2 {
            h.push(0);
        } else {
            let (streams, coupled, mapping) = VORBIS_MAPPINGS[self.channels - 1];
            h.push(1);
            h.push(streams);
            h.push(coupled);
            h.extend_from_slice(mapping);
        }
        h
    }

    /// Encodes one 20 ms frame of interleaved samples in FFmpeg's native channel order
    /// (`FRAME_SAMPLES * channels` values; pad a short last frame with silence).
    pub fn encode(&mut self, native: &[f32]) -> Result<&[u8]> {
        let ch = self.channels;
        if native.len() != FRAME_SAMPLES * ch {
            return Err(Error::Config(format!(
                "Opus frame of {} samples, expected {}",
                native.len(),
                FRAME_SAMPLES * ch
            )));
        }
        let order = FROM_NATIVE[ch - 1];
        for (dst, src) in self.reordered.chunks_exact_mut(ch).zip(native.chunks_exact(ch)) {
            for (d, &i) in dst.iter_mut().zip(order) {
                *d = src[i];
            }
        }
        let n = self
            .enc
            .encode_float(&self.reordered, &mut self.out)
            .map_err(|source| Error::Opus { op: "encode", source })?;
        Ok(&self.out[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_speaker_finds_a_place_and_nothing_is_mixed_away() {
        use ffmpeg_next::ffi::*;
        let lfe = AV_CH_LOW_FREQUENCY;
        assert_eq!(channels_for(AV_CH_LAYOUT_MONO, 1), 1);
        assert_eq!(channels_for(AV_CH_LAYOUT_STEREO, 2), 2);
        assert_eq!(channels_for(AV_CH_LAYOUT_5POINT1, 6), 6, "5.1(side) is 5.1");
        assert_eq!(channels_for(AV_CH_LAYOUT_7POINT1, 8), 8);
        assert_eq!(channels_for(AV_CH_LAYOUT_STEREO | lfe, 3), 6, "2.1 keeps its LFE in 5.1");
        assert_eq!(channels_for(AV_CH_LAYOUT_SURROUND | lfe, 4), 6, "3.1 too");
        assert_eq!(channels_for(AV_CH_LAYOUT_4POINT1, 5), 7, "4.1 (back centre) in 6.1");
        assert_eq!(channels_for(AV_CH_LAYOUT_2_2, 4), 4, "quad(side) is quad");
        assert_eq!(channels_for(0, 3), 3, "unknown layouts keep their count");
        assert_eq!(channels_for(AV_CH_LAYOUT_STEREO_DOWNMIX, 2), 2);
    }

    #[test]
    fn head_for_stereo_and_surround() {
        let e = OpusEncoder::new(2, 96_000, 44_100).unwrap();
        let h = e.head();
        assert_eq!(&h[..8], b"OpusHead");
        assert_eq!(h.len(), 19);
        assert_eq!(h[9], 2);
        assert_eq!(u32::from_le_bytes(h[12..16].try_into().unwrap()), 44_100);
        assert_eq!(h[18], 0);

        let e = OpusEncoder::new(6, 256_000, 48_000).unwrap();
        let h = e.head();
        assert_eq!(h.len(), 21 + 6);
        assert_eq!(h[18], 1, "mapping family 1 for 5.1");
        assert_eq!(&h[19..21], &[4, 2]);
        assert_eq!(&h[21..], &[0, 4, 1, 2, 3, 5]);
        assert!(e.pre_skip() > 0);
    }

    #[test]
    fn encodes_a_surround_frame_and_refuses_nine_channels() {
        let mut e = OpusEncoder::new(8, 320_000, 48_000).unwrap();
        let frame: Vec<f32> = (0..FRAME_SAMPLES * 8).map(|i| ((i as f32) * 0.01).sin() * 0.3).collect();
        let pkt = e.encode(&frame).unwrap();
        assert!(pkt.len() > 10);
        assert!(OpusEncoder::new(9, 320_000, 48_000).is_err());
        assert!(e.encode(&frame[..10]).is_err());
    }
}
