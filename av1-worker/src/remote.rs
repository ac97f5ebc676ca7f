//! `av1-worker MASTER_URL`: works for a master. Registers, claims a job when idle,
//! transcodes it with av1core while a heartbeat thread renews the lease and reports
//! progress, and hands the result over. Shared storage: the worker reads the source
//! through its own mount (`PATH_MAP` turns master paths into local ones) and writes the
//! result beside it under a hidden name derived from the lease; the master checks it
//! and replaces the original; with file distribution the worker downloads the source and
//! uploads the result over HTTP instead.
//!
//! Reconnects with backoff when the master is away. The first SIGTERM/Ctrl-C drains:
//! the current job finishes, nothing new is claimed; a second one quits at once (the
//! lease then runs out and the job goes back to the queue).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use av1_library::deliver::Delivered;
use av1_library::job::JobSettings;
use av1_library::names;
use av1_library::queue::Claimed;
use av1_proto::urls;
use av1_proto::worker::{
    ClaimReply, ClaimRequest, ConfigReply, EndCall, EndReply, HeartbeatReply, HeartbeatRequest, JobEnd,
    JobProgress, Received, Registered, WorkerInfo, WorkerPhase,
};
use av1_proto::ErrorKind;
use av1core::{Decision, Progress, SkipReason};
use serde::de::DeserializeOwned;
use ureq::tls::TlsConfig;

use crate::tls::{self, Trust};

/// `FILE_DISTRIBUTION_MODE`: how the worker gets a job's source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FileDistribution {
    /// Shared storage when this worker sees the file with the right size, else download.
    #[default]
    Auto,
    /// Always download the source and upload the result (no media mount needed).
    #[value(name = "true")]
    Always,
    /// Never: shared storage only (the file must be visible through `PATH_MAP`).
    #[value(name = "false")]
    Never,
}

/// A token: from the environment or a file, never from a flag (`ps` shows flags);
/// `Debug` shows nothing of it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the worker loop runs, in plain settings: the worker's command line makes them
/// from its flags ([`crate::cli::RemoteArgs`]), `av1-master --local-worker` from its own.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The token the master requires (`Authorization: Bearer`).
    pub token: Option<Secret>,
    /// Name shown by the master; unique per worker [default: the host name].
    pub name: Option<String>,
    /// Master path prefixes and where this worker sees them (`PATH_MAP`).
    pub path_map: Vec<(PathBuf, PathBuf)>,
    /// CPU priority, 0 (normal) to 19 (lowest).
    pub nice_level: i32,
    /// I/O priority class: 1 realtime, 2 best effort, 3 idle.
    pub ionice_class: u8,
    /// A result must be at least this many percent smaller (the master checks again).
    pub min_savings: f64,
    pub file_distribution: FileDistribution,
    /// Where the worker keeps calls not yet answered [default: $XDG_STATE_HOME/av1/worker-NAME].
    pub state_dir: Option<PathBuf>,
    /// Seconds between claims when the queue is empty.
    pub poll: f64,
    /// Whom to trust as the master over `https://`.
    pub trust: Trust,
}

/// The master's address and our credentials.
struct Master {
    base: String,
    token: Option<String>,
    tls: TlsConfig,
    agent: ureq::Agent,
}

/// A reply: its status and body, read as the type the caller expects
/// ([`Answer::read`]) or shown as it came ([`Answer::text`], for logs).
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn read<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_str(&self.text)
            .with_context(|| format!("an answer the worker cannot read: {}", self.text))
    }
}

impl Master {
    fn post(&self, path: &str, body: &impl serde::Serialize) -> anyhow::Result<Answer> {
        let mut req =
            self.agent.post(format!("{}{path}", self.base)).header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let body = serde_json::to_vec(body)?;
        let mut resp = req.send(&body[..]).with_context(|| format!("POST {path}"))?;
        let status = resp.status().as_u16();
        Ok(Answer { status, text: resp.body_mut().read_to_string().unwrap_or_default() })
    }
}

/// Works for the master at `url` until `drain` is raised (then finishes the current job
/// and returns). `fallback` are the encoder settings used until the master's arrive;
/// `threads` stays this machine's choice.
pub fn run(
    url: &str,
    args: &RemoteConfig,
    fallback: av1core::Settings,
    threads: u32,
    drain: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    tls::check_url(url)?;
    let tls = tls::config(&args.trust)?;
    let maps = &args.path_map;
    // Used until the master's settings arrive (they replace these, but for `threads`).
    let mut settings = fallback;
    let mut config_version = String::new();
    av1core::os::set_priority(args.nice_level, args.ionice_class)?;
    let master = Master {
        base: url.trim_end_matches('/').to_owned(),
        token: args.token.as_ref().map(|t| t.0.clone()),
        agent: tls::agent(&tls, Duration::from_secs(5), Duration::from_secs(3600)),
        tls,
    };
    let info = worker_info(args);
    let name = info.name.clone();

    let state_dir = args.state_dir.clone().unwrap_or_else(|| default_state_dir(&name));
    std::fs::create_dir_all(&state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    let _lock = lock_state(&state_dir)?;
    // Downloads and encodes of an earlier run are of no use now (their jobs' leases
    // ran out or will); only this worker's own directory is touched.
    let _ = std::fs::remove_dir_all(state_dir.join("work"));
    deliver_pending(&master, &state_dir);

    let mut backoff = Backoff::new();
    let mut registered: Option<(i64, Duration)> = None;
    let mut no_room: std::collections::HashMap<i64, Instant> = std::collections::HashMap::new();
    while !drain.load(Ordering::SeqCst) {
        let (worker, beat_every) = match registered {
            Some(r) => r,
            None => match register(&master, &info)? {
                Some(r) => {
                    backoff.reset();
                    *registered.insert(r)
                }
                None => {
                    backoff.wait(&drain);
                    continue;
                }
            },
        };
        // Files this worker had no room for are left to others (or to later) for a while.
        no_room.retain(|_, since| since.elapsed() < NO_ROOM_PAUSE);
        let claim = ClaimRequest { worker_id: worker, exclude: no_room.keys().copied().collect() };
        let ClaimReply { claimed, config_version: claimed_version } = match claim_job(&master, &claim) {
            Claim::Job(c) => c,
            Claim::Nothing => {
                sleep_unless(&drain, Duration::from_secs_f64(args.poll.max(0.1)));
                continue;
            }
            Claim::Refused => {
                registered = None;
                backoff.wait(&drain);
                continue;
            }
            Claim::Failed => {
                backoff.wait(&drain);
                continue;
            }
        };
        backoff.reset();
        if claimed_version != config_version {
            match fetch_config(&master, threads) {
                Ok((version, s)) => {
                    tracing::info!(
                        "encoder settings {version} from the master (preset {}, CRF {:?})",
                        s.preset,
                        s.crf
                    );
                    config_version = version;
                    settings = s;
                }
                Err(e) => tracing::warn!("could not fetch the master's settings ({e:#}); using ours"),
            }
        }
        match work(&master, &state_dir, &claimed, maps, &settings, args, beat_every) {
            Worked::Ended => {}
            Worked::NoRoom => {
                // Left to others (or to later); the list is bounded so claims stay small.
                if no_room.len() < 1000 {
                    no_room.insert(claimed.job.file_id, Instant::now());
                }
                sleep_unless(&drain, Duration::from_secs_f64((args.poll * 2.0).clamp(1.0, 30.0)));
            }
            // (A file still being written would otherwise go round at full speed.)
            Worked::GaveBack => sleep_unless(&drain, Duration::from_secs_f64(args.poll.clamp(0.1, 30.0))),
        }
    }
    tracing::info!("drained: no job left running here; stopping");
    Ok(())
}

/// What this worker says about itself when it registers.
fn worker_info(args: &RemoteConfig) -> WorkerInfo {
    let host = hostname();
    WorkerInfo {
        name: args.name.clone().unwrap_or_else(|| host.clone()),
        host,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()).try_into().ok(),
        memory: memory_bytes(),
        encoder: Some(format!("SVT-AV1 {}", av1core::encode::svt::version())),
        version: Some(env!("CARGO_PKG_VERSION").into()),
    }
}

/// Registers with the master: this worker's id and how often to send heartbeats, or
/// `None` to try again later; an error when the master refuses our token.
fn register(master: &Master, info: &WorkerInfo) -> anyhow::Result<Option<(i64, Duration)>> {
    match master.post(urls::REGISTER, info) {
        Ok(a) if a.status == 200 => match a.read::<Registered>() {
            Ok(r) => {
                let every =
                    Duration::try_from_secs_f64(r.heartbeat_seconds).unwrap_or(Duration::from_secs(10));
                tracing::info!("registered with {} as {} (worker {})", master.base, info.name, r.worker_id);
                Ok(Some((r.worker_id, every)))
            }
            Err(e) => {
                tracing::warn!("registering: {e:#}");
                Ok(None)
            }
        },
        Ok(a) if a.status == 401 => bail!("the master refused our token (401): set AV1_TOKEN"),
        Ok(a) => {
            tracing::warn!("registering: {} {}", a.status, a.text);
            Ok(None)
        }
        Err(e) => {
            tracing::warn!("master unreachable ({e:#}); retrying");
            Ok(None)
        }
    }
}

/// What a claim brought.
enum Claim {
    Job(ClaimReply),
    /// Nothing to do now.
    Nothing,
    /// Refused (this worker unknown to the master: register again).
    Refused,
    /// The master unreachable, or an answer this worker cannot read (another version;
    /// the lease then runs out).
    Failed,
}

fn claim_job(master: &Master, claim: &ClaimRequest) -> Claim {
    match master.post(urls::CLAIM, claim) {
        Ok(a) if a.status == 200 => match a.read() {
            Ok(c) => Claim::Job(c),
            Err(e) => {
                tracing::warn!("claiming: {e:#}");
                Claim::Failed
            }
        },
        Ok(a) if a.status == 204 => Claim::Nothing,
        Ok(a) => {
            tracing::warn!("claiming: {} {}", a.status, a.text);
            Claim::Refused
        }
        Err(e) => {
            tracing::warn!("master unreachable ({e:#}); retrying");
            Claim::Failed
        }
    }
}

/// How long a file this worker had no disk space for is left to other workers.
const NO_ROOM_PAUSE: Duration = Duration::from_secs(600);

/// What became of a job, as far as the worker loop cares.
enum Worked {
    Ended,
    /// Given back: this worker's disk (or the library's) had no room for it.
    NoRoom,
    /// Given back for another attempt (its source changed meanwhile).
    GaveBack,
}

/// The master's answer 410: the source changed (or went) since the job was handed out.
#[derive(Debug)]
struct SourceChanged(String);

impl std::fmt::Display for SourceChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the master answered 410: {}", self.0)
    }
}

impl std::error::Error for SourceChanged {}

/// The master's answer 507: its library's disk is full.
#[derive(Debug)]
struct MasterDiskFull(String);

impl std::fmt::Display for MasterDiskFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the master has no room for the result (507: {})", self.0)
    }
}

impl std::error::Error for MasterDiskFull {}

/// Whether an error chain comes from a disk that takes no writes (full, over quota,
/// read-only) anywhere in it.
fn full_disk(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(av1core::error::unwritable_disk)
            || c.downcast_ref::<av1core::Error>().is_some_and(av1core::Error::is_unwritable_disk)
            || c.downcast_ref::<av1_library::Error>().is_some_and(av1_library::Error::is_unwritable_disk)
            || c.downcast_ref::<MasterDiskFull>().is_some()
    })
}

/// The master's encoder settings and tables (`threads` stays this machine's).
fn fetch_config(master: &Master, threads: u32) -> anyhow::Result<(String, av1core::Settings)> {
    let mut req = master.agent.get(format!("{}{}", master.base, urls::CONFIG));
    if let Some(t) = &master.token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let mut resp = req.call()?;
    if resp.status().as_u16() != 200 {
        bail!("GET /api/v1/config answered {}", resp.status());
    }
    let ConfigReply { version, mut settings } = serde_json::from_str(&resp.body_mut().read_to_string()?)?;
    settings.threads = threads;
    settings.validate()?;
    Ok((version, settings))
}

/// What a job and its heartbeat thread share.
#[derive(Default)]
struct JobState {
    phase: Mutex<WorkerPhase>,
    progress: Mutex<Option<Progress>>,
    /// Raised to stop the encoder: a cancel, or a lease that cannot be kept.
    stop: AtomicBool,
    /// A person cancelled the job.
    cancelled: AtomicBool,
    /// The lease is not ours any more: the job is dropped.
    stale: AtomicBool,
    /// The job has ended: the heartbeats stop.
    finished: AtomicBool,
}

/// Where a job's source is read and its result written.
struct Paths {
    input: PathBuf,
    staged: PathBuf,
    /// Shared storage: the source through this worker's mount, the result beside it.
    shared: bool,
}

/// One job, from claim to the call that ends it.
fn work(
    master: &Master,
    state_dir: &Path,
    c: &Claimed,
    maps: &[(PathBuf, PathBuf)],
    settings: &av1core::Settings,
    args: &RemoteConfig,
    beat_every: Duration,
) -> Worked {
    let id = c.job.file_id;
    tracing::info!(file = id, "job: {:?} (attempt {})", c.job.path, c.job.attempts);
    av1_library::pause_point(av1_library::Pause::WorkerClaimed);
    let end = |end: JobEnd| {
        deliver(master, state_dir, &Delivery { file_id: id, call: end.call(), body: end.body(&c.lease) })
    };
    let Some(paths) = paths_for(c, maps, args.file_distribution, state_dir) else {
        // This worker's setup, not the file: give the job back (another worker may see
        // it) and wait before claiming again, instead of failing file after file.
        let why = "a worker could not read the file through its mount (see its log); given back";
        end(JobEnd::Release { detail: why.into() });
        std::thread::sleep(Duration::from_secs(30));
        return Worked::Ended;
    };
    let job = Arc::new(JobState::default());
    set_phase(&job.phase, if paths.shared { WorkerPhase::Encoding } else { WorkerPhase::Downloading });
    let beats = spawn_heartbeats(master, c, job.clone(), beat_every);
    let rules = JobSettings { min_savings_percent: args.min_savings, ..JobSettings::default() };
    let outcome = fetch_encode_send(master, c, &paths, settings, &rules, &job);
    if !paths.shared {
        let _ = std::fs::remove_file(&paths.input);
        let _ = std::fs::remove_file(&paths.staged);
    }
    if job.stale.load(Ordering::SeqCst) {
        job.finished.store(true, Ordering::SeqCst);
        let _ = beats.join();
        let _ = std::fs::remove_file(&paths.staged);
        tracing::warn!(file = id, "the lease ran out: job dropped");
        return Worked::Ended;
    }
    // Heartbeats go on while the outcome is delivered (the master may be away for a while).
    let worked = match outcome {
        Encoded::NoRoom(_) => Worked::NoRoom,
        Encoded::GiveBack(_) => Worked::GaveBack,
        _ => Worked::Ended,
    };
    let ending = ending(outcome, c, &paths, job.cancelled.load(Ordering::SeqCst));
    let complete = matches!(ending, JobEnd::Complete(_));
    // Not taken (lease gone, refused): the result beside the original is ours to remove.
    if end(ending) != 200 && complete {
        let _ = std::fs::remove_file(&paths.staged);
    }
    job.finished.store(true, Ordering::SeqCst);
    let _ = beats.join();
    worked
}

/// Where this job reads its source and writes its result: through this worker's own
/// mount when `PATH_MAP` allows and the file has the claimed size (or always/never, as
/// `FILE_DISTRIBUTION_MODE` says), else a download into `state_dir/work`. `None` when
/// shared storage is required and the file cannot be seen here (the details, local
/// paths included, stay in this worker's log).
fn paths_for(
    c: &Claimed,
    maps: &[(PathBuf, PathBuf)],
    mode: FileDistribution,
    state_dir: &Path,
) -> Option<Paths> {
    let seen = match map_path(&c.job.path, maps) {
        None => Err("the master's path is not under this worker's PATH_MAP".to_owned()),
        Some(local) => match std::fs::metadata(&local) {
            Ok(m) if m.len() == c.job.size => Ok(local),
            Ok(m) => {
                Err(format!("{} has {} bytes, the master says {}", local.display(), m.len(), c.job.size))
            }
            Err(e) => Err(format!("{}: {e}", local.display())),
        },
    };
    let shared = match mode {
        FileDistribution::Always => false,
        FileDistribution::Never => true,
        FileDistribution::Auto => seen.is_ok(),
    };
    match (shared, seen) {
        (true, Ok(local)) => {
            let staged = names::staged_for_lease(&names::target_for(&local), &c.lease);
            Some(Paths { input: local, staged, shared })
        }
        (true, Err(what)) => {
            tracing::error!(
                file = c.job.file_id,
                "cannot read {:?} here ({what}); check the mount and PATH_MAP, or use FILE_DISTRIBUTION_MODE",
                c.job.path
            );
            None
        }
        (false, _) => {
            let (id, work_dir) = (c.job.file_id, state_dir.join("work"));
            let tag: String = c.lease.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
            let ext =
                c.job.path.extension().map_or_else(|| "bin".into(), |e| e.to_string_lossy().into_owned());
            let _ = std::fs::create_dir_all(&work_dir);
            let (input, staged) =
                (work_dir.join(format!("{id}-{tag}.{ext}")), work_dir.join(format!("{id}-{tag}.mkv")));
            Some(Paths { input, staged, shared })
        }
    }
}

/// The heartbeat thread: renews the lease, reports progress, hears cancels.
fn spawn_heartbeats(
    master: &Master,
    c: &Claimed,
    job: Arc<JobState>,
    every: Duration,
) -> std::thread::JoinHandle<()> {
    let (id, size, lease) = (c.job.file_id, c.job.size, c.lease.clone());
    let (base, token, tls) = (master.base.clone(), master.token.clone(), master.tls.clone());
    std::thread::spawn(move || {
        let agent = tls::agent(&tls, Duration::from_secs(5), Duration::from_secs(10));
        let m = Master { base, token, agent, tls };
        let mut usage = Usage::new();
        while !job.finished.load(Ordering::SeqCst) {
            let p = job.progress.lock().ok().and_then(|p| p.clone());
            let phase = job.phase.lock().map(|p| *p).unwrap_or(WorkerPhase::Encoding);
            let (cpu, rss) = usage.sample();
            let progress = reported(p.as_ref(), size, cpu, rss);
            let beat = HeartbeatRequest { lease: lease.clone(), phase, progress };
            match m.post(&urls::heartbeat(id), &beat) {
                Ok(a) if a.status == 200 => match a.read::<HeartbeatReply>() {
                    Ok(r) if r.cancel => {
                        job.cancelled.store(true, Ordering::SeqCst);
                        job.stop.store(true, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("heartbeat: {e:#}"),
                },
                // Not our lease any more — or heartbeats the master will never take
                // (another version): the lease cannot be kept, so the job ends.
                Ok(a) if a.status == 409 || ErrorKind::is_final(a.status) => {
                    if a.status != 409 {
                        tracing::error!("heartbeat refused ({} {}): dropping the job", a.status, a.text);
                    }
                    job.stale.store(true, Ordering::SeqCst);
                    job.stop.store(true, Ordering::SeqCst);
                }
                Ok(a) => tracing::warn!("heartbeat: {} {}", a.status, a.text),
                Err(e) => tracing::warn!("heartbeat: {e:#}"),
            }
            let until = Instant::now() + every;
            while Instant::now() < until && !job.finished.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    })
}

/// Room checked, the source downloaded (file distribution), encoded, and the result
/// uploaded (file distribution): what came of it.
fn fetch_encode_send(
    master: &Master,
    c: &Claimed,
    paths: &Paths,
    settings: &av1core::Settings,
    rules: &JobSettings,
    job: &JobState,
) -> Encoded {
    let (id, lease) = (c.job.file_id, c.lease.as_str());
    if let Err(no_room) = room_for(c, paths, rules) {
        return no_room;
    }
    if !paths.shared {
        if let Err(e) = download(master, id, lease, c.job.size, &paths.input, &job.stale) {
            return if full_disk(&e) {
                tracing::warn!(file = id, "downloading the source: {e:#}");
                Encoded::NoRoom("its disk filled up while downloading the source".into())
            } else if e.downcast_ref::<SourceChanged>().is_some() {
                Encoded::GiveBack(format!("downloading the source: {e:#}"))
            } else {
                Encoded::Failed(format!("downloading the source: {e}"))
            };
        }
        av1_library::pause_point(av1_library::Pause::WorkerDownloaded);
    }
    set_phase(&job.phase, WorkerPhase::Encoding);
    let outcome = encode(&paths.input, &paths.staged, c, settings, rules, &job.progress, &job.stop);
    if paths.shared || !matches!(outcome, Encoded::Result(_)) {
        return outcome;
    }
    set_phase(&job.phase, WorkerPhase::Uploading);
    match upload(master, id, lease, &paths.staged, &job.stale) {
        Ok(()) => outcome,
        Err(e) if full_disk(&e) => Encoded::NoRoom(format!("uploading the result: {e:#}")),
        Err(e) => Encoded::Failed(format!("uploading the result: {e}")),
    }
}

/// Room for the result (and the download) before starting: a full disk is found here,
/// not half-way through a download.
fn room_for(c: &Claimed, paths: &Paths, rules: &JobSettings) -> Result<(), Encoded> {
    let limit = rules.size_limit(c.job.size);
    let (room_dir, needed) = if paths.shared {
        (av1core::os::parent(&paths.input).to_path_buf(), av1_library::job::space_needed(limit))
    } else {
        (av1core::os::parent(&paths.staged).to_path_buf(), c.job.size + av1_library::job::space_needed(limit))
    };
    let free = av1core::os::free_space(&room_dir).unwrap_or(u64::MAX);
    if free >= needed {
        return Ok(());
    }
    // The directory stays in this worker's log; the master hears the numbers.
    tracing::warn!(file = c.job.file_id, "{} has {free} bytes free, {needed} needed", room_dir.display());
    Err(Encoded::NoRoom(format!("{free} bytes free, {needed} needed")))
}

/// The call that ends a job that came to `outcome`.
fn ending(outcome: Encoded, c: &Claimed, paths: &Paths, cancelled: bool) -> JobEnd {
    let id = c.job.file_id;
    match outcome {
        Encoded::Result(result) => JobEnd::Complete(result),
        Encoded::Skip { reason, detail } => JobEnd::Skip { reason, detail },
        // Named as the library knows the file, not as this worker's download.
        Encoded::Failed(error) => JobEnd::Fail {
            error: error.replace(&paths.input.display().to_string(), &c.job.path.display().to_string()),
        },
        Encoded::GiveBack(why) => {
            tracing::warn!(file = id, "{why}; given back");
            JobEnd::Release { detail: why }
        }
        Encoded::NoRoom(why) => {
            let why = format!("no room on {}: {why}", hostname());
            tracing::warn!(file = id, "{why}; given back, left to others for {} s", NO_ROOM_PAUSE.as_secs());
            JobEnd::Release { detail: why }
        }
        Encoded::Stopped if cancelled => JobEnd::Cancelled,
        Encoded::Stopped => JobEnd::Fail { error: "stopped".into() },
    }
}

/// The progress record of a heartbeat.
fn reported(p: Option<&Progress>, size: u64, cpu: Option<f64>, rss: Option<u64>) -> JobProgress {
    JobProgress {
        percent: p.map(|p| p.percent),
        fps: p.map(|p| p.fps),
        frames: p.map(|p| p.frames),
        total_frames: p.map(|p| p.total_frames),
        eta_seconds: p.and_then(|p| p.eta.map(|d| d.as_secs())),
        projected_size: p.and_then(|p| p.projected_size),
        size: Some(size),
        cpu_percent: cpu,
        memory_bytes: rss,
    }
}

/// The call that ends a job, kept on disk until the master has answered it, so a worker
/// restarted in between delivers it then.
#[derive(serde::Serialize, serde::Deserialize)]
struct Delivery {
    file_id: i64,
    call: EndCall,
    /// [`JobEnd::body`]: the ending and the lease.
    body: serde_json::Value,
}

/// Sends `d` until the master answers it (200, or 409 for a lease that is no longer
/// ours), retrying with backoff while it is unreachable; the pending call is written to
/// `state_dir` first and removed once answered.
fn deliver(master: &Master, state_dir: &Path, d: &Delivery) -> u16 {
    let file = state_dir.join(format!("deliver-{}.json", d.file_id));
    let saved = serde_json::to_vec(d).map_err(std::io::Error::other).and_then(|bytes| {
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &file)
    });
    if let Err(e) = saved {
        tracing::warn!("could not keep the pending {} call on disk ({e}); sending it anyway", d.call);
    }
    let id = d.file_id;
    av1_library::pause_point(av1_library::Pause::WorkerDelivering);
    let mut wait = 1u64;
    let answer = loop {
        let call = d.call.as_str();
        match master.post(&urls::end(id, d.call), &d.body) {
            Ok(a) if a.status == 200 => {
                match a.read::<EndReply>() {
                    Ok(r) => tracing::info!(file = id, "{call}: {}", r.status.as_str()),
                    Err(e) => tracing::warn!(file = id, "{call}: {e:#}"),
                }
                break 200;
            }
            Ok(a) if a.status == 409 => {
                tracing::warn!(file = id, "{call}: the lease is no longer ours");
                break 409;
            }
            Ok(a) if ErrorKind::is_final(a.status) => {
                tracing::error!(
                    file = id,
                    "{call}: the master refused it ({} {}); dropped",
                    a.status,
                    a.text
                );
                break a.status;
            }
            Ok(a) => tracing::warn!(file = id, "{call}: {} {}; retrying", a.status, a.text),
            Err(e) => tracing::warn!(file = id, "{call}: {e:#}; retrying",),
        }
        std::thread::sleep(Duration::from_secs(wait));
        wait = (wait * 2).min(30);
    };
    av1_library::pause_point(av1_library::Pause::WorkerDelivered);
    let _ = std::fs::remove_file(&file);
    answer
}

/// Delivers the calls a previous run of this worker could not (it was stopped between
/// finishing a job and the master's answer).
fn deliver_pending(master: &Master, state_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(state_dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("deliver-")) {
            continue;
        }
        match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Delivery>(&b).ok()) {
            Some(d) => {
                tracing::info!(file = d.file_id, "delivering the {} call of an earlier run", d.call.as_str());
                deliver(master, state_dir, &d);
            }
            None => {
                tracing::warn!("unreadable pending call {}: removed", path.display());
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

enum Encoded {
    /// What a `complete` call reports.
    Result(Delivered),
    Skip {
        reason: SkipReason,
        detail: String,
    },
    Failed(String),
    /// A full disk (this worker's, or the library's on shared storage).
    NoRoom(String),
    /// Not this attempt's to do (the source changed since it was handed out).
    GiveBack(String),
    Stopped,
}

fn set_phase(phase: &Mutex<WorkerPhase>, now: WorkerPhase) {
    if let Ok(mut p) = phase.lock() {
        *p = now;
    }
}

/// Downloads the job's source to `to`, resuming what is there, until it has the size
/// and BLAKE3 the master announces. Network cuts are retried while the lease holds.
fn download(
    master: &Master,
    id: i64,
    lease: &str,
    claimed: u64,
    to: &Path,
    stale: &AtomicBool,
) -> anyhow::Result<()> {
    let mut wait = 1u64;
    loop {
        if stale.load(Ordering::SeqCst) {
            bail!("the lease ran out");
        }
        let have = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
        let mut req =
            master.agent.get(format!("{}{}", master.base, urls::source(id))).header("X-Lease", lease);
        if let Some(t) = &master.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if have > 0 {
            req = req.header("Range", format!("bytes={have}-"));
        }
        let attempt = (|| -> anyhow::Result<Option<(u64, String)>> {
            let mut resp = req.call()?;
            let status = resp.status().as_u16();
            if status == ErrorKind::Gone.status() {
                let why = resp.body_mut().read_to_string().unwrap_or_default();
                return Err(SourceChanged(why).into());
            }
            if status == 409 || status == 416 || ErrorKind::is_final(status) {
                bail!(
                    "the master answered {status}: {}",
                    resp.body_mut().read_to_string().unwrap_or_default()
                );
            }
            if status != 200 && status != 206 {
                return Ok(None);
            }
            let header = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let size: u64 = header("X-Size").and_then(|v| v.parse().ok()).context("no X-Size")?;
            // The size the claim announced, and no other: room was checked for it.
            if size != claimed {
                bail!("the master answered a size of {size} bytes for a file claimed with {claimed}");
            }
            let hash = header("X-Blake3").context("no X-Blake3")?;
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(to)?;
            let start = if status == 200 { 0 } else { have };
            if status == 200 && have > 0 {
                file.set_len(0)?;
            }
            // Never more than announced: a master sending on and on cannot fill the disk.
            let rest = size.saturating_sub(start);
            std::io::copy(&mut std::io::Read::take(resp.body_mut().as_reader(), rest), &mut file)?;
            file.sync_all()?;
            Ok(Some((size, hash)))
        })();
        match attempt {
            Ok(Some((size, hash))) => {
                let got = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
                if got == size {
                    let mut hasher = blake3::Hasher::new();
                    hasher.update_reader(std::fs::File::open(to)?)?;
                    if hasher.finalize().to_hex().as_str() == hash {
                        return Ok(());
                    }
                    let _ = std::fs::remove_file(to);
                    tracing::warn!(file = id, "downloaded source does not match its hash; downloading again");
                } else if got > size {
                    let _ = std::fs::remove_file(to);
                }
            }
            Ok(None) => {}
            Err(e)
                if e.to_string().starts_with("the master answered")
                    || full_disk(&e)
                    || e.downcast_ref::<SourceChanged>().is_some() =>
            {
                return Err(e)
            }
            Err(e) => tracing::warn!(file = id, "download cut ({e:#}); resuming"),
        }
        std::thread::sleep(Duration::from_secs(wait));
        wait = (wait * 2).min(30);
    }
}

/// Uploads `from` as the job's result, resuming from what the master already has.
fn upload(master: &Master, id: i64, lease: &str, from: &Path, stale: &AtomicBool) -> anyhow::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let size = std::fs::metadata(from)?.len();
    let mut wait = 1u64;
    loop {
        if stale.load(Ordering::SeqCst) {
            bail!("the lease ran out");
        }
        let attempt = (|| -> anyhow::Result<bool> {
            let mut q =
                master.agent.get(format!("{}{}", master.base, urls::result(id))).header("X-Lease", lease);
            if let Some(t) = &master.token {
                q = q.header("Authorization", format!("Bearer {t}"));
            }
            let mut resp = q.call()?;
            if resp.status().as_u16() == 409 {
                bail!("the master answered 409: the lease is no longer ours");
            }
            let have = serde_json::from_str::<Received>(&resp.body_mut().read_to_string()?)
                .context("an answer the worker cannot read")?
                .received;
            if have == size {
                return Ok(true);
            }
            // One request per chunk (256 MiB; AV1_UPLOAD_CHUNK changes it for tests), so a
            // cut costs at most a chunk.
            let chunk =
                std::env::var("AV1_UPLOAD_CHUNK").ok().and_then(|c| c.parse().ok()).unwrap_or(256u64 << 20);
            let mut file = std::fs::File::open(from)?;
            file.seek(SeekFrom::Start(have))?;
            if have > size {
                bail!("the master says it has {have} bytes of a {size}-byte result: no longer ours to send");
            }
            let mut part = file.take((size - have).min(chunk.max(1)));
            let mut put = master
                .agent
                .put(format!("{}{}", master.base, urls::upload(id, have)))
                .header("X-Lease", lease)
                // The whole result's size: the master makes sure it has room for it.
                .header("X-Result-Size", size.to_string())
                // The body waits for the master's go-ahead: a refusal (no room, a stale
                // lease) comes back as its status instead of a connection reset
                // half-way through sending a chunk the master will not read.
                .header("Expect", "100-continue");
            if let Some(t) = &master.token {
                put = put.header("Authorization", format!("Bearer {t}"));
            }
            let mut r = put.send(ureq::SendBody::from_reader(&mut part))?;
            av1_library::pause_point(av1_library::Pause::WorkerUploadedChunk);
            match r.status().as_u16() {
                200 => Ok(false),
                409 => Ok(false),
                s if s == ErrorKind::DiskFull.status() => {
                    Err(MasterDiskFull(r.body_mut().read_to_string().unwrap_or_default()).into())
                }
                s if ErrorKind::is_final(s) => bail!(
                    "the master refused the upload ({s}: {}): no longer ours to send",
                    r.body_mut().read_to_string().unwrap_or_default()
                ),
                s => bail!("the master answered {s}: {}", r.body_mut().read_to_string().unwrap_or_default()),
            }
        })();
        match attempt {
            Ok(true) => return Ok(()),
            Ok(false) => continue,
            Err(e) if e.to_string().contains("no longer ours") || full_disk(&e) => return Err(e),
            Err(e) => tracing::warn!(file = id, "upload cut ({e:#}); resuming"),
        }
        std::thread::sleep(Duration::from_secs(wait));
        wait = (wait * 2).min(30);
    }
}

fn encode(
    local: &Path,
    staged: &Path,
    c: &Claimed,
    settings: &av1core::Settings,
    rules: &JobSettings,
    progress: &Mutex<Option<Progress>>,
    stop: &AtomicBool,
) -> Encoded {
    let chain = |e: &av1core::Error| av1core::error::chain(e);
    let info = match av1core::probe(local) {
        Ok(i) => i,
        Err(e) => return Encoded::Failed(chain(&e)),
    };
    let mut settings = settings.clone();
    settings.reencode_av1 |= c.reencode;
    let plan = match av1core::plan(&info, &settings) {
        Ok(Decision::Encode(p)) => *p,
        Ok(Decision::Skip { reason, detail }) => return Encoded::Skip { reason, detail },
        Err(e) => return Encoded::Failed(chain(&e)),
    };
    let limit = rules.size_limit(c.job.size);
    let hopeless = AtomicBool::new(false);
    let report = av1core::transcode(local, staged, &plan, stop, |p| {
        if let Ok(mut slot) = progress.lock() {
            *slot = Some(p.clone());
        }
        if p.frames > 0 {
            av1_library::pause_point(av1_library::Pause::WorkerEncoding);
        }
        if rules.hopeless(p, limit) {
            hopeless.store(true, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
        }
    });
    let report = match report {
        Ok(r) => r,
        Err(av1core::Error::Cancelled) if hopeless.load(Ordering::SeqCst) => {
            return Encoded::Skip {
                reason: SkipReason::NotWorthIt,
                detail: format!(
                    "stopped early: the result would not be {}% smaller",
                    rules.min_savings_percent
                ),
            }
        }
        Err(av1core::Error::Cancelled) => return Encoded::Stopped,
        Err(e) if e.is_unwritable_disk() => return Encoded::NoRoom(chain(&e)),
        Err(e) => return Encoded::Failed(chain(&e)),
    };
    if report.output_size > limit {
        let _ = std::fs::remove_file(staged);
        return Encoded::Skip {
            reason: SkipReason::NotWorthIt,
            detail: format!(
                "the result ({} bytes) is not {}% smaller than the original ({} bytes)",
                report.output_size, rules.min_savings_percent, c.job.size
            ),
        };
    }
    let mut hasher = blake3::Hasher::new();
    let hashed = std::fs::File::open(staged).and_then(|f| hasher.update_reader(f).map(|_| ()));
    if let Err(e) = hashed {
        let _ = std::fs::remove_file(staged);
        return Encoded::Failed(format!("hashing the result {}: {e}", staged.display()));
    }
    Encoded::Result(Delivered {
        size: report.output_size,
        blake3: hasher.finalize().to_hex().to_string(),
        frames: report.frames,
        encoder: report.encoder,
        fps: report.fps,
        elapsed: report.elapsed.as_secs_f64(),
        settings: serde_json::from_str(&plan.video.settings_json()).ok(),
    })
}

/// The local path of a master path, by the longest matching `PATH_MAP` prefix. `None`
/// for a path this worker must not open whatever the master says: not absolute, with
/// a `..` or `.` component, or — when `PATH_MAP` is set — under none of its prefixes.
fn map_path(master: &Path, maps: &[(PathBuf, PathBuf)]) -> Option<PathBuf> {
    use std::path::Component;
    let plain = master.is_absolute()
        && master.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !plain {
        return None;
    }
    if maps.is_empty() {
        return Some(master.to_path_buf());
    }
    maps.iter()
        .filter(|(from, _)| master.starts_with(from))
        .max_by_key(|(from, _)| from.as_os_str().len())
        .and_then(|(from, to)| master.strip_prefix(from).ok().map(|rest| to.join(rest)))
}

/// 1, 2, 4 … 30 seconds between attempts to reach the master.
struct Backoff(u32);

impl Backoff {
    fn new() -> Backoff {
        Backoff(0)
    }
    fn reset(&mut self) {
        self.0 = 0;
    }
    fn wait(&mut self, drain: &AtomicBool) {
        let secs = (1u64 << self.0.min(5)).min(30);
        self.0 += 1;
        sleep_unless(drain, Duration::from_secs(secs));
    }
}

fn sleep_unless(drain: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !drain.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `$XDG_STATE_HOME/av1/worker-NAME`, else `~/.local/state/av1/worker-NAME`.
fn default_state_dir(name: &str) -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".local/state")
    });
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .collect();
    state.join(format!("av1/worker-{safe}"))
}

/// One process per worker name: an exclusive lock in its state directory, so two
/// workers on one host must have different names (and directories).
fn lock_state(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("another worker uses {} (give each worker on a host its own WORKER_NAME)", dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

fn memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 =
        meminfo.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU use (percent of one core, averaged since the last sample) and resident memory of
/// this process, from /proc.
struct Usage {
    last: Option<(Instant, f64)>,
}

impl Usage {
    fn new() -> Usage {
        Usage { last: None }
    }

    fn sample(&mut self) -> (Option<f64>, Option<u64>) {
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let cpu_seconds = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(") ")?.1.split(' ').collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        });
        let rss = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|pages| pages * rustix::param::page_size() as u64);
        let now = Instant::now();
        let cpu = match (cpu_seconds, self.last) {
            (Some(c), Some((t, prev))) => {
                let dt = now.duration_since(t).as_secs_f64();
                (dt > 0.0).then(|| 100.0 * (c - prev) / dt)
            }
            _ => None,
        };
        if let Some(c) = cpu_seconds {
            self.last = Some((now, c));
        }
        (cpu, rss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_map_is_a_boundary() {
        let maps = vec![(PathBuf::from("/media"), PathBuf::from("/mnt/nas"))];
        let map = |p: &str| map_path(Path::new(p), &maps);
        assert_eq!(map("/media/Films/a.mkv"), Some(PathBuf::from("/mnt/nas/Films/a.mkv")));
        assert_eq!(map("/etc/shadow"), None, "outside every mapped prefix");
        assert_eq!(map("/media/../etc/shadow"), None);
        assert_eq!(map("/media/./a.mkv"), Some(PathBuf::from("/mnt/nas/a.mkv")), "`.` is dropped by Path");
        assert_eq!(map("media/a.mkv"), None, "relative");
        assert_eq!(map("/mediaX/a.mkv"), None, "a prefix is whole components");
        assert_eq!(map_path(Path::new("/srv/a.mkv"), &[]), Some(PathBuf::from("/srv/a.mkv")));
        assert_eq!(map_path(Path::new("/srv/../a.mkv"), &[]), None);
    }
}
