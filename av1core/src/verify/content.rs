//! The content check: a result made elsewhere must be the same film as its source, not
//! only a file of the right shape. A handful of the source's pictures spread over it
//! are decoded first (a seek to a keyframe each: cheap), luma only, scaled down; while
//! verification decodes every frame of the result, its pictures at the same moments
//! are kept; each pair is compared by PSNR. Another clip, a black or frozen encode, or a timeline
//! shifted by more than a moment gives pictures that do not match.
//!
//! The threshold comes from measurements (BENCHMARKS.md, "content check"): real
//! encodes score far above it at any CRF this product uses, unrelated pictures far
//! below.

use std::path::Path;

use ff::format::Pixel;
use ffmpeg_next as ff;

use crate::error::{Error, Result};
use crate::libav;
use crate::plan::Plan;

/// Pictures compared per file.
pub const SAMPLES: usize = 6;
/// Width of the pictures compared (height by the result's aspect): fine detail and
/// coding noise average out, content stays.
const WIDTH: u32 = 256;
/// Below this PSNR (luma, dB) a picture is not the source's.
pub const MIN_PSNR: f64 = 22.0;

/// A luma picture at a moment of the result's timeline.
#[derive(Debug, Clone)]
pub(crate) struct Picture {
    /// Seconds on the result's timeline.
    pub at: f64,
    pub luma: Vec<u8>,
}

/// The source's pictures to compare: near the middle of each of [`SAMPLES`] equal
/// parts of `duration`, at the source's keyframe there (a seek and a frame or two, not
/// a stretch of decoding), scaled and turned as the result's pictures are.
pub(crate) fn source_pictures(source: &Path, plan: &Plan, duration: f64) -> Result<Vec<Picture>> {
    let mut ictx = ff::format::input(&source).map_err(Error::ffmpeg("opening the source", source))?;
    let index = plan.video.stream;
    let st = ictx.stream(index).ok_or_else(|| Error::NoVideoStream { path: source.into() })?;
    let time_base = st.time_base();
    let mut decoder = crate::probe::open_video_decoder(&st, source, true)?;
    // The transcode moved the source's timeline to start at zero.
    let start = match libav::start_time(&ictx) {
        ff::ffi::AV_NOPTS_VALUE => 0.0,
        t => t as f64 / f64::from(ff::ffi::AV_TIME_BASE),
    };
    let (w, h) = small(plan.video.width, plan.video.height);
    let quarter = matches!(plan.video.rotation, 90 | 270);
    let (sw, sh) = if quarter { (h, w) } else { (w, h) };
    let mut scaler = None;
    let mut pictures: Vec<Picture> = Vec::new();
    let spacing = duration.max(0.0) / SAMPLES as f64;
    for i in 0..SAMPLES {
        let near = Near { target: start + spacing * (i as f64 + 0.5), within: spacing / 2.0 };
        let Some((frame, at)) = picture_near(&mut ictx, &mut decoder, index, time_base, near, source)? else {
            continue;
        };
        let at = at - start;
        if pictures.last().is_some_and(|p| (p.at - at).abs() < 1e-3) {
            continue; // sparse keyframes: the same one again
        }
        let luma = rotate(luma(&mut scaler, &frame, sw, sh, source)?, sw, sh, plan.video.rotation);
        pictures.push(Picture { at, luma });
    }
    Ok(pictures)
}

/// Keeps the result's pictures at the source pictures' moments while it is decoded.
pub(crate) struct Sampler {
    times: Vec<f64>,
    /// Half a frame: result timestamps are rounded to the container's clock.
    slack: f64,
    size: (u32, u32),
    next: usize,
    scaler: Option<(ff::software::scaling::Context, (Pixel, u32, u32))>,
    pub pictures: Vec<Option<Picture>>,
}

impl Sampler {
    pub fn new(plan: &Plan, source: &[Picture]) -> Sampler {
        let (num, den) = plan.video.frame_rate;
        Sampler {
            times: source.iter().map(|p| p.at).collect(),
            slack: 0.5 * f64::from(den.max(1)) / f64::from(num.max(1)),
            size: small(plan.video.width, plan.video.height),
            next: 0,
            scaler: None,
            pictures: vec![None; source.len()],
        }
    }

    /// Offers a decoded frame of the result (`time_base` of its stream): kept when it
    /// is the first at (or within half a frame before) the next sample moment.
    pub fn offer(&mut self, frame: &ff::frame::Video, time_base: ff::Rational, path: &Path) -> Result<()> {
        let Some(at) = frame.pts().map(|p| p as f64 * f64::from(time_base)) else { return Ok(()) };
        let mut hit = None;
        while self.times.get(self.next).is_some_and(|t| at + self.slack >= *t) {
            hit = Some(self.next);
            self.next += 1;
        }
        if let Some(i) = hit {
            let (w, h) = self.size;
            let luma = luma(&mut self.scaler, frame, w, h, path)?;
            self.pictures[i] = Some(Picture { at, luma });
        }
        Ok(())
    }
}

/// What the content check measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Similarity {
    /// PSNR of each compared picture (dB, 99 for identical).
    pub psnr: Vec<f64>,
}

/// Compares the result's pictures with the source's, moment by moment. Each picture
/// below [`MIN_PSNR`], or missing in the result, is a problem.
pub(crate) fn compare(
    source: &[Picture],
    result: &[Option<Picture>],
    problems: &mut Vec<String>,
) -> Similarity {
    let mut psnr = Vec::new();
    for (s, r) in source.iter().zip(result) {
        let Some(r) = r else {
            problems.push(format!("the result has no picture at {:.2} s, where the source has one", s.at));
            continue;
        };
        let db = psnr_of(&s.luma, &r.luma);
        if db < MIN_PSNR {
            problems.push(format!(
                "the picture at {:.2} s is not the source's ({db:.1} dB PSNR, at least {MIN_PSNR} expected)",
                s.at
            ));
        }
        psnr.push(db);
    }
    Similarity { psnr }
}

/// A moment (source timeline, seconds) and how far from it a keyframe may be.
#[derive(Clone, Copy)]
struct Near {
    target: f64,
    within: f64,
}

/// The picture at the keyframe at or before `near.target` (a seek and a frame or two)
/// when it is close enough; else decoding on to the target. With its time.
fn picture_near(
    ictx: &mut ff::format::context::Input,
    decoder: &mut ff::decoder::Video,
    index: usize,
    time_base: ff::Rational,
    near: Near,
    path: &Path,
) -> Result<Option<(ff::frame::Video, f64)>> {
    let ts = (near.target.max(0.0) * f64::from(ff::ffi::AV_TIME_BASE)) as i64;
    ictx.seek(ts, ..ts.saturating_add(1)).map_err(Error::ffmpeg("seeking in the source", path))?;
    decoder.flush();
    let time = |f: &ff::frame::Video| f.timestamp().or(f.pts()).map(|p| p as f64 * f64::from(time_base));
    let Some(first) = frame_at(ictx, decoder, index, &time, f64::NEG_INFINITY) else { return Ok(None) };
    let Some(at) = time(&first) else { return Ok(None) };
    if (near.target - at).abs() <= near.within {
        return Ok(Some((first, at)));
    }
    let later = frame_at(ictx, decoder, index, &time, near.target - 1e-3);
    Ok(later.and_then(|f| time(&f).map(|t| (f, t))))
}

/// The first frame of stream `index` whose `time` is at or after `from` seconds,
/// decoding on from where the input and the decoder stand.
fn frame_at(
    ictx: &mut ff::format::context::Input,
    decoder: &mut ff::decoder::Video,
    index: usize,
    time: &dyn Fn(&ff::frame::Video) -> Option<f64>,
    from: f64,
) -> Option<ff::frame::Video> {
    let mut frame = ff::frame::Video::empty();
    let mut found = |decoder: &mut ff::decoder::Video| -> Option<ff::frame::Video> {
        while decoder.receive_frame(&mut frame).is_ok() {
            if time(&frame).is_some_and(|t| t >= from) {
                return Some(std::mem::replace(&mut frame, ff::frame::Video::empty()));
            }
        }
        None
    };
    for (s, packet) in ictx.packets() {
        if s.index() != index {
            continue;
        }
        // A damaged packet of the source is skipped here as the transcode skipped it.
        if decoder.send_packet(&packet).is_err() {
            continue;
        }
        if let Some(f) = found(decoder) {
            return Some(f);
        }
    }
    let _ = decoder.send_eof();
    found(decoder)
}

/// The compared size for a `width`×`height` result: [`WIDTH`] wide, even height.
fn small(width: u32, height: u32) -> (u32, u32) {
    let h = (f64::from(WIDTH) * f64::from(height) / f64::from(width.max(1))).round() as u32;
    (WIDTH, (h.max(2) + 1) & !1)
}

/// The frame's luma scaled to `w`×`h`, row after row.
fn luma(
    scaler: &mut Option<(ff::software::scaling::Context, (Pixel, u32, u32))>,
    frame: &ff::frame::Video,
    w: u32,
    h: u32,
    path: &Path,
) -> Result<Vec<u8>> {
    let key = (frame.format(), frame.width(), frame.height());
    if scaler.as_ref().is_none_or(|(_, k)| *k != key) {
        let ctx = ff::software::scaling::Context::get(
            key.0,
            key.1,
            key.2,
            Pixel::GRAY8,
            w,
            h,
            ff::software::scaling::Flags::AREA,
        )
        .map_err(Error::ffmpeg("scaling a picture to compare", path))?;
        *scaler = Some((ctx, key));
    }
    let (ctx, _) = scaler.as_mut().expect("set just above");
    let mut out = ff::frame::Video::empty();
    ctx.run(frame, &mut out).map_err(Error::ffmpeg("scaling a picture to compare", path))?;
    let stride = out.stride(0);
    let data = out.data(0);
    Ok((0..h as usize).flat_map(|y| data[y * stride..y * stride + w as usize].iter().copied()).collect())
}

/// `pixels` (`w`×`h`) turned `clockwise` degrees (0, 90, 180, 270), as the transcode
/// turned the source's pictures.
fn rotate(pixels: Vec<u8>, w: u32, h: u32, clockwise: u16) -> Vec<u8> {
    let (w, h) = (w as usize, h as usize);
    match clockwise {
        90 => (0..w)
            .flat_map(|r| (0..h).map(move |c| (r, c)))
            .map(|(r, c)| pixels[(h - 1 - c) * w + r])
            .collect(),
        180 => pixels.into_iter().rev().collect(),
        270 => (0..w)
            .flat_map(|r| (0..h).map(move |c| (r, c)))
            .map(|(r, c)| pixels[c * w + (w - 1 - r)])
            .collect(),
        _ => pixels,
    }
}

/// PSNR of two luma pictures of the same size (99 dB when identical).
fn psnr_of(a: &[u8], b: &[u8]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let se: f64 = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
    let mse = se / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turning_and_measuring() {
        // 3×2: a b c / d e f
        let p = vec![1, 2, 3, 4, 5, 6];
        assert_eq!(rotate(p.clone(), 3, 2, 90), vec![4, 1, 5, 2, 6, 3], "clockwise: d a / e b / f c");
        assert_eq!(rotate(p.clone(), 3, 2, 270), vec![3, 6, 2, 5, 1, 4]);
        assert_eq!(rotate(p.clone(), 3, 2, 180), vec![6, 5, 4, 3, 2, 1]);
        assert_eq!(rotate(rotate(p.clone(), 3, 2, 90), 2, 3, 270), p);
        assert_eq!(psnr_of(&p, &p), 99.0);
        assert!((psnr_of(&[0; 4], &[255; 4])).abs() < 1e-9);
        assert_eq!(small(1920, 1080), (256, 144));
        assert_eq!(small(1080, 1920), (256, 456));
    }
}
