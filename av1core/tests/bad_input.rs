//! Bad input gives a clear, typed error — never a panic — and leaves the source
//! byte-identical and no output or partial file behind. Cancelling does the same.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use av1core::{Decision, Error};
use common::*;

/// Runs probe → plan → transcode and returns the error, asserting that nothing was
/// written and the input is unchanged.
fn fails(input: &Path) -> Error {
    let before = std::fs::read(input).unwrap();
    let output = input.with_extension("out.mkv");
    let result = std::panic::catch_unwind(|| {
        let info = av1core::probe(input)?;
        let plan = match av1core::plan(&info, &fast())? {
            Decision::Encode(p) => p,
            Decision::Skip { reason, .. } => {
                panic!("{} was skipped ({reason:?}), expected an error", input.display())
            }
        };
        av1core::transcode(input, &output, &plan, &AtomicBool::new(false), |_| {})
    });
    let err = match result {
        Ok(Ok(_)) => panic!("{} transcoded, expected an error", input.display()),
        Ok(Err(e)) => e,
        Err(_) => panic!("{} made av1core panic", input.display()),
    };
    assert!(!output.exists(), "no output for {}", input.display());
    assert!(leftovers(input.parent().unwrap()).is_empty(), "no partial file for {}", input.display());
    assert_eq!(std::fs::read(input).unwrap(), before, "{} untouched", input.display());
    assert!(
        err.to_string().contains(input.file_name().unwrap().to_str().unwrap()),
        "the error names the file: {err}"
    );
    err
}

#[test]
fn broken_files_fail_cleanly_with_a_reason() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=24:d=2",
            "-f",
            "lavfi",
            "-i",
            "sine=d=2",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-g",
            "12",
            "good.mkv",
        ],
    );
    ffmpeg(dir, &["-f", "lavfi", "-i", "testsrc2=s=320x240:r=24:d=2", "-c:v", "libx264", "good.mp4"]);
    ffmpeg(dir, &["-f", "lavfi", "-i", "sine=d=1", "audio-only.mka"]);
    ffmpeg(dir, &["-f", "lavfi", "-i", "testsrc2=s=320x240:r=1:d=1", "-frames:v", "1", "still.jpg"]);
    ffmpeg(dir, &["-f", "lavfi", "-i", "testsrc2=s=320x240:r=24:d=1", "-c:v", "ffv1", "unsupported.mkv"]);
    let good = std::fs::read(dir.join("good.mkv")).unwrap();
    let good_mp4 = std::fs::read(dir.join("good.mp4")).unwrap();

    std::fs::write(dir.join("empty.mkv"), b"").unwrap();
    std::fs::write(dir.join("garbage.mkv"), pseudo_random(200_000, 7)).unwrap();
    std::fs::write(dir.join("cut-header.mkv"), &good[..200]).unwrap();
    std::fs::write(dir.join("cut-half.mkv"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.join("cut-moov.mp4"), &good_mp4[..good_mp4.len() * 3 / 4]).unwrap();
    std::fs::copy(dir.join("still.jpg"), dir.join("still.mkv")).unwrap();
    std::fs::write(dir.join("text.mp4"), "this is not a video\n".repeat(100)).unwrap();

    type Expect = fn(&Error) -> bool;
    let cases: &[(&str, Expect)] = &[
        ("empty.mkv", |e| matches!(e, Error::EmptyFile { .. })),
        ("garbage.mkv", |e| matches!(e, Error::Ffmpeg { .. })),
        ("cut-header.mkv", |e| matches!(e, Error::Ffmpeg { .. } | Error::NoVideoStream { .. })),
        ("cut-half.mkv", |e| matches!(e, Error::Corrupt { .. })),
        ("cut-moov.mp4", |e| matches!(e, Error::Ffmpeg { .. })),
        ("audio-only.mka", |e| matches!(e, Error::NoVideoStream { .. })),
        ("still.mkv", |e| matches!(e, Error::Unsupported { .. })),
        ("text.mp4", |e| matches!(e, Error::Ffmpeg { .. })),
    ];
    for (name, expected) in cases {
        let err = fails(&dir.join(name));
        assert!(expected(&err), "{name}: unexpected error {err:?}");
    }
    // FFV1 decodes fine: a codec we can read is not "unsupported"; it transcodes.
    let report = transcode(&dir.join("unsupported.mkv"), &dir.join("ffv1.out.mkv"), &fast());
    assert_eq!(report.frames, 24);
}

#[test]
fn bit_flipped_files_never_panic_and_never_count_when_damaged() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=24:d=2",
            "-f",
            "lavfi",
            "-i",
            "sine=d=2",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "src.mkv",
        ],
    );
    let good = std::fs::read(dir.join("src.mkv")).unwrap();
    for seed in 0..6u64 {
        let mut bytes = good.clone();
        let noise = pseudo_random(400, seed);
        for pair in noise.chunks(4).take(100) {
            let pos =
                300 + (u32::from_le_bytes([pair[0], pair[1], pair[2], 0]) as usize % (bytes.len() - 300));
            bytes[pos] ^= 1 << (pair[3] % 8);
        }
        let input = dir.join(format!("flip{seed}.mkv"));
        std::fs::write(&input, &bytes).unwrap();
        let output = dir.join(format!("flip{seed}.out.mkv"));
        // The plan and the frames written, when the flipped file was encoded.
        let outcome = std::panic::catch_unwind(|| {
            let info = av1core::probe(&input)?;
            match av1core::plan(&info, &fast())? {
                Decision::Encode(plan) => {
                    av1core::transcode(&input, &output, &plan, &AtomicBool::new(false), |_| {})
                        .map(|report| Some((plan, report.frames)))
                }
                Decision::Skip { .. } => Ok(None),
            }
        });
        match outcome {
            Err(_) => panic!("seed {seed}: panic"),
            // A concealed flip can still give a valid file: then it must pass the whole
            // verification against its source, content check included.
            Ok(Ok(Some((plan, frames)))) => {
                let checked = av1core::verify::verify_from(&input, &output, &plan, Some(frames));
                assert!(checked.is_ok(), "seed {seed}: encoded, but {checked:?}");
                eprintln!("seed {seed}: encoded and verified against its source");
            }
            Ok(Ok(None)) => assert!(!output.exists(), "seed {seed}: skipped, yet an output"),
            Ok(Err(e)) => {
                assert!(!output.exists(), "seed {seed}: output left after {e}");
                eprintln!("seed {seed}: {e}");
                assert!(!e.to_string().is_empty());
            }
        }
        assert!(leftovers(dir).is_empty(), "seed {seed}: partial file left");
        assert_eq!(std::fs::read(&input).unwrap(), bytes, "seed {seed}: source touched");
    }
}

#[test]
fn cancel_is_honoured_within_a_second_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=24:d=20",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "long.mkv",
        ],
    );
    let input = dir.join("long.mkv");
    // A slow preset, so the encode is surely still running when cancelled.
    let settings = av1core::Settings { preset: 4, ..av1core::Settings::default() };
    let plan = plan_for(&input, &settings);
    let cancel = AtomicBool::new(false);
    let mut cancelled_at = None;
    let mut progress_seen = 0;
    let output = dir.join("out.mkv");
    let result = av1core::transcode(&input, &output, &plan, &cancel, |p| {
        progress_seen += 1;
        assert!(p.percent >= 0.0 && p.percent <= 100.0);
        if p.frames >= 5 && cancelled_at.is_none() {
            cancel.store(true, Ordering::Relaxed);
            cancelled_at = Some(Instant::now());
        }
    });
    let took = cancelled_at.expect("progress was reported while encoding").elapsed();
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert!(took < Duration::from_secs(2), "cancel took {took:?}");
    assert!(progress_seen > 0);
    assert!(!output.exists());
    assert!(leftovers(dir).is_empty());
}

/// Deterministic bytes (xorshift), so failures reproduce.
fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
