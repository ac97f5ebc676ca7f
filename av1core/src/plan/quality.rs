//! The quality tables: CRF by resolution class and source codec family
//! (`quality_lookup.json`), Opus bit rate by channel count (`audio_codec_lookup.json`).
//! Built in, and overridable by files whose entries replace the built-in ones.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const QUALITY_DEFAULT: &str = include_str!("../../tables/quality_lookup.json");
const AUDIO_DEFAULT: &str = include_str!("../../tables/audio_codec_lookup.json");

/// Resolution classes, smallest first.
pub const CLASSES: [&str; 5] = ["SD", "720p", "1080p", "1440p", "4K"];
/// Source codec families: `x264` is H.264 and older, `x265` HEVC, VP9 and newer.
pub const FAMILIES: [&str; 3] = ["x264", "x265", "av1"];

/// Both tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tables {
    /// class -> family -> CRF
    pub quality: BTreeMap<String, BTreeMap<String, u8>>,
    /// channel count -> kbit/s
    pub audio: BTreeMap<u32, u32>,
}

impl Default for Tables {
    fn default() -> Tables {
        Tables::from_json(QUALITY_DEFAULT, AUDIO_DEFAULT).expect("the built-in tables are valid")
    }
}

impl Tables {
    /// Parses both tables from JSON text.
    pub fn from_json(quality: &str, audio: &str) -> Result<Tables> {
        let quality: BTreeMap<String, BTreeMap<String, u8>> =
            serde_json::from_str(quality).map_err(|e| Error::Config(format!("quality_lookup.json: {e}")))?;
        let audio_raw: BTreeMap<String, u32> = serde_json::from_str(audio)
            .map_err(|e| Error::Config(format!("audio_codec_lookup.json: {e}")))?;
        let mut audio = BTreeMap::new();
        for (k, v) in audio_raw {
            let ch: u32 = k.trim().parse().map_err(|_| {
                Error::Config(format!("audio_codec_lookup.json: key {k:?} is not a channel count"))
            })?;
            audio.insert(ch, v);
        }
        let t = Tables { quality, audio };
        t.validate()?;
        Ok(t)
    }

    /// The built-in tables with the entries of the given files laid over them.
    pub fn with_overrides(quality_file: Option<&Path>, audio_file: Option<&Path>) -> Result<Tables> {
        let mut t = Tables::default();
        let read = |p: &Path| std::fs::read_to_string(p).map_err(Error::io("reading a quality table", p));
        if let Some(p) = quality_file {
            let over = Tables::from_json(&read(p)?, AUDIO_DEFAULT)?;
            for (class, row) in over.quality {
                t.quality.entry(class).or_default().extend(row);
            }
        }
        if let Some(p) = audio_file {
            let over = Tables::from_json(QUALITY_DEFAULT, &read(p)?)?;
            t.audio.extend(over.audio);
        }
        t.validate()?;
        Ok(t)
    }

    /// Every CRF in 1..=63, every class and family known, bit rates in 6..=510 kbit/s per channel.
    pub fn validate(&self) -> Result<()> {
        for (class, row) in &self.quality {
            if !CLASSES.contains(&class.as_str()) {
                return Err(Error::Config(format!("unknown resolution class {class:?} (use {CLASSES:?})")));
            }
            for (family, crf) in row {
                if !FAMILIES.contains(&family.as_str()) {
                    return Err(Error::Config(format!("unknown codec family {family:?} (use {FAMILIES:?})")));
                }
                if !(1..=63).contains(crf) {
                    return Err(Error::Config(format!("CRF {crf} for {class}/{family} is outside 1..=63")));
                }
            }
        }
        if self.audio.is_empty() {
            return Err(Error::Config("the audio table is empty".into()));
        }
        for (&ch, &kbps) in &self.audio {
            if ch == 0 || kbps < 6 * ch.min(2) || kbps > 510 * ch {
                return Err(Error::Config(format!("{kbps} kbit/s for {ch} channels is out of range")));
            }
        }
        Ok(())
    }

    /// CRF for a class and family; a missing entry falls back to the nearest smaller
    /// class of the same family, then to the built-in table.
    pub fn crf(&self, class: &str, family: &str) -> u8 {
        let pos = CLASSES.iter().position(|c| *c == class).unwrap_or(0);
        for c in CLASSES[..=pos].iter().rev() {
            if let Some(crf) = self.quality.get(*c).and_then(|r| r.get(family)) {
                return *crf;
            }
        }
        // Defaults always have every entry.
        Tables::default().quality[class][family]
    }

    /// Opus bit rate in kbit/s for `channels`: the table's value, linearly interpolated
    /// between listed counts, scaled per channel beyond the last.
    pub fn audio_kbps(&self, channels: u32) -> u32 {
        let channels = channels.max(1);
        if let Some(&v) = self.audio.get(&channels) {
            return v;
        }
        let below = self.audio.range(..channels).next_back();
        let above = self.audio.range(channels..).next();
        match (below, above) {
            (Some((&c0, &v0)), Some((&c1, &v1))) => {
                let t = f64::from(channels - c0) / f64::from(c1 - c0);
                (f64::from(v0) + t * (f64::from(v1) - f64::from(v0))).round() as u32
            }
            (Some((&c0, &v0)), None) => (f64::from(v0) * f64::from(channels) / f64::from(c0)).round() as u32,
            (None, Some((&c1, &v1))) => (f64::from(v1) * f64::from(channels) / f64::from(c1)).round() as u32,
            (None, None) => 64 * channels,
        }
    }
}

/// Resolution class by the larger of the width-based and height-based class, so
/// 1920×800 scope films are 1080p and 1440×1080 anamorphic is 1080p too.
pub fn resolution_class(width: u32, height: u32) -> &'static str {
    let by_width = match width {
        w if w >= 3200 => 4,
        w if w >= 2200 => 3,
        w if w >= 1700 => 2,
        w if w >= 1100 => 1,
        _ => 0,
    };
    let by_height = match height {
        h if h >= 1800 => 4,
        h if h >= 1300 => 3,
        h if h >= 900 => 2,
        h if h >= 600 => 1,
        _ => 0,
    };
    CLASSES[by_width.max(by_height)]
}

/// Codec family of a source codec (FFmpeg codec name).
pub fn codec_family(codec: &str) -> &'static str {
    match codec {
        "av1" => "av1",
        "hevc" | "vp9" | "vvc" => "x265",
        _ => "x264",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_classes() {
        let cases = [
            (640, 480, "SD"),
            (720, 576, "SD"),
            (960, 540, "SD"),
            (1280, 720, "720p"),
            (1280, 536, "720p"),
            (1920, 1080, "1080p"),
            (1920, 800, "1080p"),
            (1440, 1080, "1080p"),
            (2560, 1440, "1440p"),
            (3840, 2160, "4K"),
            (3840, 1600, "4K"),
            (4096, 1716, "4K"),
        ];
        for (w, h, want) in cases {
            assert_eq!(resolution_class(w, h), want, "{w}x{h}");
        }
    }

    #[test]
    fn crf_lookup_and_families() {
        let t = Tables::default();
        assert_eq!(t.crf("1080p", codec_family("h264")), 24);
        assert_eq!(t.crf("1080p", codec_family("hevc")), 26);
        assert_eq!(t.crf("4K", codec_family("vp9")), 22);
        assert_eq!(t.crf("SD", codec_family("mpeg2video")), 28);
        assert_eq!(t.crf("720p", codec_family("av1")), 33);
    }

    #[test]
    fn audio_interpolation() {
        let t = Tables::default();
        assert_eq!(t.audio_kbps(1), 64);
        assert_eq!(t.audio_kbps(2), 96);
        assert_eq!(t.audio_kbps(6), 256);
        assert_eq!(t.audio_kbps(8), 320);
        assert_eq!(t.audio_kbps(4), 176); // halfway between 96 and 256
        assert_eq!(t.audio_kbps(7), 288);
        assert_eq!(t.audio_kbps(3), 136);
    }

    #[test]
    fn overrides_merge_and_bad_tables_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q.json");
        std::fs::write(&q, r#"{"1080p": {"x264": 20}}"#).unwrap();
        let a = dir.path().join("a.json");
        std::fs::write(&a, r#"{"2": 128}"#).unwrap();
        let t = Tables::with_overrides(Some(&q), Some(&a)).unwrap();
        assert_eq!(t.crf("1080p", "x264"), 20);
        assert_eq!(t.crf("1080p", "x265"), 26, "untouched entries keep their defaults");
        assert_eq!(t.audio_kbps(2), 128);
        assert_eq!(t.audio_kbps(6), 256);

        std::fs::write(&q, r#"{"1080p": {"x264": 99}}"#).unwrap();
        assert!(Tables::with_overrides(Some(&q), None).is_err());
        std::fs::write(&q, r#"{"8K": {"x264": 20}}"#).unwrap();
        assert!(Tables::with_overrides(Some(&q), None).is_err());
        std::fs::write(&a, r#"{"two": 96}"#).unwrap();
        assert!(Tables::with_overrides(None, Some(&a)).is_err());
        std::fs::write(&a, "not json").unwrap();
        assert!(Tables::with_overrides(None, Some(&a)).is_err());
    }
}
