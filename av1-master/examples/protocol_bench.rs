//! Benchmark of the master's protocol over real HTTP on loopback (not a test; timing
//! belongs here). Every answer's status is checked; a wrong one stops the benchmark.
//!
//! 1. **A real job** in file-distribution mode, the benchmark acting as the worker:
//!    claim → download (BLAKE3 while receiving, compared with the master's `X-Blake3`)
//!    → a real encode by `av1-worker transcode` with heartbeats every second → upload →
//!    `complete` (the master's size and BLAKE3 check, its full verification and the
//!    crash-safe replacement) — and the master's share of the encode's time.
//! 2. **Protocol calls alone** (no transfer, no encode): register + claim + 3 heartbeats
//!    + an end by `skip`, per job.
//! 3. **Heartbeats** from many simulated workers, each in a tight loop: per second, p50/p99.
//! 4. **Transfers** of a 1 GiB file: download (twice: hashed by the master first, then
//!    remembered), upload (written and fsynced), and the master's own check of it
//!    (`complete`: its BLAKE3 of the staged file; then, 0.1% smaller, it is not worth it).
//!
//! `make bench-protocol` (builds first), or
//! `cargo run --release -p av1-master --example protocol_bench -- [--workers 32] [--seconds 10] [--mib 1024]`

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use serde_json::{json, Value};

const TOKEN: &str = "bench";

#[derive(Clone)]
struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(base: &str) -> Client {
        Client {
            base: base.to_owned(),
            agent: ureq::Agent::config_builder().http_status_as_error(false).build().into(),
        }
    }

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

    /// A POST that must answer `want`; its JSON.
    fn must(&self, path: &str, body: Value, want: u16) -> anyhow::Result<Value> {
        let (status, v) = self.post(path, body)?;
        ensure!(status == want, "POST {path} answered {status}, not {want}: {v}");
        Ok(v)
    }

    fn get(&self, path: &str, lease: Option<&str>) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        let mut r =
            self.agent.get(format!("{}{path}", self.base)).header("Authorization", format!("Bearer {TOKEN}"));
        if let Some(l) = lease {
            r = r.header("X-Lease", l);
        }
        Ok(r.call()?)
    }

    fn register(&self, name: &str) -> anyhow::Result<Value> {
        Ok(self.must("/api/v1/workers/register", json!({"name": name, "host": "bench"}), 200)?["worker_id"]
            .clone())
    }

    /// One heartbeat for job `id` under `lease`, as a worker encoding sends it: it must
    /// be answered 200 without a cancel. Returns how long the answer took.
    fn heartbeat(&self, id: i64, lease: &str) -> anyhow::Result<Duration> {
        let t = Instant::now();
        let body = json!({"lease": lease, "phase": "encoding", "progress": {"percent": 50, "fps": 17.0}});
        let v = self.must(&format!("/api/v1/jobs/{id}/heartbeat"), body, 200)?;
        ensure!(v["cancel"] == false, "the master asked to cancel: {v}");
        Ok(t.elapsed())
    }

    /// Claims until the file whose name ends with `suffix` comes (others are given back
    /// and excluded), or takes the first when `suffix` is empty: (file id, lease, the
    /// time of the claim that got it).
    fn claim(&self, worker: &Value, suffix: &str) -> anyhow::Result<(i64, String, Duration)> {
        let mut exclude = Vec::new();
        loop {
            let t = Instant::now();
            let job =
                self.must("/api/v1/jobs/claim", json!({"worker_id": worker, "exclude": exclude}), 200)?;
            let took = t.elapsed();
            let id = job["job"]["file_id"].as_i64().context("claim: no file id")?;
            let lease = job["lease"].as_str().context("claim: no lease")?.to_owned();
            if job["job"]["path"].as_str().is_some_and(|p| p.ends_with(suffix)) {
                return Ok((id, lease, took));
            }
            self.must(
                &format!("/api/v1/jobs/{id}/release"),
                json!({"lease": lease, "detail": "bench"}),
                200,
            )?;
            exclude.push(id);
        }
    }

    /// Downloads a job's source, hashing while receiving; checks size and BLAKE3
    /// against the master's headers. Bytes go to `to` when given.
    fn download(&self, id: i64, lease: &str, mut to: Option<&mut std::fs::File>) -> anyhow::Result<u64> {
        let mut resp = self.get(&format!("/api/v1/jobs/{id}/source"), Some(lease))?;
        ensure!(resp.status() == 200, "download answered {}", resp.status());
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (announced, size) =
            (header("X-Blake3").context("no X-Blake3")?, header("X-Size").context("no X-Size")?);
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
            if let Some(f) = to.as_deref_mut() {
                std::io::Write::write_all(f, &buf[..k])?;
            }
            n += k as u64;
        }
        ensure!(n.to_string() == size, "received {n} bytes, X-Size said {size}");
        ensure!(
            hasher.finalize().to_hex().as_str() == announced,
            "the bytes received do not have the announced BLAKE3"
        );
        Ok(n)
    }

    /// Uploads `len` bytes from `body` at offset 0; checks the master holds them all.
    fn upload(&self, id: i64, lease: &str, len: u64, body: impl Read + Send + 'static) -> anyhow::Result<()> {
        let mut r = self
            .agent
            .put(format!("{}/api/v1/jobs/{id}/result?offset=0", self.base))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("X-Lease", lease)
            .header("X-Result-Size", len.to_string())
            .send(ureq::SendBody::from_owned_reader(body))?;
        let status = r.status().as_u16();
        let answer: Value = serde_json::from_str(&r.body_mut().read_to_string()?).unwrap_or(Value::Null);
        ensure!(status == 200 && answer["received"] == len, "upload answered {status}: {answer}");
        Ok(())
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
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let bins = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(target).join("release");
    let (master_bin, worker_bin) = (bins.join("av1-master"), bins.join("av1-worker"));
    if !master_bin.exists() || !worker_bin.exists() {
        bail!("build first: cargo build --release --workspace (make bench-protocol does)");
    }
    let dir = tempfile::tempdir()?;
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(&lib)?;
    let jobs = workers + 24;
    make_library(dir.path(), &lib, jobs, mib)?;
    let (mut master, base) = start_master(&master_bin, dir.path(), &lib);
    let c = Client::new(&base);
    wait_for_scan(&c, jobs as u64 + 2)?;
    println!(
        "machine: {} cores; master with 8 HTTP threads, SQLite WAL synchronous=FULL, on loopback",
        cores()
    );
    println!("worker side: this program (ureq) and {}", tool_version(&worker_bin)?);

    real_job(&c, &worker_bin, dir.path(), &lib)?;
    calls_only(&c)?;
    heartbeats(&base, workers, seconds)?;
    transfers(&c, &lib)?;

    master.kill();
    Ok(())
}

/// Copies of one tiny clip (each a file of its own to the master), a real clip for the
/// real job, and a big file (a clip with a large attachment) for the transfers.
fn make_library(dir: &Path, lib: &Path, jobs: usize, mib: u64) -> anyhow::Result<()> {
    ffmpeg(lib, &["-f", "lavfi", "-i", "testsrc2=s=160x120:r=24:d=1", "-c:v", "libx264", "clip.mkv"])?;
    for i in 0..jobs {
        std::fs::copy(lib.join("clip.mkv"), lib.join(format!("copy-{i:04}.mkv")))?;
    }
    std::fs::remove_file(lib.join("clip.mkv"))?;
    ffmpeg(
        lib,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=640x360:r=24:d=4,noise=alls=6:allf=t",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=4",
            "-c:v",
            "libx264",
            "-crf",
            "16",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "192k",
            "real-job.mp4",
        ],
    )?;
    let blob = dir.join("blob.bin");
    {
        let mut f = std::fs::File::create(&blob)?;
        let chunk = vec![0x5au8; 1 << 20];
        for i in 0..mib {
            let mut c = chunk.clone();
            c[..8].copy_from_slice(&i.to_le_bytes());
            std::io::Write::write_all(&mut f, &c)?;
        }
    }
    let attach = blob.to_string_lossy();
    ffmpeg(
        lib,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=160x120:r=24:d=1",
            "-c:v",
            "libx264",
            "-attach",
            &attach,
            "-metadata:s:t",
            "mimetype=application/octet-stream",
            "zz-big.mkv",
        ],
    )?;
    std::fs::remove_file(&blob)?;
    Ok(())
}

fn start_master(bin: &Path, dir: &Path, lib: &Path) -> (av1_testkit::Proc, String) {
    let mut master = Command::new(bin);
    master.env("SVT_LOG", "1").env("RUST_LOG", "warn,av1_master=info").env("AV1_TOKEN", TOKEN);
    master.args([
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--lease-timeout",
        "60",
        "--http-threads",
        "8",
        "--db",
    ]);
    master.arg(dir.join("q.sqlite")).arg(lib);
    av1_testkit::process::start_listening(master, true)
}

fn wait_for_scan(c: &Client, files: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let mut r = c.get("/api/v1/stats", None)?;
        ensure!(r.status() == 200, "stats answered {}", r.status());
        let s: Value = serde_json::from_str(&r.body_mut().read_to_string()?)?;
        if s["pending"].as_u64() == Some(files) {
            return Ok(());
        }
        ensure!(start.elapsed() < Duration::from_secs(120), "the scan did not queue the files: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Section 1: one real job, end to end, and what of it is the master's.
fn real_job(c: &Client, worker_bin: &Path, dir: &Path, lib: &Path) -> anyhow::Result<()> {
    let worker = c.register("real")?;
    let (id, lease, claim) = c.claim(&worker, "real-job.mp4")?;
    let src = dir.join("downloaded.mp4");
    let t = Instant::now();
    let bytes = c.download(id, &lease, Some(&mut std::fs::File::create(&src)?))?;
    let download = t.elapsed();

    // The encode, with a heartbeat every second (real workers: every 10 s) on the side.
    let stop = Arc::new(AtomicBool::new(false));
    let beats = {
        let (c, stop, lease) = (c.clone(), stop.clone(), lease.clone());
        std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
            let mut took = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                took.push(c.heartbeat(id, &lease)?);
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(took)
        })
    };
    let out = dir.join("result.mkv");
    let t = Instant::now();
    let o = Command::new(worker_bin)
        .env("SVT_LOG", "1")
        .arg("transcode")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("--json")
        .output()?;
    let encode = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let beats = beats.join().map_err(|_| anyhow::anyhow!("the heartbeat thread panicked"))??;
    ensure!(o.status.success(), "the encode failed: {}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_slice(&o.stdout)?;

    let size = std::fs::metadata(&out)?.len();
    let hash =
        blake3::Hasher::new().update_reader(std::fs::File::open(&out)?)?.finalize().to_hex().to_string();
    let t = Instant::now();
    c.upload(id, &lease, size, std::fs::File::open(&out)?)?;
    let upload = t.elapsed();
    let secs = |d: &Value| d["secs"].as_f64().unwrap_or(0.0) + d["nanos"].as_f64().unwrap_or(0.0) / 1e9;
    let body = json!({"lease": lease, "size": size, "blake3": hash, "frames": report["frames"],
        "encoder": report["encoder"], "fps": report["fps"], "elapsed": secs(&report["elapsed"])});
    let t = Instant::now();
    let answer = c.must(&format!("/api/v1/jobs/{id}/complete"), body, 200)?;
    let complete = t.elapsed();
    ensure!(answer["status"] == "done", "the master did not accept the result: {answer}");
    ensure!(
        lib.join("real-job.mkv").exists() && !lib.join("real-job.mp4").exists(),
        "the original was not replaced"
    );

    let beat_total: Duration = beats.iter().sum();
    let master = claim + download + beat_total + upload + complete;
    println!("\n## 1. A real job: 640x360, 4 s, {bytes} bytes → {size} bytes (file distribution, all statuses checked)");
    println!("| step | ms |");
    println!("|---|---|");
    for (name, d) in [
        ("claim".to_owned(), claim),
        ("download, BLAKE3 compared with X-Blake3".to_owned(), download),
        (format!("{} heartbeats during the encode (sum)", beats.len()), beat_total),
        ("upload, written and fsynced by the master".to_owned(), upload),
        ("complete: the master's size + BLAKE3 check, full verification, replacement".to_owned(), complete),
        ("**the master's part (sum of the above)**".to_owned(), master),
        ("the encode (av1-worker transcode, preset 8, its own checks included)".to_owned(), encode),
    ] {
        println!("| {name} | {:.1} |", ms(d));
    }
    println!(
        "master's share: {:.1}% of the encode's time ({:.2} s of master work per {:.2} s of encoding); \
         most of it is `complete`, which decodes the result again — it grows with the film, as the encode does",
        100.0 * master.as_secs_f64() / encode.as_secs_f64(),
        master.as_secs_f64(),
        encode.as_secs_f64()
    );
    Ok(())
}

/// Section 2: the protocol's calls alone, per job.
fn calls_only(c: &Client) -> anyhow::Result<()> {
    let mut samples = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let worker = c.register(&format!("solo-{i}"))?;
        let (id, lease, _) = c.claim(&worker, "")?;
        for _ in 0..3 {
            c.heartbeat(id, &lease)?;
        }
        let body = json!({"lease": lease, "reason": "manual", "detail": "bench"});
        let v = c.must(&format!("/api/v1/jobs/{id}/skip"), body, 200)?;
        ensure!(v["status"] == "skipped", "skip answered {v}");
        samples.push(t.elapsed());
    }
    samples.sort();
    println!("\n## 2. Protocol calls alone (register + claim + 3 heartbeats + skip; no transfer, no encode), 20 jobs");
    println!(
        "median {:.2} ms, max {:.2} ms",
        ms(samples[samples.len() / 2]),
        ms(*samples.last().unwrap_or(&Duration::ZERO))
    );
    Ok(())
}

/// Section 3: heartbeats from `workers` simulated workers, each holding a lease.
fn heartbeats(base: &str, workers: usize, seconds: u64) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..workers {
        let (cl, stop) = (Client::new(base), stop.clone());
        handles.push(std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
            let worker = cl.register(&format!("w-{w}"))?;
            let (id, lease, _) = cl.claim(&worker, "")?;
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                lat.push(cl.heartbeat(id, &lease)?);
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
    println!("\n## 3. Heartbeats: {workers} simulated workers, each in a tight loop, {seconds} s");
    println!(
        "{} heartbeats, {:.0}/s, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        lat.len() as f64 / seconds as f64,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}

/// Section 4: the big file down and up, and the master's check of the upload.
fn transfers(c: &Client, lib: &Path) -> anyhow::Result<()> {
    let worker = c.register("mover")?;
    let (id, lease, _) = c.claim(&worker, "zz-big.mkv")?;
    let size = std::fs::metadata(lib.join("zz-big.mkv"))?.len();
    println!(
        "\n## 4. Transfers on loopback ({:.0} MiB file; sizes and BLAKE3 checked)",
        size as f64 / 1048576.0
    );
    for run in ["first (the master hashes the file before sending)", "second (hash remembered)"] {
        let t = Instant::now();
        let n = c.download(id, &lease, None)?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "download, {run}, hashing while receiving: {:.2} GB/s ({n} bytes in {secs:.2} s)",
            n as f64 / secs / 1e9
        );
    }
    let up = size - (1 << 20);
    let t = Instant::now();
    let (reader, hash) =
        (RepeatReader { chunk: vec![0xa5u8; 1 << 20], left: up as usize }, repeat_hash(0xa5, up));
    c.upload(id, &lease, up, reader)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "upload, written and fsynced by the master: {:.2} GB/s ({up} bytes in {secs:.2} s)",
        up as f64 / secs / 1e9
    );
    let body = json!({"lease": lease, "size": up, "blake3": hash, "frames": 24, "encoder": "bench", "fps": 1.0, "elapsed": 1.0});
    let t = Instant::now();
    let answer = c.must(&format!("/api/v1/jobs/{id}/complete"), body, 200)?;
    let secs = t.elapsed().as_secs_f64();
    ensure!(answer["status"] == "skipped", "a result 0.1% smaller must be judged not worth it: {answer}");
    println!(
        "complete on that upload: the master's BLAKE3 of the staged file through its descriptor (then it is \
         judged not worth replacing: 0.1% smaller): {secs:.2} s, {:.2} GB/s",
        up as f64 / secs / 1e9
    );
    Ok(())
}

/// BLAKE3 of `len` bytes all equal to `byte`.
fn repeat_hash(byte: u8, len: u64) -> String {
    let mut h = blake3::Hasher::new();
    let chunk = vec![byte; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        h.update(&chunk[..n]);
        left -= n as u64;
    }
    h.finalize().to_hex().to_string()
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

fn tool_version(bin: &Path) -> anyhow::Result<String> {
    let o = Command::new(bin).arg("--version").output()?;
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
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
