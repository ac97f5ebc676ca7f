//! End-to-end transcodes of generated clips, checked with ffprobe (an independent
//! reader) and av1core's own verification.

mod common;

use common::*;

#[test]
fn mp4_h264_aac51_mov_text_and_cover_art() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "subs.srt", SRT);
    ffmpeg(dir, &["-f", "lavfi", "-i", "testsrc2=s=160x120:r=1:d=1", "-frames:v", "1", "cover.jpg"]);
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=30000/1001:d=2",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=2",
            "-i",
            "subs.srt",
            "-i",
            "cover.jpg",
            "-filter_complex",
            "[1]aformat=channel_layouts=5.1[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-map",
            "2",
            "-map",
            "3",
            "-c:v:0",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-c:s",
            "mov_text",
            "-c:v:1",
            "copy",
            "-disposition:v:1",
            "attached_pic",
            "-metadata:s:s:0",
            "language=eng",
            "-metadata:s:a:0",
            "language=spa",
            "in.mp4",
        ],
    );
    let input = dir.join("in.mp4");
    let output = dir.join("out.mkv");
    let report = transcode(&input, &output, &fast());
    assert_eq!(report.frames, 60);
    assert_eq!(report.verification.attachments, 1);

    let p = ffprobe(&output);
    assert_eq!(p["format"]["format_name"], "matroska,webm");
    let v = streams(&p, "video");
    let main: Vec<_> = v.iter().filter(|s| s["disposition"]["attached_pic"] == 0).collect();
    assert_eq!(main.len(), 1);
    assert_eq!(main[0]["codec_name"], "av1");
    assert_eq!(main[0]["r_frame_rate"], "30000/1001");
    let cover: Vec<_> = v.iter().filter(|s| s["disposition"]["attached_pic"] == 1).collect();
    assert_eq!(cover.len(), 1, "cover art kept as an attachment");
    assert_eq!(cover[0]["tags"]["mimetype"], "image/jpeg");
    let a = streams(&p, "audio");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["codec_name"], "opus");
    assert_eq!(a[0]["channels"], 6, "5.1 stays 5.1");
    assert_eq!(a[0]["tags"]["language"], "spa");
    let s = streams(&p, "subtitle");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["codec_name"], "subrip", "mov_text becomes SRT");
    assert_eq!(s[0]["tags"]["language"], "eng");
    assert_eq!(decoded_frames(&output), 60);
    assert!((f64_of(&p["format"]["duration"]) - 2.0).abs() < 0.1);
    assert!(leftovers(dir).is_empty());
}

#[test]
fn mkv_three_audio_tracks_subtitles_chapters_and_fonts() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "subs.srt", SRT);
    write(dir, "subs.ass", ASS);
    write(dir, "chapters.txt", CHAPTERS);
    // Bitmap subtitles: PGS written by hand, VobSub made from it by FFmpeg's dvdsub encoder.
    write_pgs(dir, "subs.sup", 320, 240);
    ffmpeg(dir, &["-fix_sub_duration", "-i", "subs.sup", "-c:s", "dvdsub", "vobsub.mkv"]);
    ffmpeg(
        dir,
        &[
            "-f", "lavfi", "-i", "testsrc2=s=320x240:r=24:d=2", "-f", "lavfi", "-i", "sine=f=440:d=2",
            "-f", "lavfi", "-i", "sine=f=660:d=2", "-f", "lavfi", "-i", "sine=f=880:d=2",
            "-i", "subs.srt", "-i", "subs.ass", "-i", "chapters.txt", "-i", "subs.sup", "-i", "vobsub.mkv",
            "-filter_complex",
            "[1]aformat=channel_layouts=5.1[a1];[2]aformat=channel_layouts=stereo[a2];[3]aformat=channel_layouts=5.1(side)[a3]",
            "-map", "0:v", "-map", "[a1]", "-map", "[a2]", "-map", "[a3]", "-map", "4", "-map", "5",
            "-map", "7", "-map", "8", "-map_metadata", "6", "-map_chapters", "6",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a:0", "aac", "-c:a:1", "ac3", "-c:a:2", "eac3",
            "-c:s:0", "srt", "-c:s:1", "ass", "-c:s:2", "copy", "-c:s:3", "copy",
            "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=Surround",
            "-metadata:s:a:1", "language=fra", "-metadata:s:a:2", "language=deu",
            "-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=jpn",
            "-metadata:s:s:2", "language=ita", "-metadata:s:s:3", "language=spa", "-metadata:s:s:3", "title=VobSub",
            "-disposition:a:0", "default", "-disposition:a:1", "0", "-disposition:s:1", "forced",
            "-attach", FONT, "-metadata:s:t", "mimetype=font/ttf", "-shortest", "in.mkv",
        ],
    );
    let input = dir.join("in.mkv");
    let output = dir.join("out.mkv");
    transcode(&input, &output, &fast());

    let p = ffprobe(&output);
    let a = streams(&p, "audio");
    let summary: Vec<_> = a
        .iter()
        .map(|s| (s["codec_name"].clone(), s["channels"].clone(), s["tags"]["language"].clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("opus".into(), 6.into(), "eng".into()),
            ("opus".into(), 2.into(), "fra".into()),
            ("opus".into(), 6.into(), "deu".into()),
        ],
        "every track kept, surround stays surround, in order"
    );
    assert_eq!(a[0]["tags"]["title"], "Surround");
    assert_eq!(a[0]["disposition"]["default"], 1);
    assert_eq!(a[1]["disposition"]["default"], 0);
    let s = streams(&p, "subtitle");
    let codecs: Vec<_> = s.iter().map(|s| s["codec_name"].as_str().unwrap_or("")).collect();
    assert_eq!(codecs, ["subrip", "ass", "hdmv_pgs_subtitle", "dvd_subtitle"]);
    assert_eq!(s[1]["disposition"]["forced"], 1);
    assert_eq!(s[1]["tags"]["language"], "jpn");
    assert_eq!(
        (s[2]["tags"]["language"].as_str(), s[3]["tags"]["language"].as_str()),
        (Some("ita"), Some("spa"))
    );
    assert_eq!(s[3]["tags"]["title"], "VobSub");
    // The bitmap tracks are the source's byte for byte: every packet (time, duration,
    // MD5) and the codec private data (the VobSub palette and frame size).
    for sel in ["s:2", "s:3"] {
        let (src, out) = (packet_listing(&input, sel), packet_listing(&output, sel));
        assert!(src.matches("packet|").count() >= 2, "{sel}: {src}");
        assert_eq!(out, src, "{sel}");
    }
    assert!(packet_listing(&input, "s:3").contains("extradata_hash=MD5:"), "the VobSub track has a palette");
    let t = streams(&p, "attachment");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["tags"]["filename"], "DejaVuSans.ttf");
    assert_eq!(t[0]["tags"]["mimetype"], "font/ttf");
    let ch = p["chapters"].as_array().unwrap();
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[1]["tags"]["title"], "Ending");
    assert!((f64_of(&ch[1]["start_time"]) - 1.0).abs() < 0.01);
    assert_eq!(p["format"]["tags"]["title"], "Test film");

    // The SRT track is the source's, to the millisecond (mkvextract reads both).
    let extract = |mkv: &std::path::Path, to: &str| {
        let to = dir.join(to);
        let out = std::process::Command::new("mkvextract")
            .arg(mkv)
            .arg("tracks")
            .arg(format!("4:{}", to.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        std::fs::read_to_string(to).unwrap()
    };
    let (src, out) = (extract(&input, "src.srt"), extract(&output, "out.srt"));
    assert!(src.contains("Hello there") && src.contains("Second line"));
    assert_eq!(out, src);

    let plan = plan_for(&input, &fast());
    assert_eq!(plan.audio_summary(), "aac 6ch->opus 256k, ac3 2ch->opus 96k, eac3 6ch->opus 256k");
}

#[test]
fn hdr10_from_x265_frame_side_data_is_kept_in_av1_and_matroska() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f", "lavfi", "-i", "testsrc2=s=320x240:r=24:d=1", "-c:v", "libx265", "-pix_fmt", "yuv420p10le",
            "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
            "-x265-params",
            "log-level=error:hdr10=1:repeat-headers=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):max-cll=1000,400",
            "in.mkv",
        ],
    );
    let input = dir.join("in.mkv");
    let info = av1core::probe(&input).unwrap();
    assert_eq!(info.hdr.kind, av1core::probe::HdrKind::Hdr10);
    let md = info.hdr.mastering_display.expect("found in the first frame's side data");
    assert!((md.max_luminance - 1000.0).abs() < 1e-6 && (md.min_luminance - 0.0001).abs() < 1e-9);
    assert!((md.green.0 - 0.265).abs() < 1e-6 && (md.white_point.1 - 0.329).abs() < 1e-6);

    let output = dir.join("out.mkv");
    let report = transcode(&input, &output, &fast());
    assert_eq!(report.verification.hdr, av1core::probe::HdrKind::Hdr10);
    assert_eq!(report.verification.bit_depth, 10);

    // Independent reading: ffprobe's view of the Matroska track...
    let p = ffprobe(&output);
    let v = &streams(&p, "video")[0];
    assert_eq!(v["pix_fmt"], "yuv420p10le");
    assert_eq!(v["color_primaries"], "bt2020");
    assert_eq!(v["color_transfer"], "smpte2084");
    assert_eq!(v["color_space"], "bt2020nc");
    let sd = v["side_data_list"].as_array().expect("HDR side data on the track");
    let cll = sd.iter().find(|s| s["side_data_type"] == "Content light level metadata").unwrap();
    assert_eq!((cll["max_content"].as_i64(), cll["max_average"].as_i64()), (Some(1000), Some(400)));
    let mdm = sd.iter().find(|s| s["side_data_type"] == "Mastering display metadata").unwrap();
    assert_eq!(mdm["max_luminance"], "1000/1");
    assert_eq!(mdm["green_x"], "53/200");
    // ...and of the AV1 bitstream's metadata OBUs, on the first decoded frame.
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_frames",
            "-of",
            "json",
        ])
        .arg(&output)
        .output()
        .unwrap();
    let frames: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fsd = frames["frames"][0]["side_data_list"].as_array().expect("frame side data from the AV1 stream");
    let cll = fsd.iter().find(|s| s["side_data_type"] == "Content light level metadata").unwrap();
    assert_eq!(cll["max_content"].as_i64(), Some(1000));
    let mdm = fsd.iter().find(|s| s["side_data_type"] == "Mastering display metadata").unwrap();
    // AV1 stores the minimum luminance in 18.14 fixed point: 0.0001 becomes 2/16384.
    let ratio = |v: &serde_json::Value| {
        let (n, d) = v.as_str().unwrap().split_once('/').unwrap();
        n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap()
    };
    assert!((ratio(&mdm["min_luminance"]) - 0.0001).abs() <= 1.0 / 16384.0);
    assert!((ratio(&mdm["max_luminance"]) - 1000.0).abs() < 1e-6);
}

#[test]
fn webm_vp9_444_10bit_vorbis_51_with_chapters() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(dir, "chapters.txt", CHAPTERS);
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
            "sine=f=440:d=2",
            "-i",
            "chapters.txt",
            "-filter_complex",
            "[1]aformat=channel_layouts=5.1[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-map_chapters",
            "2",
            "-c:v",
            "libvpx-vp9",
            "-pix_fmt",
            "yuv444p10le",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-c:a",
            "libvorbis",
            "-shortest",
            "in.webm",
        ],
    );
    let output = dir.join("out.mkv");
    let report = transcode(&dir.join("in.webm"), &output, &fast());
    assert_eq!(report.verification.bit_depth, 10);
    let p = ffprobe(&output);
    assert_eq!(streams(&p, "video")[0]["pix_fmt"], "yuv420p10le", "4:4:4 10-bit -> 4:2:0 10-bit");
    assert_eq!(streams(&p, "audio")[0]["channels"], 6);
    assert_eq!(p["chapters"].as_array().unwrap().len(), 2);
    assert_eq!(decoded_frames(&output), 48);
}

#[test]
fn mpeg2_ts_with_ac3_51_side_and_avi_mpeg4_mp3() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=25:d=2",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=2",
            "-filter_complex",
            "[1]aformat=channel_layouts=5.1(side)[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-c:v",
            "mpeg2video",
            "-c:a",
            "ac3",
            "-shortest",
            "in.ts",
        ],
    );
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=25:d=2",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=2",
            "-c:v",
            "mpeg4",
            "-c:a",
            "libmp3lame",
            "-shortest",
            "in.avi",
        ],
    );
    for (name, channels) in [("in.ts", 6), ("in.avi", 1)] {
        let output = dir.join(format!("{name}.mkv"));
        let report = transcode(&dir.join(name), &output, &fast());
        assert_eq!(report.frames, 50, "{name}");
        let p = ffprobe(&output);
        assert_eq!(streams(&p, "video")[0]["codec_name"], "av1");
        let a = streams(&p, "audio");
        assert_eq!(a[0]["codec_name"], "opus");
        assert_eq!(a[0]["channels"], channels, "{name}: never a downmix");
        // Audio and video start together (the TS source starts at 1.4 s; the output at 0).
        let vstart = f64_of(&streams(&p, "video")[0]["start_time"]);
        assert!(vstart.abs() < 0.04, "{name}: video starts at {vstart}");
        assert_eq!(decoded_frames(&output), 50);
    }
}

#[test]
fn verification_refuses_a_damaged_or_foreign_result() {
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
            "in.mkv",
        ],
    );
    let input = dir.join("in.mkv");
    let output = dir.join("out.mkv");
    transcode(&input, &output, &fast());
    let plan = plan_for(&input, &fast());
    assert!(av1core::verify(&output, &plan, None).is_ok(), "the real result passes");

    // Cut short: the duration and frame count no longer match.
    let bytes = std::fs::read(&output).unwrap();
    let cut = dir.join("cut.mkv");
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    let err = av1core::verify(&cut, &plan, Some(48)).unwrap_err();
    assert!(matches!(err, av1core::Error::Verify { .. }), "{err}");

    // Another file's result (a different source, so other streams and duration).
    ffmpeg(dir, &["-f", "lavfi", "-i", "testsrc2=s=320x240:r=24:d=4", "-c:v", "libx264", "other.mkv"]);
    let other_out = dir.join("other-out.mkv");
    transcode(&dir.join("other.mkv"), &other_out, &fast());
    let err = av1core::verify(&other_out, &plan, None).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("duration") && text.contains("audio"), "{text}");
}

/// A TV recording cut and joined: three MPEG-TS pieces whose clocks start at 1000 s,
/// 10 s (the clock goes back) and 5000 s (it leaps ahead), each 2 s of one colour and one
/// tone. libavformat declares ~26 hours; the probe must find 6 s, and the output must be
/// 6 s of continuous media with each colour where its tone is.
#[test]
fn mpeg_ts_whose_clock_jumps_stays_continuous_and_in_sync() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let pieces = [("red", 440, "1000"), ("lime", 880, "10"), ("blue", 1760, "5000")];
    let mut joined = Vec::new();
    for (i, (colour, tone, clock)) in pieces.iter().enumerate() {
        let name = format!("{i}.ts");
        let video = format!("color=c={colour}:s=160x120:r=25:d=2");
        let audio = format!("sine=f={tone}:d=2:sample_rate=48000");
        ffmpeg(
            dir,
            &[
                "-f",
                "lavfi",
                "-i",
                &video,
                "-f",
                "lavfi",
                "-i",
                &audio,
                "-c:v",
                "mpeg2video",
                "-q:v",
                "2",
                "-c:a",
                "mp2",
                "-output_ts_offset",
                clock,
                &name,
            ],
        );
        joined.extend(std::fs::read(dir.join(&name)).unwrap());
    }
    let input = dir.join("joined.ts");
    std::fs::write(&input, joined).unwrap();
    let declared = f64_of(&ffprobe(&input)["format"]["duration"]);
    assert!(declared > 1000.0, "libavformat spans the jumps: {declared} s");

    let info = av1core::probe(&input).unwrap();
    assert!((info.duration - 6.0).abs() < 0.2, "probe: {} s", info.duration);
    let output = dir.join("out.mkv");
    let report = transcode(&input, &output, &fast());
    assert_eq!(report.frames, 150);
    // The master's check of a worker's result reads the source's length the same way.
    let plan = plan_for(&input, &fast());
    av1core::verify::verify_from(&input, &output, &plan, Some(150)).unwrap();
    let p = ffprobe(&output);
    assert!((f64_of(&p["format"]["duration"]) - 6.0).abs() < 0.2, "{}", p["format"]["duration"]);

    // Colour of each frame (centre pixel) and tone of each 20 ms of sound.
    let colours = centre_colours(&output, 160, 120);
    assert_eq!(colours.len(), 150);
    let colour_at = |frame: usize| colours[frame];
    let samples = mono_48k(&output);
    let tone_at = |seconds: f64| match crossings_at(&samples, seconds) {
        10..=25 => "red",
        28..=45 => "lime",
        55..=90 => "blue",
        _ => "none",
    };
    // Away from the joins (±0.1 s), picture and sound belong to the same piece.
    for (seconds, piece) in
        [(0.5, "red"), (1.85, "red"), (2.15, "lime"), (3.85, "lime"), (4.15, "blue"), (5.5, "blue")]
    {
        assert_eq!(colour_at((seconds * 25.0) as usize), piece, "picture at {seconds} s");
        assert_eq!(tone_at(seconds), piece, "sound at {seconds} s");
    }
}

/// A 16:9 NTSC DVD title (MPEG-2 with 32:27 pixels, AC-3, MPEG program stream): the
/// pixels keep their shape, so the result is displayed 16:9 and not squeezed to 3:2.
#[test]
fn anamorphic_dvd_video_keeps_its_display_aspect() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=720x480:r=30000/1001:d=1,setsar=32/27",
            "-f",
            "lavfi",
            "-i",
            "sine=d=1",
            "-c:v",
            "mpeg2video",
            "-c:a",
            "ac3",
            "-shortest",
            "-f",
            "dvd",
            "title.vob",
        ],
    );
    let input = dir.join("title.vob");
    assert_eq!(streams(&ffprobe(&input), "video")[0]["display_aspect_ratio"], "16:9");
    let output = dir.join("out.mkv");
    transcode(&input, &output, &fast());
    let v = &streams(&ffprobe(&output), "video")[0].clone();
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(720), Some(480)));
    assert_eq!(v["sample_aspect_ratio"], "32:27");
    assert_eq!(v["display_aspect_ratio"], "16:9");
}

/// Odd sizes (a 720x405 recording): SVT-AV1 takes only even ones, so the last column
/// and/or row is cut, the rest kept unscaled, in 4:2:0 and 4:2:2 alike; the result passes
/// the full verification (content check included) and an independent reader sees the
/// even size with the source's pixel shape.
#[test]
fn odd_sizes_are_cut_to_even_in_every_chroma_layout() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for pix in ["yuv420p", "yuv422p"] {
        for (w, h) in [(161u64, 90u64), (160, 91), (161, 91)] {
            let name = format!("{w}x{h}-{pix}.mkv");
            // (testsrc2 rounds odd sizes down; scaling to them does not.)
            let video = format!("testsrc2=s={}x{}:r=24:d=1,scale={w}:{h},format={pix}", 2 * w, 2 * h);
            ffmpeg(dir, &["-f", "lavfi", "-i", &video, "-c:v", "ffv1", &name]);
            let input = dir.join(&name);
            let v = &streams(&ffprobe(&input), "video")[0].clone();
            assert_eq!(
                (v["width"].as_u64(), v["height"].as_u64(), v["pix_fmt"].as_str()),
                (Some(w), Some(h), Some(pix))
            );
            let plan = plan_for(&input, &fast());
            assert_eq!(plan.video.cut_from, Some((w as u32, h as u32)), "{name}");
            assert!(plan.picture_summary().contains(&format!("{w}x{h} cut to {}x{}", w & !1, h & !1)));
            let output = dir.join(format!("out-{name}"));
            transcode(&input, &output, &fast());
            let v = &streams(&ffprobe(&output), "video")[0].clone();
            assert_eq!(
                (v["codec_name"].as_str(), v["width"].as_u64(), v["height"].as_u64()),
                (Some("av1"), Some(w & !1), Some(h & !1)),
                "{name}"
            );
            assert!(matches!(v["sample_aspect_ratio"].as_str(), None | Some("1:1")), "{name}: {v}");
            let checked = av1core::verify::verify_from(&input, &output, &plan, None).unwrap();
            // Tiny pictures at the default CRF score ~29 dB; a picture read with a wrong
            // stride or shifted by the cut would score near the check's 22 dB or below.
            let psnr = checked.content_psnr.expect("the content check ran");
            assert!(psnr > 26.0, "{name}: lowest PSNR {psnr} dB");
        }
    }
}

/// Phone videos: landscape pictures with a display matrix saying how to turn them.
/// The result is turned upright (as the `ffmpeg` program does by default), so it plays
/// the right way round without the matrix, which Matroska does not carry.
#[test]
fn phone_video_with_a_display_matrix_is_turned_upright() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x180:r=30:d=1",
            "-f",
            "lavfi",
            "-i",
            "sine=d=1",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-shortest",
            "flat.mp4",
        ],
    );
    // "rotate=-90" is a phone held upright (a clockwise quarter turn to show it).
    for (tag, size) in [("-90", (180, 320)), ("90", (180, 320)), ("180", (320, 180))] {
        let input = dir.join(format!("phone{tag}.mp4"));
        let name = input.file_name().unwrap().to_str().unwrap().to_owned();
        ffmpeg(dir, &["-i", "flat.mp4", "-c", "copy", "-metadata:s:v:0", &format!("rotate={tag}"), &name]);
        let output = dir.join(format!("phone{tag}.mkv"));
        transcode(&input, &output, &fast());
        let v = &streams(&ffprobe(&output), "video")[0].clone();
        assert_eq!((v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap()), size, "rotate={tag}");
        // Against the source as the ffmpeg program shows it (turned by its autorotate):
        // the same picture, not a mirror or a turn the wrong way.
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "info", "-i"])
            .arg(&output)
            .arg("-i")
            .arg(&input)
            .args(["-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        let psnr: f64 = log
            .rsplit("average:")
            .next()
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no PSNR for rotate={tag}: {log}"));
        assert!(psnr > 30.0, "rotate={tag}: PSNR {psnr} dB against the upright source");
    }
}

/// Interlaced video (a broadcast-style MPEG-2: 50 moving fields a second, top field
/// first), in 4:2:0 and in studio 4:2:2 (deinterlaced before its chroma is converted):
/// AV1 has no fields, so the pictures are deinterlaced. The judge is the combing of the
/// luma as the ffmpeg program decodes it (lines unlike both neighbours). FFmpeg's `idet`
/// agrees for 4:2:0 but also weighs chroma, which a 4:2:2 → 4:2:0 conversion alone
/// makes it misjudge, even after ffmpeg's own `bwdif`.
#[test]
fn interlaced_video_is_deinterlaced() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Mean over frames of |2·line − line above − line below| on odd lines, per 1000 samples.
    let combing = |path: &std::path::Path| -> f64 {
        let (w, h) = (320usize, 240usize);
        let luma = decode_raw(path, &["-map", "0:v", "-f", "rawvideo", "-pix_fmt", "gray"]);
        let frames: Vec<&[u8]> = luma.chunks_exact(w * h).collect();
        let per_frame = |f: &[u8]| -> f64 {
            (1..h - 1)
                .step_by(2)
                .flat_map(|y| (0..w).map(move |x| (y, x)))
                .map(|(y, x)| {
                    let (a, b, c) =
                        (f[(y - 1) * w + x] as i32, f[y * w + x] as i32, f[(y + 1) * w + x] as i32);
                    f64::from((2 * b - a - c).abs())
                })
                .sum::<f64>()
                / 1000.0
        };
        frames.iter().map(|f| per_frame(f)).sum::<f64>() / frames.len().max(1) as f64
    };
    for pix_fmt in ["yuv420p", "yuv422p"] {
        let name = format!("interlaced-{pix_fmt}.mpg");
        ffmpeg(
            dir,
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=s=320x240:r=50:d=2",
                "-f",
                "lavfi",
                "-i",
                "sine=d=2",
                "-vf",
                "tinterlace=mode=interleave_top,setfield=tff",
                "-pix_fmt",
                pix_fmt,
                "-c:v",
                "mpeg2video",
                "-flags",
                "+ilme+ildct",
                "-top",
                "1",
                "-b:v",
                "4M",
                "-c:a",
                "mp2",
                "-shortest",
                &name,
            ],
        );
        let input = dir.join(&name);
        assert!(plan_for(&input, &fast()).video.deinterlace, "{pix_fmt}");
        let output = dir.join(format!("interlaced-{pix_fmt}.mkv"));
        let report = transcode(&input, &output, &fast());
        assert_eq!(report.frames, 50, "{pix_fmt}: one picture out per picture in");
        let (source, ours) = (combing(&input), combing(&output));
        assert!(ours < 0.6 * source, "{pix_fmt}: combing {ours:.0} in ours, {source:.0} in the source");
        let p = ffprobe(&output);
        assert_eq!(streams(&p, "video")[0]["r_frame_rate"], "25/1");
        assert!((f64_of(&p["format"]["duration"]) - 2.0).abs() < 0.1, "{}", p["format"]["duration"]);
    }
}

/// A second video stream (another angle, a signer) is carried over as it is, packet for
/// packet, beside the AV1 main video: nothing of the source is dropped.
#[test]
fn a_second_video_stream_is_kept_as_it_is() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=24:d=1",
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=160x120:r=24:d=1",
            "-f",
            "lavfi",
            "-i",
            "sine=d=1",
            "-map",
            "0",
            "-map",
            "1",
            "-map",
            "2",
            "-c:v:0",
            "libx264",
            "-c:v:1",
            "mpeg4",
            "-c:a",
            "aac",
            "-disposition:v:0",
            "default",
            "-disposition:v:1",
            "0",
            "-metadata:s:v:1",
            "title=Angle 2",
            "-shortest",
            "in.mkv",
        ],
    );
    let input = dir.join("in.mkv");
    let output = dir.join("out.mkv");
    let report = transcode(&input, &output, &fast());
    assert_eq!(report.frames, 24);
    let p = ffprobe(&output);
    let v = streams(&p, "video");
    let codecs: Vec<_> = v.iter().map(|s| s["codec_name"].as_str().unwrap_or("")).collect();
    assert_eq!(codecs, ["av1", "mpeg4"]);
    assert_eq!(v[1]["tags"]["title"], "Angle 2");
    assert_eq!(packet_listing(&output, "v:1"), packet_listing(&input, "v:1"), "copied byte for byte");
}

/// A dropout in a recording's sound: audio packets missing in the middle of an MPEG-TS
/// (picture red then blue, tone 440 Hz then 880 Hz, switching together after the hole),
/// for 1 s and for 12 s — longer than the 10 s that counts as a clock jump, which it is
/// not: the picture's clock runs on. The hole is filled with silence, so the sound after
/// it still plays with its picture (counting samples alone would bring the 880 Hz tone
/// early by the hole's length).
#[test]
fn a_hole_in_the_sound_keeps_sound_and_picture_together() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for hole in [1.0f64, 12.0] {
        let switch = 1.5 + hole;
        let total = switch + 1.5;
        let name = format!("dropout{hole}.ts");
        ffmpeg(
            dir,
            &[
                "-f",
                "lavfi",
                "-i",
                &format!("color=c=red:s=160x120:r=25:d={switch}"),
                "-f",
                "lavfi",
                "-i",
                "color=c=blue:s=160x120:r=25:d=1.5",
                "-f",
                "lavfi",
                "-i",
                &format!("aevalsrc='0.5*sin(2*PI*if(lt(t,{switch}),440,880)*t)':d={total}:s=48000"),
                "-filter_complex",
                &format!("[0][1]concat=n=2:v=1:a=0[v];[2]aselect='not(between(t,1.5,{switch}))'[a]"),
                "-map",
                "[v]",
                "-map",
                "[a]",
                "-c:v",
                "mpeg2video",
                "-c:a",
                "mp2",
                &name,
            ],
        );
        let input = dir.join(&name);
        let output = dir.join(format!("dropout{hole}.mkv"));
        transcode(&input, &output, &fast());
        let colours = centre_colours(&output, 160, 120);
        let samples = mono_48k(&output);
        let seconds = samples.len() as f64 / 48000.0;
        assert!((seconds - total).abs() < 0.1, "hole {hole} s: {seconds} s of sound");
        for (at, colour, crossings) in [
            (1.0, "red", 10..=25),
            (1.5 + hole / 2.0, "red", 0..=0),
            (switch - 0.2, "red", 0..=0),
            (switch + 0.2, "blue", 28..=45),
            (total - 0.5, "blue", 28..=45),
        ] {
            assert_eq!(colours[(at * 25.0) as usize], colour, "hole {hole} s: picture at {at} s");
            let n = crossings_at(&samples, at);
            assert!(
                crossings.contains(&n),
                "hole {hole} s: sound at {at} s: {n} crossings, expected {crossings:?}"
            );
        }
    }
}

/// HDR10+ (dynamic metadata on every picture, SMPTE ST 2094-40) cannot be carried into
/// AV1 here: such a file is skipped as "dynamic HDR", not failed, unless the setting
/// asks for its HDR10 base layer, which is then encoded as HDR (PQ, BT.2020, 10-bit).
#[test]
fn hdr10_plus_is_skipped_as_dynamic_hdr_unless_the_base_layer_is_asked_for() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x240:r=24:d=1",
            "-pix_fmt",
            "yuv420p10le",
            "-c:v",
            "libx265",
            "-x265-params",
            "log-level=error:bframes=0:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc",
            "-f",
            "hevc",
            "base.hevc",
        ],
    );
    let plus = add_hdr10plus_sei(&std::fs::read(dir.join("base.hevc")).unwrap());
    std::fs::write(dir.join("plus.hevc"), plus).unwrap();
    ffmpeg(
        dir,
        &["-r", "24", "-i", "plus.hevc", "-c", "copy", "-bsf:v", "setts=ts=N/(24*TB)", "hdr10plus.mkv"],
    );
    let input = dir.join("hdr10plus.mkv");
    // ffprobe (independently) sees the dynamic metadata on the pictures.
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "frame_side_data=side_data_type"])
        .args(["-read_intervals", "%+#1", "-of", "compact"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("SMPTE2094-40"), "the fixture carries HDR10+");

    let info = av1core::probe(&input).unwrap();
    assert_eq!(info.hdr.kind, av1core::probe::HdrKind::Hdr10Plus);
    match av1core::plan(&info, &fast()).unwrap() {
        av1core::Decision::Skip { reason, .. } => assert_eq!(reason, av1core::SkipReason::DynamicHdr),
        d => panic!("expected a dynamic-HDR skip, got {d:?}"),
    }
    let settings = av1core::Settings { dynamic_hdr_base_layer: true, ..fast() };
    let output = dir.join("base-layer.mkv");
    let report = transcode(&input, &output, &settings);
    assert_eq!(report.frames, 24);
    let v = &streams(&ffprobe(&output), "video")[0].clone();
    assert_eq!(
        (v["color_transfer"].as_str(), v["color_primaries"].as_str()),
        (Some("smpte2084"), Some("bt2020"))
    );
    assert_eq!(v["pix_fmt"], "yuv420p10le");
}

/// 2.1 sound (left 440 Hz, right 660 Hz, LFE 80 Hz): Opus has no three-channel layout
/// with an LFE, so the track becomes 5.1 with silent centre and surrounds — the LFE is
/// kept on its own channel, not mixed away.
#[test]
fn an_lfe_without_a_surround_layout_is_kept() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ffmpeg(
        dir,
        &[
            "-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=1", "-filter_complex",
            "sine=f=440:d=1[a];sine=f=660:d=1[b];sine=f=80:d=1[c];[a][b][c]join=inputs=3:channel_layout=2.1:map=0.0-FL|1.0-FR|2.0-LFE[o]",
            "-map", "0:v", "-map", "[o]", "-c:v", "libx264", "-c:a", "ac3", "-shortest", "in.mkv",
        ],
    );
    let input = dir.join("in.mkv");
    let output = dir.join("out.mkv");
    transcode(&input, &output, &fast());
    let a = &streams(&ffprobe(&output), "audio")[0].clone();
    assert_eq!((a["channels"].as_u64(), a["channel_layout"].as_str()), (Some(6), Some("5.1")));
    let samples = s16(&decode_raw(&output, &["-map", "0:a", "-ar", "48000", "-f", "s16le"]));
    // Zero crossings per channel over 0.1 s from 0.1 s: 2 × 0.1 × f (0 for silence).
    let crossings = |channel: usize| {
        let ch: Vec<i16> = samples.iter().skip(channel).step_by(6).skip(4800).take(4800).copied().collect();
        ch.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
    };
    // FFmpeg's 5.1 order: FL FR FC LFE BL BR.
    let found: Vec<usize> = (0..6).map(crossings).collect();
    for (channel, want) in [(0, 88), (1, 132), (2, 0), (3, 16), (4, 0), (5, 0)] {
        assert!(found[channel].abs_diff(want) <= 2, "channel {channel}: {found:?}");
    }
}

/// A result made elsewhere must show the source's pictures: a result of another clip,
/// a black or frozen encode or a shifted timeline, each of the right shape (same size,
/// frame rate and length, no audio), fails `verify_from`; the real one passes.
#[test]
fn a_result_with_other_pictures_fails_the_content_check() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let part = |name: &str, src: &str| {
        let input = format!("{src}{}s=320x240:r=24", if src.contains('=') { ":" } else { "=" });
        ffmpeg(
            dir,
            &["-f", "lavfi", "-t", "2", "-i", &input, "-pix_fmt", "yuv420p", "-c:v", "libx264", name],
        );
    };
    part("a.mp4", "testsrc2");
    part("b.mp4", "smptebars");
    part("c.mp4", "mandelbrot");
    part("k.mp4", "color=c=black");
    let concat = |name: &str, parts: [&str; 3]| {
        let mut args: Vec<String> = Vec::new();
        for p in parts {
            args.extend(["-i".into(), p.into()]);
        }
        args.extend([
            "-filter_complex".into(),
            "[0][1][2]concat=n=3:v=1:a=0".into(),
            "-c:v".into(),
            "libx264".into(),
            name.into(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ffmpeg(dir, &args);
    };
    concat("source.mp4", ["a.mp4", "b.mp4", "c.mp4"]);
    concat("other.mp4", ["c.mp4", "c.mp4", "c.mp4"]);
    concat("black.mp4", ["k.mp4", "k.mp4", "k.mp4"]);
    concat("shifted.mp4", ["b.mp4", "c.mp4", "a.mp4"]);
    concat("frozen.mp4", ["a.mp4", "a.mp4", "a.mp4"]);
    let source = dir.join("source.mp4");
    let plan = plan_for(&source, &fast());
    let out = dir.join("out.mkv");
    transcode(&source, &out, &fast());
    let ok = av1core::verify::verify_from(&source, &out, &plan, None).unwrap();
    let psnr = ok.content_psnr.unwrap();
    eprintln!("the real result: lowest PSNR {psnr:.1} dB");
    assert!(psnr > 30.0, "{psnr}");
    for name in ["other", "black", "shifted", "frozen"] {
        let wrong = dir.join(format!("{name}.mkv"));
        transcode(&dir.join(format!("{name}.mp4")), &wrong, &fast());
        let e = av1core::verify::verify_from(&source, &wrong, &plan, None).unwrap_err();
        let text = e.to_string();
        eprintln!("{name}: {text}");
        assert!(text.contains("is not the source's"), "{name}: {text}");
        assert!(!text.contains("duration") && !text.contains("stream"), "{name}: the same shape: {text}");
    }
}
