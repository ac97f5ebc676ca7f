//! Benchmark of the master's protocol over real HTTP on loopback (not a test; timing
//! belongs here): per-job overhead (claim → heartbeats → end, no encode), heartbeats per
//! second under many concurrent simulated workers with p50/p99 latency, and source
//! download / result upload throughput with BLAKE3 on both sides.
//!
//! `make bench-protocol` (builds first), or
//! `cargo run --release -p av1-master --example protocol_bench -- [--workers 32] [--seconds 10] [--mib 1024]`

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

const TOKEN: &str = "bench";

struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

fn main() -> anyhow::Result<()> {
    let (mut workers, mut seconds, mut mib) = (32usize, 10u64, 1024u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--workers" => workers = args.next().context("--workers N")?.parse()?,
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--mib" => mib = args.next().context("--mib N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let master_bin = root.join(target).join("release/av1-master");
    if !master_bin.exists() {
        bail!("build first: cargo build --release (make bench-protocol does)");
    }
    let dir = tempfile::tempdir()?;
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(&lib)?;
    // Jobs: copies of one tiny clip (each a file of its own to the master), and one big
    // file (a clip with a large attachment) for the transfers.
    ffmpeg(&lib, &["-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=1", "-c:v", "libx264", "clip.mkv"])?;
    let jobs = workers * 2 + 2;
    for i in 0..jobs {
        std::fs::copy(lib.join("clip.mkv"), lib.join(format!("copy-{i:04}.mkv")))?;
    }
    std::fs::remove_file(lib.join("clip.mkv"))?;
    let blob = dir.path().join("blob.bin");
    {
        let mut f = std::fs::File::create(&blob)?;
        let chunk = vec![0x5au8; 1 << 20];
        for i in 0..mib {
            let mut c = chunk.clone();
            c[..8].copy_from_slice(&i.to_le_bytes());
            std::io::Write::write_all(&mut f, &c)?;
        }
    }
    ffmpeg(
        &lib,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=160x120:r=24:d=1",
            "-c:v",
            "libx264",
            "-attach",
            blob.to_str().unwrap(),
            "-metadata:s:t",
            "mimetype=application/octet-stream",
            "zz-big.mkv",
        ],
    )?;
    std::fs::remove_file(&blob)?;

    let mut master = Command::new(&master_bin)
        .env("SVT_LOG", "1")
        .env("RUST_LOG", "warn,av1_master=info")
        .env("AV1_TOKEN", TOKEN)
        .args(["--bind", "127.0.0.1", "--port", "0", "--lease-timeout", "60", "--http-threads", "8", "--db"])
        .arg(dir.path().join("q.sqlite"))
        .arg(&lib)
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = master.stderr.take().context("stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
        }
    });
    let base = format!("http://{}", rx.recv_timeout(Duration::from_secs(30))?);
    let client = || Client {
        base: base.clone(),
        agent: ureq::Agent::config_builder().http_status_as_error(false).build().into(),
    };
    let c = client();
    let start = Instant::now();
    loop {
        let mut r = c
            .agent
            .get(format!("{base}/api/v1/stats"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .call()?;
        let s: Value = serde_json::from_str(&r.body_mut().read_to_string()?)?;
        if s["pending"].as_u64() == Some(jobs as u64 + 1) {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("the scan did not queue the files: {s}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "machine: {} cores; master {} with 8 HTTP threads, SQLite WAL synchronous=FULL",
        cores(),
        master_bin.display()
    );

    // 1. Overhead of one job's protocol: register, claim, 3 heartbeats, end.
    let mut samples = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let (_, r) =
            c.post("/api/v1/workers/register", json!({"name": format!("solo-{i}"), "host": "bench"}))?;
        let (_, job) = c.post("/api/v1/jobs/claim", json!({"worker_id": r["worker_id"]}))?;
        let (id, lease) = (job["job"]["file_id"].as_i64().context("claim")?, job["lease"].clone());
        for _ in 0..3 {
            c.post(
                &format!("/api/v1/jobs/{id}/heartbeat"),
                json!({"lease": lease, "phase": "encoding", "progress": {"percent": 50}}),
            )?;
        }
        let (status, _) = c.post(
            &format!("/api/v1/jobs/{id}/skip"),
            json!({"lease": lease, "reason": "manual", "detail": "bench"}),
        )?;
        if status != 200 {
            bail!("ending a job: {status}");
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let per_job = samples[samples.len() / 2];
    println!("\n## Protocol overhead per job (register + claim + 3 heartbeats + end), 20 jobs");
    println!("median {:.2} ms, max {:.2} ms; against a 1080p job at 17 fps (a 2 h film: 7 h of encoding) that is {:.6}%;", ms(per_job), ms(*samples.last().unwrap()), 100.0 * per_job.as_secs_f64() / (7.0 * 3600.0));
    println!(
        "a 10 s 1080p clip (14 s of encoding) with one heartbeat every 10 s: {:.4}%",
        100.0 * per_job.as_secs_f64() / 14.0
    );

    // 2. Heartbeats under many workers, each holding a lease.
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..workers {
        let cl = client();
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
            let (_, r) =
                cl.post("/api/v1/workers/register", json!({"name": format!("w-{w}"), "host": "bench"}))?;
            let (_, job) = cl.post("/api/v1/jobs/claim", json!({"worker_id": r["worker_id"]}))?;
            let (id, lease) = (job["job"]["file_id"].as_i64().context("claim")?, job["lease"].clone());
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (status, _) = cl.post(
                    &format!("/api/v1/jobs/{id}/heartbeat"),
                    json!({"lease": lease, "phase": "encoding", "progress": {"percent": 50, "fps": 17.0}}),
                )?;
                if status != 200 {
                    bail!("heartbeat answered {status}");
                }
                lat.push(t.elapsed());
            }
            Ok(lat)
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(h.join().map_err(|_| anyhow::anyhow!("a worker thread panicked"))??);
    }
    lat.sort();
    let pct = |p: f64| ms(lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]);
    println!("\n## Heartbeats: {workers} simulated workers, each in a loop, {seconds} s");
    println!(
        "{} heartbeats, {:.0}/s, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        lat.len() as f64 / seconds as f64,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );

    // 3. Transfers of the big file: download twice (the first one hashes it on the master
    // first), hash on the worker side, upload.
    let (_, r) = c.post("/api/v1/workers/register", json!({"name": "mover", "host": "bench"}))?;
    let worker = r["worker_id"].clone();
    let (id, lease) = loop {
        let (status, job) = c.post("/api/v1/jobs/claim", json!({"worker_id": worker}))?;
        if status != 200 {
            bail!("the big file was not claimable");
        }
        let id = job["job"]["file_id"].as_i64().context("claim")?;
        if job["job"]["path"].as_str().is_some_and(|p| p.ends_with("zz-big.mkv")) {
            break (id, job["lease"].as_str().context("lease")?.to_owned());
        }
        c.post(
            &format!("/api/v1/jobs/{id}/skip"),
            json!({"lease": job["lease"], "reason": "manual", "detail": "bench"}),
        )?;
    };
    let size = std::fs::metadata(lib.join("zz-big.mkv"))?.len();
    println!("\n## Transfers on loopback ({:.0} MiB file)", size as f64 / 1048576.0);
    for run in ["first (the master hashes the file before sending)", "second (hash remembered)"] {
        let t = Instant::now();
        let mut resp = c
            .agent
            .get(format!("{base}/api/v1/jobs/{id}/source"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("X-Lease", &lease)
            .call()?;
        let mut hasher = blake3::Hasher::new();
        let mut reader = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = reader.read(&mut buf)?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            n += k as u64;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "download, {run}, hashing while receiving: {:.2} GB/s ({n} bytes in {secs:.2} s)",
            n as f64 / secs / 1e9
        );
    }
    let up = (size - (1 << 20)) as usize;
    let data = vec![0xa5u8; 1 << 20];
    let t = Instant::now();
    let reader = RepeatReader { chunk: data, left: up };
    let mut r = c
        .agent
        .put(format!("{base}/api/v1/jobs/{id}/result?offset=0"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("X-Lease", &lease)
        .send(ureq::SendBody::from_owned_reader(reader))?;
    let secs = t.elapsed().as_secs_f64();
    let answer = r.body_mut().read_to_string()?;
    println!(
        "upload, written and fsynced by the master: {:.2} GB/s ({up} bytes in {secs:.2} s) -> {answer}",
        up as f64 / secs / 1e9
    );
    let t = Instant::now();
    let staged = std::fs::read_dir(&lib)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".av1-verified"))
        .context("uploaded file")?;
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(&staged)?)?;
    println!(
        "BLAKE3 of the upload as the master checks it: {:.2} GB/s",
        up as f64 / t.elapsed().as_secs_f64() / 1e9
    );

    let _ = master.kill();
    let _ = master.wait();
    Ok(())
}

/// `left` bytes of a repeated chunk, without holding them in memory.
struct RepeatReader {
    chunk: Vec<u8>,
    left: usize,
}

impl Read for RepeatReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk.len()).min(self.left);
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.left -= n;
        Ok(n)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn ffmpeg(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ffmpeg")
        .current_dir(dir)
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
