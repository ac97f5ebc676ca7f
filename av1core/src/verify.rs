//! Verification: the one check a result must pass before it counts. The output
//! reopens; it has one AV1 video stream; the audio, subtitle and attachment streams
//! and the chapters are those planned; the duration is within max(0.5 s, 1%) of the
//! source's; every video frame decodes; the HDR signalling (colour description,
//! mastering display, content light level) equals the source's, in the AV1 stream and
//! in the Matroska track. A result made elsewhere must also show the source's pictures
//! ([`content`]).

mod content;

use std::path::Path;

use ffmpeg_next as ff;
use serde::{Deserialize, Serialize};

use crate::encode::svt::{ContentLight, MasteringDisplay};
use crate::error::{Error, Result};
use crate::libav;
use crate::plan::Plan;
use crate::probe::{self, hdr, HdrKind, StreamKind};

/// What verification measured on the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub duration: f64,
    pub frames: u64,
    pub audio: usize,
    pub subtitles: usize,
    pub attachments: usize,
    pub chapters: usize,
    pub hdr: HdrKind,
    pub bit_depth: u8,
    /// The lowest PSNR (luma, dB) of the pictures compared with the source's, when
    /// they were ([`verify_from`]).
    #[serde(default)]
    pub content_psnr: Option<f64>,
}

/// Verifies `output` against `plan`. `frames_written`, when known, must equal the
/// number of frames that decode. Every problem found is listed in the error.
pub fn verify(output: &Path, plan: &Plan, frames_written: Option<u64>) -> Result<Verification> {
    check(output, plan, plan.duration, frames_written, |main| decode_all(output, main, None))
}

/// [`verify`] for a result made elsewhere (a worker's upload) from `source`, which must
/// also show the source's pictures at [`content::SAMPLES`] moments (PSNR at least
/// [`content::MIN_PSNR`]): another clip, a black or frozen encode or a shifted
/// timeline fails. When the source's clock jumps (MPEG-TS/PS cut and joined), its
/// declared duration is meaningless and the length read from the whole source is the
/// one to match, as the transcode itself did; its timestamps were rewritten, so its
/// pictures are not compared.
pub fn verify_from(
    source: &Path,
    output: &Path,
    plan: &Plan,
    frames_written: Option<u64>,
) -> Result<Verification> {
    let jumping = crate::probe::timeline::length_if_jumping(source)?;
    let duration = jumping.unwrap_or(plan.duration);
    let originals = match jumping {
        None => content::source_pictures(source, plan, duration)?,
        Some(_) => Vec::new(),
    };
    let mut sampler = content::Sampler::new(plan, &originals);
    let sampling = jumping.is_none().then_some(&mut sampler);
    let mut verification =
        check(output, plan, duration, frames_written, |main| decode_all(output, main, sampling))?;
    if jumping.is_some() {
        return Ok(verification);
    }
    let mut problems = Vec::new();
    if originals.is_empty() {
        problems.push("no picture of the source could be compared with the result".to_owned());
    }
    let similarity = content::compare(&originals, &sampler.pictures, &mut problems);
    if !problems.is_empty() {
        return Err(Error::Verify { path: output.into(), problems });
    }
    verification.content_psnr = similarity.psnr.iter().copied().reduce(f64::min);
    Ok(verification)
}

/// Verifies a file this library just wrote, whose video packets were decoded while it
/// was written (`checked`): instead of decoding again, the file's packets are read back
/// and must be exactly those that decoded (same count, same bytes by hash).
pub(crate) fn verify_written(
    output: &Path,
    plan: &Plan,
    frames_written: u64,
    checked: &crate::transcode::check::Checked,
    source_duration: Option<f64>,
) -> Result<Verification> {
    let duration = source_duration.unwrap_or(plan.duration);
    check(output, plan, duration, Some(frames_written), |main| compare_packets(output, main, checked))
}

/// `duration`: the source's, which the result must match (the plan's, or the length
/// read while transcoding a source whose clock jumped).
fn check(
    output: &Path,
    plan: &Plan,
    duration: f64,
    frames_written: Option<u64>,
    frames: impl FnOnce(usize) -> Result<DecodeCheck>,
) -> Result<Verification> {
    let info = probe::probe(output)
        .map_err(|e| Error::Verify { path: output.into(), problems: vec![e.to_string()] })?;
    let mut problems = container_problems(&info, plan, duration);
    let mut decoded = DecodeCheck::default();
    if let Some(main) = info.main_video {
        match frames(main) {
            Ok(d) => decoded = d,
            Err(e) => problems.push(e.to_string()),
        }
    }
    if let Some(n) = frames_written {
        if decoded.frames != n {
            problems.push(format!("{} frames decode, {n} were written", decoded.frames));
        }
    }
    if decoded.frames == 0 {
        problems.push("no video frame decodes".into());
    }
    problems.extend(picture_problems(&info, plan, &decoded));
    if !problems.is_empty() {
        return Err(Error::Verify { path: output.into(), problems });
    }
    Ok(Verification {
        duration: info.duration,
        frames: decoded.frames,
        audio: info.count(StreamKind::Audio),
        subtitles: info.count(StreamKind::Subtitle),
        attachments: info.count(StreamKind::Attachment),
        chapters: info.chapters.len(),
        hdr: info.hdr.kind,
        bit_depth: info.video().map_or(0, |(_, v)| v.bit_depth),
        content_psnr: None,
    })
}

/// The container against the plan: an AV1 video (and the copied ones), as many audio,
/// subtitle and attachment streams and chapters as planned, the source's duration.
fn container_problems(info: &probe::MediaInfo, plan: &Plan, duration: f64) -> Vec<String> {
    let mut problems = Vec::new();
    // The main video is AV1; other video streams are the source's, copied as planned.
    let videos: Vec<_> =
        info.streams.iter().filter(|s| s.kind == StreamKind::Video && !s.attached_pic).collect();
    let main_codec = info.video().map(|(s, _)| s.codec.as_str());
    if main_codec != Some("av1") || videos.len() != plan.expected(StreamKind::Video) {
        problems.push(format!(
            "expected an AV1 video stream and {} copied, found {}",
            plan.expected(StreamKind::Video).saturating_sub(1),
            videos.iter().map(|s| s.codec.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    for (kind, name) in [
        (StreamKind::Audio, "audio"),
        (StreamKind::Subtitle, "subtitle"),
        (StreamKind::Attachment, "attachment"),
    ] {
        let (want, got) = (plan.expected(kind), info.count(kind));
        if want != got {
            problems.push(format!("{got} {name} streams, {want} planned"));
        }
    }
    if info.chapters.len() != plan.chapters {
        problems.push(format!("{} chapters, {} in the source", info.chapters.len(), plan.chapters));
    }
    let tolerance = (duration * 0.01).max(0.5);
    if (info.duration - duration).abs() > tolerance {
        problems.push(format!("duration {:.3} s, source {:.3} s", info.duration, duration));
    }
    problems
}

/// The picture against the plan: displayed as wide as the source, the HDR kind, bit
/// depth and colour description planned, the HDR side data in the track and in the
/// AV1 stream both.
fn picture_problems(info: &probe::MediaInfo, plan: &Plan, decoded: &DecodeCheck) -> Vec<String> {
    let mut problems = Vec::new();
    let vp = &plan.video;
    if let Some((_, v)) = info.video() {
        // Anamorphic pixels kept; the display size is stored in whole pixels, hence a
        // small tolerance.
        let want = probe::display_aspect(vp.width, vp.height, vp.sample_aspect);
        let got = v.display_aspect();
        if (got / want - 1.0).abs() > 0.005 {
            problems.push(format!("displayed at {got:.4}:1, source {want:.4}:1"));
        }
        if v.bit_depth != vp.bit_depth {
            problems.push(format!("output is {}-bit, {}-bit planned", v.bit_depth, vp.bit_depth));
        }
        if let Some(c) = vp.color {
            let got = (v.primaries, v.transfer, v.matrix);
            if got != (c.primaries, c.transfer, c.matrix) {
                problems.push(format!(
                    "colour description {got:?}, source ({}, {}, {})",
                    c.primaries, c.transfer, c.matrix
                ));
            }
        }
    }
    // HDR: what the source had (the HDR10 base layer when dynamic HDR was opted in).
    let want_kind = if vp.hdr.is_dynamic() {
        hdr::classify(vp.color.map_or(2, |c| c.transfer), &Default::default())
    } else {
        vp.hdr
    };
    if info.hdr.kind != want_kind {
        problems.push(format!("output is {}, source is {}", info.hdr.kind, want_kind));
    }
    for (place, side) in [("Matroska track", &decoded.container), ("AV1 stream", &decoded.bitstream)] {
        if !same_mastering(vp.mastering_display.as_ref(), side.mastering_display.as_ref()) {
            problems.push(format!(
                "mastering display in the {place} is {:?}, source {:?}",
                side.mastering_display, vp.mastering_display
            ));
        }
        if vp.content_light != side.content_light {
            problems.push(format!(
                "content light level in the {place} is {:?}, source {:?}",
                side.content_light, vp.content_light
            ));
        }
    }
    problems
}

/// Equal within what the fixed-point encodings keep (0.00002 for chromaticity, 1e-4
/// relative for luminance).
fn same_mastering(a: Option<&MasteringDisplay>, b: Option<&MasteringDisplay>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let xy = |p: (f64, f64), q: (f64, f64)| {
                (p.0 - q.0).abs() < 2e-5 + 1e-9 && (p.1 - q.1).abs() < 2e-5 + 1e-9
            };
            let lum = |x: f64, y: f64| (x - y).abs() <= 1e-4 * x.abs().max(y.abs()) + 1e-4;
            xy(a.red, b.red)
                && xy(a.green, b.green)
                && xy(a.blue, b.blue)
                && xy(a.white_point, b.white_point)
                && lum(a.max_luminance, b.max_luminance)
                && lum(a.min_luminance, b.min_luminance)
        }
        _ => false,
    }
}

#[derive(Default)]
struct DecodeCheck {
    frames: u64,
    container: Side,
    bitstream: Side,
}

#[derive(Default)]
struct Side {
    mastering_display: Option<MasteringDisplay>,
    content_light: Option<ContentLight>,
}

/// Reads the video packets of the written file and compares them with those the check
/// stage decoded.
fn compare_packets(
    path: &Path,
    index: usize,
    checked: &crate::transcode::check::Checked,
) -> Result<DecodeCheck> {
    let mut ictx = ff::format::input(&path).map_err(Error::ffmpeg("reopening the output", path))?;
    let st = ictx.stream(index).ok_or_else(|| Error::NoVideoStream { path: path.into() })?;
    let container = libav::stream_hdr(&st);
    let mut hash = crate::transcode::check::PacketHash::default();
    for (s, packet) in ictx.packets() {
        if s.index() == index {
            hash.add(packet.data().unwrap_or(&[]));
        }
    }
    if hash.packets != checked.packets || hash.finish() != checked.hash {
        return Err(Error::Verify {
            path: path.into(),
            problems: vec![format!(
                "the file holds {} video packets that differ from the {} that were decoded",
                hash.packets, checked.packets
            )],
        });
    }
    Ok(DecodeCheck {
        frames: checked.frames,
        container: Side {
            mastering_display: container.mastering_display,
            content_light: container.content_light,
        },
        bitstream: Side {
            mastering_display: checked.bitstream.mastering_display,
            content_light: checked.bitstream.content_light,
        },
    })
}

/// Decodes every frame of the video stream; reads HDR metadata from the track and
/// from the first decoded frame (the AV1 metadata OBUs); offers every frame to
/// `sampler` when given.
fn decode_all(path: &Path, index: usize, mut sampler: Option<&mut content::Sampler>) -> Result<DecodeCheck> {
    let mut ictx = ff::format::input(&path).map_err(Error::ffmpeg("reopening the output", path))?;
    let st = ictx.stream(index).ok_or_else(|| Error::NoVideoStream { path: path.into() })?;
    let time_base = st.time_base();
    let container = libav::stream_hdr(&st);
    let mut decoder = probe::open_video_decoder(&st, path, true)?;
    let mut frame = ff::frame::Video::empty();
    let mut check = DecodeCheck {
        container: Side {
            mastering_display: container.mastering_display,
            content_light: container.content_light,
        },
        ..Default::default()
    };
    let mut receive = |decoder: &mut ff::decoder::Video, check: &mut DecodeCheck| -> Result<()> {
        loop {
            match decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    if check.frames == 0 {
                        let side = libav::frame_hdr(&frame);
                        check.bitstream = Side {
                            mastering_display: side.mastering_display,
                            content_light: side.content_light,
                        };
                    }
                    check.frames += 1;
                    if let Some(s) = sampler.as_deref_mut() {
                        s.offer(&frame, time_base, path)?;
                    }
                }
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == ff::ffi::EAGAIN => return Ok(()),
                Err(e) => {
                    return Err(Error::Ffmpeg { op: "decoding the output", path: path.into(), source: e })
                }
            }
        }
    };
    for (s, packet) in ictx.packets() {
        if s.index() != index {
            continue;
        }
        decoder.send_packet(&packet).map_err(Error::ffmpeg("decoding the output", path))?;
        receive(&mut decoder, &mut check)?;
    }
    decoder.send_eof().map_err(Error::ffmpeg("decoding the output", path))?;
    receive(&mut decoder, &mut check)?;
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcode::check::{Checked, PacketHash};

    /// The packet comparison that replaces a second decode must catch any difference
    /// between what was decoded and what is in the file.
    #[test]
    fn written_file_must_hold_exactly_the_packets_that_decoded() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("in.mkv");
        let ok = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-nostdin", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=1"])
            .args(["-c:v", "libx264"])
            .arg(&src)
            .status()
            .unwrap();
        assert!(ok.success());
        let info = crate::probe(&src).unwrap();
        let plan = match crate::plan(&info, &crate::Settings { preset: 12, ..Default::default() }).unwrap() {
            crate::Decision::Encode(p) => *p,
            d => panic!("{d:?}"),
        };
        let out = d.path().join("out.mkv");
        crate::transcode(&src, &out, &plan, &std::sync::atomic::AtomicBool::new(false), |_| {}).unwrap();

        // The true record of the file's packets passes...
        let mut ictx = ff::format::input(&out).unwrap();
        let mut hash = PacketHash::default();
        for (_, p) in ictx.packets() {
            hash.add(p.data().unwrap_or(&[]));
        }
        let good = Checked { packets: hash.packets, hash: hash.finish(), frames: 24, ..Default::default() };
        assert!(verify_written(&out, &plan, 24, &good, None).is_ok());
        // ...one packet more, or other bytes, do not.
        for bad in [
            Checked { packets: good.packets + 1, ..good.clone() },
            Checked { hash: good.hash ^ 1, ..good.clone() },
        ] {
            let err = verify_written(&out, &plan, 24, &bad, None).unwrap_err();
            assert!(err.to_string().contains("differ"), "{err}");
        }
        // Frames decoded must equal frames written.
        assert!(verify_written(&out, &plan, 25, &good, None).is_err());
    }
}
