//! Fixtures for the pipeline's integration tests: tiny clips made by the `ffmpeg`
//! program (a test tool only; the product never runs it), and independent checks with
//! `ffprobe` — what other crates' tests share too comes from av1-testkit.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use av1core::{Decision, Plan, Report, Settings};

pub use av1_testkit::ffmpeg;
#[allow(unused_imports)] // not every test file probes
pub use av1_testkit::media::ffprobe_json as ffprobe;

/// Streams of one codec type from ffprobe's JSON.
pub fn streams<'a>(probe: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    probe["streams"].as_array().unwrap().iter().filter(|s| s["codec_type"] == kind).collect()
}

/// Frames of the first video stream that decode, counted by ffprobe (libdav1d).
pub fn decoded_frames(path: &Path) -> u64 {
    let frames = av1_testkit::probe(
        path,
        &["-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames"],
    );
    frames.parse().unwrap_or(0)
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Writes a small PGS (Blu-ray `.sup`) subtitle file: two captions (a white bar of
/// 160 × 10 pixels in a 200 × 20 object on a `width` × `height` screen), shown at 0.25 s
/// and 1.5 s and cleared at 1.0 s and 1.9 s. FFmpeg cannot encode PGS, and a bitmap
/// subtitle is needed to make VobSub too (`ffmpeg -fix_sub_duration -i x.sup -c:s dvdsub`).
pub fn write_pgs(dir: &Path, name: &str, width: u16, height: u16) -> PathBuf {
    // A segment: "PG", PTS and DTS (90 kHz), type, size, payload.
    fn segment(out: &mut Vec<u8>, pts: u32, kind: u8, payload: &[u8]) {
        out.extend_from_slice(b"PG");
        out.extend_from_slice(&pts.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
    }
    let (ow, oh, x, y) = (200u16, 20u16, 40u16, height - 60);
    // Run-length coded lines: 0x00 0x40|hi lo = a run of transparent colour 0,
    // 0x00 0xC0|hi lo colour = a run of `colour`, 0x00 0x00 = end of line.
    let mut rle = Vec::new();
    for line in 0..oh {
        if (5..15).contains(&line) {
            rle.extend_from_slice(&[0x00, 0x40, 20, 0x00, 0xC0, 160, 1, 0x00, 0x40, 20]);
        } else {
            rle.extend_from_slice(&[0x00, 0x40, ow as u8]);
        }
        rle.extend_from_slice(&[0x00, 0x00]);
    }
    let mut out = Vec::new();
    for (number, (pts, shown)) in
        [(22_500u32, true), (90_000, false), (135_000, true), (171_000, false)].into_iter().enumerate()
    {
        let number = number as u16;
        // Presentation composition: screen size, frame rate code, number, state
        // (0x80 = epoch start, 0 = normal), palette flags, objects (id, window, position).
        let mut pcs = Vec::new();
        pcs.extend_from_slice(&width.to_be_bytes());
        pcs.extend_from_slice(&height.to_be_bytes());
        pcs.push(0x10);
        pcs.extend_from_slice(&number.to_be_bytes());
        pcs.extend_from_slice(&[if shown { 0x80 } else { 0 }, 0, 0, u8::from(shown)]);
        if shown {
            pcs.extend_from_slice(&[0, 0, 0, 0]);
            pcs.extend_from_slice(&x.to_be_bytes());
            pcs.extend_from_slice(&y.to_be_bytes());
        }
        segment(&mut out, pts, 0x16, &pcs);
        // Window definition: one window where the object goes.
        let mut wds = vec![1, 0];
        for v in [x, y, ow, oh] {
            wds.extend_from_slice(&v.to_be_bytes());
        }
        segment(&mut out, pts, 0x17, &wds);
        if shown {
            // Palette: entry 0 transparent black, entry 1 opaque white (Y, Cr, Cb, alpha).
            segment(&mut out, pts, 0x14, &[0, 0, 0, 16, 128, 128, 0, 1, 235, 128, 128, 255]);
            // Object: id, version, first-and-last flag, data length (3 bytes), size, lines.
            let mut ods = vec![0, 0, 0, 0xC0];
            ods.extend_from_slice(&(rle.len() as u32 + 4).to_be_bytes()[1..]);
            ods.extend_from_slice(&ow.to_be_bytes());
            ods.extend_from_slice(&oh.to_be_bytes());
            ods.extend_from_slice(&rle);
            segment(&mut out, pts, 0x15, &ods);
        }
        segment(&mut out, pts, 0x80, &[]);
    }
    let p = dir.join(name);
    std::fs::write(&p, out).unwrap();
    p
}

/// Per-packet timing, size and MD5 of the stream `selector` (ffprobe's `-select_streams`),
/// and the MD5 of its codec private data: equal listings mean the stream was copied
/// byte for byte.
pub fn packet_listing(path: &Path, selector: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", selector, "-show_data_hash", "MD5"])
        .args([
            "-show_entries",
            "packet=pts_time,duration_time,size,data_hash:stream=codec_name,extradata_hash",
        ])
        .args(["-of", "compact"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `ffmpeg -v error -i PATH ARGS -`: what the ffmpeg program decodes, raw, from stdout.
pub fn decode_raw(path: &Path, args: &[&str]) -> Vec<u8> {
    let out =
        Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(path).args(args).arg("-").output().unwrap();
    assert!(out.status.success(), "ffmpeg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Signed 16-bit little-endian samples.
pub fn s16(bytes: &[u8]) -> Vec<i16> {
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// The dominant colour ("red", "lime" or "blue") of the centre pixel of every picture
/// of the first video stream, decoded by the ffmpeg program at `width` × `height`.
pub fn centre_colours(path: &Path, width: usize, height: usize) -> Vec<&'static str> {
    let rgb = decode_raw(
        path,
        &["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24"],
    );
    rgb.chunks_exact(width * height * 3)
        .map(|f| {
            let px = &f[((height / 2) * width + width / 2) * 3..][..3];
            ["red", "lime", "blue"][(0..3).max_by_key(|&c| px[c]).unwrap()]
        })
        .collect()
}

/// The first audio stream decoded by the ffmpeg program: mono, 48 kHz.
pub fn mono_48k(path: &Path) -> Vec<i16> {
    s16(&decode_raw(path, &["-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le"]))
}

/// Zero crossings in the 20 ms of `samples` (48 kHz) from `seconds`: 2 × 0.02 × f for a
/// tone of f Hz (17.6 at 440 Hz, 35 at 880, 70 at 1760), 0 for silence.
pub fn crossings_at(samples: &[i16], seconds: f64) -> usize {
    let start = (seconds * 48000.0) as usize;
    samples[start..start + 960].windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
}

/// Inserts an HDR10+ (SMPTE ST 2094-40) SEI message before every picture of an HEVC
/// Annex B stream, as HDR10+ encoders do: a prefix SEI NAL carrying ITU-T T.35 user
/// data (country 0xB5, provider 0x003C, oriented code 1, application 4) with one window's
/// dynamic metadata. x265 as Debian builds it ignores `dhdr10-info`, hence this.
pub fn add_hdr10plus_sei(annex_b: &[u8]) -> Vec<u8> {
    struct Bits(Vec<u8>);
    impl Bits {
        fn put(&mut self, value: u32, n: u32) {
            for b in (0..n).rev() {
                self.0.push(((value >> b) & 1) as u8);
            }
        }
        fn bytes(mut self) -> Vec<u8> {
            while !self.0.len().is_multiple_of(8) {
                self.0.push(0);
            }
            self.0.chunks(8).map(|c| c.iter().fold(0u8, |a, b| (a << 1) | b)).collect()
        }
    }
    let mut w = Bits(Vec::new());
    w.put(1, 8); // application_version
    w.put(1, 2); // num_windows
    w.put(400, 27); // targeted_system_display_maximum_luminance
    w.put(0, 1); // targeted_system_display_actual_peak_luminance_flag
    for v in [1000, 1000, 1000] {
        w.put(v, 17); // maxscl
    }
    w.put(100, 17); // average_maxrgb
    w.put(1, 4); // num_distribution_maxrgb_percentiles
    w.put(50, 7); // distribution_maxrgb_percentage
    w.put(8, 17); // distribution_maxrgb_percentile
    w.put(0, 10); // fraction_bright_pixels
    w.put(0, 1); // mastering_display_actual_peak_luminance_flag
    w.put(0, 1); // tone_mapping_flag
    w.put(0, 1); // color_saturation_mapping_flag
    let mut t35 = vec![0xB5, 0x00, 0x3C, 0x00, 0x01, 0x04];
    t35.extend(w.bytes());
    // sei_message: payload type 4 (registered ITU-T T.35), size, payload, trailing bits.
    let mut rbsp = vec![4, t35.len() as u8];
    rbsp.extend(&t35);
    rbsp.push(0x80);
    let mut sei = vec![39 << 1, 1]; // prefix SEI NAL header
    let mut zeros = 0;
    for b in rbsp {
        if zeros >= 2 && b <= 3 {
            sei.push(3); // emulation prevention
            zeros = 0;
        }
        sei.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    // NAL units between start codes (00 00 01; a leading zero of 00 00 00 01 is trimmed).
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= annex_b.len() {
        if annex_b[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut e = starts.get(k + 1).map_or(annex_b.len(), |n| n - 3);
        while e > s && annex_b[e - 1] == 0 {
            e -= 1;
        }
        let nal = &annex_b[s..e];
        let kind = (nal[0] >> 1) & 0x3f;
        // The first slice of a picture (first_slice_segment_in_pic_flag).
        if kind <= 21 && nal.len() > 2 && nal[2] & 0x80 != 0 {
            out.extend([0, 0, 0, 1]);
            out.extend(&sei);
        }
        out.extend([0, 0, 0, 1]);
        out.extend(nal);
    }
    out
}

pub const SRT: &str =
    "1\n00:00:00,200 --> 00:00:00,900\nHello there\n\n2\n00:00:01,000 --> 00:00:01,800\nSecond line\n";

pub const ASS: &str = "[Script Info]\nScriptType: v4.00+\nPlayResX: 320\nPlayResY: 240\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\nStyle: Default,DejaVu Sans,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\nDialogue: 0,0:00:00.20,0:00:01.50,Default,,0,0,0,,Styled text\n";

pub const CHAPTERS: &str = ";FFMETADATA1\ntitle=Test film\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\ntitle=Opening\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=Ending\n";

pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Settings for tests: the fastest preset, so the suite stays quick.
pub fn fast() -> Settings {
    Settings { preset: 12, ..Settings::default() }
}

/// Probe + plan; panics unless the plan is to encode.
pub fn plan_for(input: &Path, settings: &Settings) -> Plan {
    let info = av1core::probe(input).unwrap();
    match av1core::plan(&info, settings).unwrap() {
        Decision::Encode(p) => *p,
        Decision::Skip { reason, detail } => panic!("skipped: {reason:?} {detail}"),
    }
}

/// Probe, plan, transcode to `output`; asserts the source is left byte-identical.
pub fn transcode(input: &Path, output: &Path, settings: &Settings) -> Report {
    let before = std::fs::read(input).unwrap();
    let plan = plan_for(input, settings);
    let cancel = AtomicBool::new(false);
    let mut seen: Vec<av1core::Progress> = Vec::new();
    let report = av1core::transcode(input, output, &plan, &cancel, |p| seen.push(p.clone())).unwrap();
    assert_eq!(std::fs::read(input).unwrap(), before, "the source must be untouched");
    // Progress only moves forward and ends complete.
    assert!(seen.windows(2).all(|w| w[1].frames >= w[0].frames && w[1].bytes_written >= w[0].bytes_written));
    let last = seen.last().expect("progress is reported at least at the end");
    assert_eq!(last.frames, report.frames);
    assert_eq!(last.percent, 100.0);
    assert_eq!(last.eta, Some(std::time::Duration::ZERO));
    assert!(last.bytes_written > 0 && last.bytes_written <= report.output_size);
    report
}

/// Files in `dir` whose names mark them as partial outputs.
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(av1core::transcode::TEMP_SUFFIX))
        .collect()
}

pub fn f64_of(v: &serde_json::Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).or(v.as_f64()).unwrap_or(f64::NAN)
}
