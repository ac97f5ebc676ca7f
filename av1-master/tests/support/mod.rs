//! What the master's process tests share: fixtures made with the `ffmpeg` program, the
//! master and worker binaries as real child processes, a small API client, and the
//! independent checks (ffprobe/ffmpeg) of a result.
#![allow(dead_code)] // each test file uses its own part of it

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "process-tests";

pub fn ffmpeg(dir: &Path, args: &[&str]) {
    let out = Command::new("ffmpeg")
        .current_dir(dir)
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A 160×120 H.264 + AAC clip with grain (worth encoding), `seconds` long.
pub fn clip(dir: &Path, name: &str, seconds: u32) {
    clip_sized(dir, name, seconds, 160, 120);
}

pub fn clip_sized(dir: &Path, name: &str, seconds: u32, width: u32, height: u32) {
    let d = seconds.to_string();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=s={width}x{height}:r=24:d={d},noise=alls=12:allf=t"),
            "-f",
            "lavfi",
            "-i",
            &format!("sine=d={d}"),
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            name,
        ],
    );
}

pub fn master_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_av1-master"))
}

pub fn worker_bin() -> PathBuf {
    let p = master_bin().with_file_name("av1-worker");
    assert!(p.exists(), "{} is built with the workspace (cargo test --workspace)", p.display());
    p
}

/// A child process killed when dropped, with its stderr lines forwarded to a channel
/// (and echoed, indented, to the test's output).
pub struct Proc {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub started: Instant,
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Proc {
    pub fn spawn(c: Command) -> Proc {
        Proc::spawn_quiet(c, false)
    }

    /// `quiet`: the lines are not echoed (long runs).
    pub fn spawn_quiet(mut c: Command, quiet: bool) -> Proc {
        let mut child = c.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !quiet {
                    eprintln!("  | {line}");
                }
                let _ = tx.send(line);
            }
        });
        Proc { child, lines, started: Instant::now() }
    }

    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_within(needle, Duration::from_secs(90))
            .unwrap_or_else(|| panic!("never saw {needle:?}"))
    }

    pub fn wait_for_within(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while let Ok(line) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if line.contains(needle) {
                return Some(line);
            }
        }
        None
    }

    /// Whether a line holding `needle` arrived since the last look (does not wait).
    pub fn saw(&self, needle: &str) -> bool {
        let mut seen = false;
        while let Ok(line) = self.lines.try_recv() {
            seen |= line.contains(needle);
        }
        seen
    }

    /// Waits for the end; its exit status and the lines not read yet.
    pub fn finish(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.iter().collect();
        (status, rest.join("\n"))
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM; SIGKILL if still there after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }
}

/// The master's command line for a library: testing mode, fast settings, a 2 s lease.
pub fn master_command(lib: &Path, db: &Path, port: u16) -> Command {
    let mut c = Command::new(master_bin());
    c.env("SVT_LOG", "1").env("RUST_LOG", "info").env("AV1_TOKEN", TOKEN).env_remove("MEDIA_DIRS");
    c.env_remove("TLS_CERT").env_remove("TLS_KEY").env_remove("LOCAL_WORKER");
    c.env_remove("AV1_PAUSE_AT").env_remove("AV1_PAUSE_SECONDS");
    c.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--lease-timeout",
        "2",
        "--testing-mode",
        "--preset",
        "12",
        "--crf",
        "40",
        "--db",
    ])
    .arg(db)
    .arg(lib);
    c
}

/// Starts a master and waits until it listens; returns it and its base URL.
pub fn start_master(c: Command) -> (Proc, String) {
    let p = Proc::spawn(c);
    let line = p.wait_for("listening on http://");
    (p, url_of(&line))
}

pub fn url_of(listening_line: &str) -> String {
    let addr = listening_line
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    format!("http://{addr}")
}

pub fn master(lib: &Path, db: &Path) -> (Proc, String) {
    start_master(master_command(lib, db, 0))
}

pub fn master_on(lib: &Path, db: &Path, port: u16) -> (Proc, String) {
    start_master(master_command(lib, db, port))
}

/// A worker's command line: its state under `state/worker-NAME`, fast settings.
pub fn worker_command(url: &str, name: &str, state: &Path, extra_env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(worker_bin());
    c.env("SVT_LOG", "1").env("RUST_LOG", "info").env("AV1_TOKEN", TOKEN).env_remove("MASTER_URL");
    c.env_remove("TLS_CA").env_remove("PATH_MAP").env_remove("FILE_DISTRIBUTION_MODE");
    c.env_remove("AV1_PAUSE_AT").env_remove("AV1_PAUSE_SECONDS");
    c.env("WORKER_STATE", state.join(format!("worker-{name}")));
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.args(["--preset", "12", "--poll", "0.2", "--name", name, url]);
    c
}

pub fn worker(url: &str, name: &str, state: &Path, extra_env: &[(&str, &str)]) -> Proc {
    Proc::spawn(worker_command(url, name, state, extra_env))
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// An API call with the token; the status and the JSON body (null when not JSON).
pub fn call(
    url: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let a = agent();
    let auth = format!("Bearer {TOKEN}");
    let full = format!("{url}{path}");
    let start = Instant::now();
    let r = match (method, body) {
        ("GET", _) => a.get(&full).header("Authorization", &auth).call(),
        ("DELETE", _) => a.delete(&full).header("Authorization", &auth).call(),
        (_, Some(b)) => a
            .post(&full)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(b.to_string()),
        (_, None) => a
            .post(&full)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send_empty(),
    };
    match r {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
        }
        Err(e) => panic!("{method} {path}: {e} (after {:?})", start.elapsed()),
    }
}

/// The statistics, or `None` when the master does not answer.
pub fn try_stats(url: &str) -> Option<serde_json::Value> {
    let mut r = agent()
        .get(format!("{url}/api/v1/stats"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .config()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .call()
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
}

pub fn stats(url: &str) -> serde_json::Value {
    call(url, "GET", "/api/v1/stats", None).1
}

pub fn settle(url: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = stats(url);
        if ok(&s) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{what}: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The regular files directly in `dir`, by name, with their bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// Every file under `dir` (recursively), with its BLAKE3 hash.
pub fn hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(|e| e.unwrap()) {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else {
                out.insert(e.path(), hash(&e.path()));
            }
        }
    }
    out
}

pub fn hash(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path).unwrap()).unwrap();
    h.finalize().to_hex().to_string()
}

/// Checked with the ffmpeg tools, not with our code: one AV1 video stream, every frame
/// decodes without a message, and (when given) the duration matches the source's.
pub fn check_av1(path: &Path, source_duration: Option<f64>) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(format!("{}: {}", path.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let codec = probe(path, &["-select_streams", "v", "-show_entries", "stream=codec_name"]);
    if codec != "av1" {
        return Err(format!("{}: video streams {codec:?}, expected one av1", path.display()));
    }
    if let Some(want) = source_duration {
        let got = duration(path).ok_or_else(|| format!("{}: no duration", path.display()))?;
        if (got - want).abs() > (want * 0.01).max(0.5) {
            return Err(format!("{}: lasts {got:.2} s, the source {want:.2} s", path.display()));
        }
    }
    Ok(())
}

pub fn assert_av1(path: &Path) {
    check_av1(path, None).unwrap();
}

/// ffprobe's answer, trimmed (csv without keys).
pub fn probe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn duration(path: &Path) -> Option<f64> {
    probe(path, &["-show_entries", "format=duration"]).parse().ok()
}

/// A TCP connection to `addr` from the local address `from` (127.0.0.2 and so on are
/// all loopback on Linux: other clients, as far as the master can tell).
pub fn connect_from(from: std::net::IpAddr, addr: &str) -> std::net::TcpStream {
    use rustix::net::{bind, connect, socket_with, AddressFamily, SocketFlags, SocketType};
    let to: std::net::SocketAddr = addr.parse().unwrap();
    // Close-on-exec: a master or worker another test starts meanwhile must not inherit it.
    let fd = socket_with(AddressFamily::INET, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap();
    bind(&fd, &std::net::SocketAddr::new(from, 0)).unwrap();
    connect(&fd, &to).unwrap();
    std::net::TcpStream::from(fd)
}

/// A connection attempt to `addr` from `from` that never waits: the socket is
/// non-blocking, so a master whose backlog is full (out of descriptors) cannot stall
/// the test; the connection completes or not, and holds its place either way.
pub fn flood_from(from: std::net::IpAddr, addr: &str) -> rustix::fd::OwnedFd {
    use rustix::net::{bind, connect, socket_with, AddressFamily, SocketFlags, SocketType};
    let to: std::net::SocketAddr = addr.parse().unwrap();
    // Close-on-exec: a master started by another test meanwhile (under a 1024-file
    // limit) inherited a flood's 1300 sockets and could not open its database.
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = socket_with(AddressFamily::INET, SocketType::STREAM, flags, None).unwrap();
    bind(&fd, &std::net::SocketAddr::new(from, 0)).unwrap();
    match connect(&fd, &to) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => fd,
        Err(e) => panic!("connecting to {addr}: {e}"),
    }
}

pub fn loopback(n: u8) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, n))
}
