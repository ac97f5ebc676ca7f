//! Benchmark: the master's listing on a 100 000-file queue (what the web page asks for),
//! over real HTTP on loopback. Not a test: timing belongs here.
//!
//! `make bench-listing`, or `cargo run --release -p av1-master --example listing_bench -- [--files 100000]`

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use av1_library::queue::{Examined, Queue, Summary, Verdict};
use av1core::SkipReason;

const TOKEN: &str = "bench";
/// Requests per row: enough that the 99th percentile is not simply the slowest one.
const SAMPLES: usize = 200;

fn main() -> anyhow::Result<()> {
    let mut files = 100_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--files" => files = args.next().context("--files N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let master_bin = root.join(target).join("release/av1-master");
    if !master_bin.exists() {
        bail!("build first: cargo build --release (make bench-listing does)");
    }
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("q.sqlite");
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(&lib)?;
    // The rows live under the master's root; the directory holds no video, and a root
    // that suddenly holds nothing is never pruned (an unmounted disk looks like that).
    let lib = std::fs::canonicalize(&lib)?;

    // A queue as a big library leaves it: episodes in folders, most pending, some
    // skipped or failed.
    let t = Instant::now();
    let mut q = Queue::open(&db)?;
    let rows: Vec<Examined> = (0..files)
        .map(|i| Examined {
            path: lib.join(format!("Series {:04}/Season {}/Episode {i:06} - a title.mkv", i / 100, i % 7)),
            root: lib.clone(),
            size: 500_000_000 + (i as u64 * 7919) % 20_000_000_000,
            mtime_ns: i as i64,
            summary: Summary {
                container: Some("matroska,webm".into()),
                video_codec: Some(if i % 3 == 0 { "hevc" } else { "h264" }.into()),
                width: Some(1920),
                height: Some(1080),
                hdr: Some("SDR".into()),
                duration: Some(2400.0),
                audio: Some("eac3 6ch->opus 256k".into()),
                crf: Some(28),
            },
            verdict: match i % 20 {
                0 => Verdict::Skip { reason: SkipReason::AlreadyAv1, detail: "already AV1".into() },
                1 => Verdict::Unreadable { error: "corrupt input".into() },
                _ => Verdict::Encode,
            },
        })
        .collect();
    q.upsert_all(&rows)?;
    drop(q);
    // A library part-way through: 30% done, with results 30–70% of their originals'
    // size, so sorting by savings and the statistics work on real figures.
    let c = rusqlite::Connection::open(&db)?;
    let done = c.execute(
        "UPDATE files SET status = 'done', original_path = path, original_size = size,
             output_size = size * (30 + id % 41) / 100, encoder = 'SVT-AV1 2.3.0', fps = 40.0,
             elapsed = 60.0, finished_at = updated_at
         WHERE status = 'pending' AND id % 10 IN (2, 3, 4)",
        [],
    )?;
    drop(c);
    println!("{files} files written to the queue in {:.1} s ({done} done)", t.elapsed().as_secs_f64());

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut master = Command::new(&master_bin);
    master.env("SVT_LOG", "1").env("RUST_LOG", "warn,av1_master=info").env("AV1_TOKEN", TOKEN);
    master.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--db"]).arg(&db).arg(&lib);
    let (mut running, _) = av1_testkit::process::start_listening(master, false);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let base = format!("http://127.0.0.1:{port}");
    println!("\n| request ({SAMPLES} each) | p50 ms | p99 ms | max ms |\n|---|---|---|---|");
    let last_page = files / 50;
    let mut r = agent
        .get(format!("{base}/api/v1/stats"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()?;
    let stats: serde_json::Value = serde_json::from_str(&r.body_mut().read_to_string()?)?;
    println!("the master sees {} files, {} done", stats["total"], stats["done"]);
    for (label, path) in [
        ("first page, by name".to_owned(), "/api/v1/files?per_page=50".to_owned()),
        (
            format!("page {last_page} of {last_page}, by name"),
            format!("/api/v1/files?per_page=50&page={last_page}"),
        ),
        ("status=failed".into(), "/api/v1/files?status=failed".into()),
        ("search `Episode 0999`".into(), "/api/v1/files?q=Episode%200999".into()),
        ("sorted by size, descending".into(), "/api/v1/files?sort=size&order=desc".into()),
        ("sorted by savings".into(), "/api/v1/files?sort=savings&order=desc".into()),
        ("queue order".into(), "/api/v1/files?sort=queue&order=desc".into()),
        ("statistics".into(), "/api/v1/stats".into()),
    ] {
        let mut lat = Vec::new();
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let mut r = agent
                .get(format!("{base}{path}"))
                .header("Authorization", format!("Bearer {TOKEN}"))
                .call()?;
            let body = r.body_mut().read_to_string()?;
            if r.status().as_u16() != 200 {
                bail!("{path}: {} {body}", r.status());
            }
            lat.push(t.elapsed());
        }
        lat.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| lat[((q * SAMPLES as f64).ceil() as usize).clamp(1, SAMPLES) - 1];
        println!("| {label} | {:.1} | {:.1} | {:.1} |", ms(at(0.50)), ms(at(0.99)), ms(lat[SAMPLES - 1]));
    }
    running.kill();
    Ok(())
}
