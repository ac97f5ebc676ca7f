//! HDR classification: from colour tags and the side data found on the stream or on
//! the first decoded frames.

use serde::{Deserialize, Serialize};

use crate::libav::HdrSideData;

/// H.273 transfer characteristics that mean HDR.
pub const TRANSFER_PQ: u8 = 16;
pub const TRANSFER_HLG: u8 = 18;

/// The kind of dynamic range a video stream has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HdrKind {
    Sdr,
    /// PQ transfer with static metadata (or none): preserved.
    Hdr10,
    /// Hybrid log-gamma: preserved.
    Hlg,
    /// SMPTE ST 2094-40 dynamic metadata: cannot be carried yet.
    Hdr10Plus,
    /// Dolby Vision: cannot be carried yet.
    DolbyVision,
}

impl HdrKind {
    /// HDR10+ and Dolby Vision carry per-frame metadata we cannot keep.
    pub fn is_dynamic(self) -> bool {
        matches!(self, HdrKind::Hdr10Plus | HdrKind::DolbyVision)
    }

    /// Anything but SDR needs 10-bit output and the source's colour description.
    pub fn is_hdr(self) -> bool {
        self != HdrKind::Sdr
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HdrKind::Sdr => "SDR",
            HdrKind::Hdr10 => "HDR10",
            HdrKind::Hlg => "HLG",
            HdrKind::Hdr10Plus => "HDR10+",
            HdrKind::DolbyVision => "Dolby Vision",
        }
    }
}

impl std::fmt::Display for HdrKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies a video stream. Dolby Vision wins over HDR10+, which wins over the
/// transfer function; BT.2020 primaries with an SDR transfer are SDR.
pub fn classify(transfer: u8, side: &HdrSideData) -> HdrKind {
    if side.dovi.is_some() || side.dovi_rpu {
        HdrKind::DolbyVision
    } else if side.hdr10plus {
        HdrKind::Hdr10Plus
    } else if transfer == TRANSFER_PQ {
        HdrKind::Hdr10
    } else if transfer == TRANSFER_HLG {
        HdrKind::Hlg
    } else {
        HdrKind::Sdr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::svt::ContentLight;
    use crate::probe::libav::DoviConfig;

    #[test]
    fn classification_table() {
        let none = HdrSideData::default();
        let cll = HdrSideData { content_light: Some(ContentLight { max_cll: 1000, max_fall: 400 }), ..none };
        let plus = HdrSideData { hdr10plus: true, ..cll };
        let dovi = HdrSideData {
            dovi: Some(DoviConfig {
                profile: 8,
                level: 6,
                rpu: true,
                el: false,
                bl: true,
                bl_compatibility_id: 1,
            }),
            ..plus
        };
        let rpu_only = HdrSideData { dovi_rpu: true, ..none };
        let cases = [
            (1, none, HdrKind::Sdr),  // BT.709
            (14, none, HdrKind::Sdr), // BT.2020 10-bit transfer: SDR
            (2, none, HdrKind::Sdr),  // unspecified
            (TRANSFER_PQ, none, HdrKind::Hdr10),
            (TRANSFER_PQ, cll, HdrKind::Hdr10),
            (TRANSFER_HLG, none, HdrKind::Hlg),
            (TRANSFER_PQ, plus, HdrKind::Hdr10Plus),
            (TRANSFER_PQ, dovi, HdrKind::DolbyVision),
            (2, dovi, HdrKind::DolbyVision), // profile 5 often has no colour tags
            (TRANSFER_PQ, rpu_only, HdrKind::DolbyVision),
        ];
        for (trc, side, want) in cases {
            assert_eq!(classify(trc, &side), want, "transfer {trc}, {side:?}");
        }
        assert!(HdrKind::Hdr10Plus.is_dynamic() && HdrKind::DolbyVision.is_dynamic());
        assert!(!HdrKind::Hdr10.is_dynamic() && HdrKind::Hlg.is_hdr() && !HdrKind::Sdr.is_hdr());
    }
}
