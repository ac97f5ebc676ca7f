//! The seeded torture run: a master and workers as real processes over a generated
//! library, SIGKILLed again and again at chosen phases (scan, claim, download, encode,
//! upload, delivery, verification, each step of the replacement and its backup) and at
//! random moments, restarted each time, until the queue settles. Then every original
//! must be byte-identical, or replaced by a result that the ffmpeg tools verify with a
//! byte-identical backup (testing mode); nothing of ours may be left in the library or
//! the workers' scratch space; nothing may be running; the database must pass
//! `PRAGMA integrity_check`.
//!
//! `TORTURE_SEED` and `TORTURE_RUNS` (and `TORTURE_FAULTS`, faults per run) choose the
//! plan: the library, the storage mode, the number of workers and every fault (which
//! process, which phase or delay) follow from the seed, so a failing seed can be run
//! again (`make torture SEED=n RUNS=n`); the interleaving of the processes is the
//! machine's. The figures go to `target/tmp/torture/seed-N.json` and the test output.

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use av1_library::names;
use support::*;

/// Where a fault is injected: the process is held at this point and SIGKILLed there.
const MASTER_PHASES: &[&str] = &[
    "scan:recording",
    "master:claimed",
    "master:sending",
    "master:received",
    "master:verifying",
    "replace:recorded",
    "replace:backup",
    "replace:renamed",
    "replace:source-removed",
];
const WORKER_PHASES: &[&str] = &[
    "worker:claimed",
    "worker:downloaded",
    "worker:encoding",
    "worker:uploaded-chunk",
    "worker:delivering",
    "worker:delivered",
];
/// The standalone mode (one process does everything).
const STANDALONE_PHASES: &[&str] = &[
    "scan:recording",
    "job:encoding",
    "replace:recorded",
    "replace:backup",
    "replace:renamed",
    "replace:source-removed",
];
/// Only reached when the workers download sources and upload results.
const DISTRIBUTION_ONLY: &[&str] =
    &["master:sending", "master:received", "worker:downloaded", "worker:uploaded-chunk"];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Shared,
    Distribution,
    Standalone,
}

#[derive(Clone, Debug)]
enum Fault {
    /// Held at this pause point, then killed.
    At(&'static str),
    /// Killed this long after it started, wherever it is.
    After(Duration),
}

#[derive(Default, serde::Serialize)]
struct Figures {
    seed: u64,
    runs: u32,
    runs_by_mode: BTreeMap<String, u32>,
    faults_planned: u32,
    /// SIGKILLs at a pause point, by phase and process.
    killed_at: BTreeMap<String, u32>,
    /// SIGKILLs at a random moment.
    killed_at_random: u32,
    /// Planned phases the run never reached before the queue settled.
    not_reached: BTreeMap<String, u32>,
    restarts: u32,
    files: u32,
    replaced: u32,
    untouched: u32,
    /// Good files the faults made fail (their attempts used up), queued again once the
    /// faults were over.
    retried_after_faults: u32,
    /// Good files that did not end `done` (or skipped as not worth it) even then, with why.
    failed_good: Vec<String>,
    bad_inputs_failed: u32,
    lost: Vec<String>,
    left_over: Vec<String>,
    stuck: Vec<String>,
    integrity: Vec<String>,
    seconds: f64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The sources every run picks from, made once: (name, seconds, width, height).
const POOL: &[(&str, u32, u32, u32)] =
    &[("a.mp4", 2, 160, 120), ("b.mkv", 1, 128, 96), ("c.mov", 1, 96, 64), ("d.mp4", 1, 64, 64)];

fn pool() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("torture-pool");
    if !dir.join(".complete").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, seconds, w, h) in POOL {
            clip_sized(&dir, name, *seconds, *w, *h);
        }
        std::fs::write(dir.join(".complete"), b"").unwrap();
    }
    dir
}

/// One library: the same clips under varied names and folders, plus broken files.
fn make_library(rng: &mut fastrand::Rng, lib: &Path) -> (BTreeMap<PathBuf, String>, BTreeMap<PathBuf, f64>) {
    let pool = pool();
    let names = [
        "Films/Film One.mp4",
        "Films/Ünïcode – Film (2001).mkv",
        "Shows/Season 1/S01E01.mkv",
        "Shows/Season 1/S01E02.mov",
        "Shows/Season 1/S01E03.mp4",
        "Other/clip.MP4",
    ];
    let count = 4 + rng.usize(0..=2);
    let mut durations = BTreeMap::new();
    for name in names.iter().take(count) {
        let ext = Path::new(name).extension().unwrap().to_string_lossy().to_lowercase();
        let candidates: Vec<_> = POOL.iter().filter(|p| p.0.ends_with(&ext)).collect();
        let (src, ..) = candidates[rng.usize(0..candidates.len())];
        let to = lib.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(pool.join(src), &to).unwrap();
        durations.insert(to.clone(), duration(&to).unwrap());
    }
    // Broken files fail (with a reason) and must stay as they are.
    std::fs::create_dir_all(lib.join("Other")).unwrap();
    let mut garbage = vec![0u8; 2048 + rng.usize(0..8192)];
    rng.fill(&mut garbage);
    std::fs::write(lib.join("Other/broken.mkv"), &garbage).unwrap();
    let cut = std::fs::read(pool.join("a.mp4")).unwrap();
    let at = cut.len() / 3 + rng.usize(0..cut.len() / 3);
    std::fs::write(lib.join("Other/cut short.mp4"), &cut[..at]).unwrap();
    (hashes(lib), durations)
}

/// A process of the run, with the faults still planned for it.
struct Slot {
    name: String,
    proc: Option<Proc>,
    armed: Option<Fault>,
    plan: VecDeque<Fault>,
}

struct Run<'a> {
    dir: &'a Path,
    lib: PathBuf,
    db: PathBuf,
    port: u16,
    mode: Mode,
    quiet: bool,
}

impl Run<'_> {
    fn standalone_command(&self) -> std::process::Command {
        let mut c = std::process::Command::new(worker_bin());
        c.env("SVT_LOG", "1").env("RUST_LOG", "info").env("TESTING_MODE", "true");
        for k in ["AV1_PAUSE_AT", "AV1_PAUSE_SECONDS", "MEDIA_DIRS", "TEMP_DIR"] {
            c.env_remove(k);
        }
        c.args(["transcode", "--preset", "12", "--crf", "40", "--db"]).arg(&self.db).arg(&self.lib);
        c
    }

    fn start(&self, slot: &mut Slot, figures: &mut Figures) {
        let fault = slot.plan.pop_front();
        let mut c = if slot.name == "standalone" {
            self.standalone_command()
        } else if slot.name == "master" {
            master_command(&self.lib, &self.db, self.port)
        } else {
            let url = format!("http://127.0.0.1:{}", self.port);
            let mode = if self.mode == Mode::Distribution { "true" } else { "false" };
            worker_command(&url, &slot.name, self.dir, &[("FILE_DISTRIBUTION_MODE", mode)])
        };
        if let Some(Fault::At(phase)) = &fault {
            c.env("AV1_PAUSE_AT", phase);
        }
        if slot.proc.is_some() {
            figures.restarts += 1;
        }
        slot.proc = Some(Proc::spawn_quiet(c, self.quiet));
        slot.armed = fault;
    }
}

fn plan_faults(rng: &mut fastrand::Rng, count: u32, mode: Mode, workers: usize) -> Vec<(usize, Fault)> {
    let usable = |p: &&&str| mode == Mode::Distribution || !DISTRIBUTION_ONLY.contains(p);
    let master_phases = if mode == Mode::Standalone { STANDALONE_PHASES } else { MASTER_PHASES };
    let mut master: Vec<&'static str> = master_phases.iter().filter(usable).copied().collect();
    let mut worker: Vec<&'static str> = WORKER_PHASES.iter().filter(usable).copied().collect();
    rng.shuffle(&mut master);
    rng.shuffle(&mut worker);
    (0..count as usize)
        .map(|k| {
            // Slot 0 is the master (or the standalone process), 1.. the workers.
            let slot = if workers == 0 || rng.bool() { 0 } else { 1 + rng.usize(0..workers) };
            let fault = if rng.u8(0..4) == 0 {
                Fault::After(Duration::from_millis(rng.u64(200..4000)))
            } else if slot == 0 {
                Fault::At(master[k % master.len()])
            } else {
                Fault::At(worker[k % worker.len()])
            };
            (slot, fault)
        })
        .collect()
}

fn torture_run(seed: u64, run: u32, faults: u32, quiet: bool, figures: &mut Figures) {
    let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(1_000_003).wrapping_add(run as u64));
    let d = tempfile::tempdir().unwrap();
    let lib = d.path().join("lib");
    let (originals, durations) = make_library(&mut rng, &lib);
    let mode = [Mode::Shared, Mode::Distribution, Mode::Standalone][rng.usize(0..3)];
    let workers = if mode == Mode::Standalone { 0 } else { 1 + rng.usize(0..2) };
    let plan = plan_faults(&mut rng, faults, mode, workers);
    eprintln!(
        "torture seed {seed} run {run}: {} files, {mode:?}, {workers} worker(s), faults {plan:?}",
        originals.len()
    );
    *figures.runs_by_mode.entry(format!("{mode:?}")).or_default() += 1;
    figures.faults_planned += faults;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = Run { dir: d.path(), lib: lib.clone(), db: d.path().join("master.sqlite"), port, mode, quiet };
    let first = if mode == Mode::Standalone { "standalone" } else { "master" };
    let mut slots: Vec<Slot> = std::iter::once(first.to_owned())
        .chain((0..workers).map(|k| format!("w{k}")))
        .map(|name| Slot { name, proc: None, armed: None, plan: VecDeque::new() })
        .collect();
    for (slot, fault) in plan {
        slots[slot].plan.push_back(fault);
    }
    for slot in &mut slots {
        r.start(slot, figures);
    }
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let mut settled_since: Option<Instant> = None;
    loop {
        for slot in &mut slots {
            let p = slot.proc.as_mut().unwrap();
            let hit = match &slot.armed {
                Some(Fault::At(phase)) => p.saw(&format!("paused at {phase}")),
                Some(Fault::After(t)) => p.started.elapsed() >= *t,
                None => {
                    p.saw("");
                    false
                }
            };
            // A process that ended by itself is a defect unless we stopped it (the
            // standalone mode ends when it has done what it could: 0, or 1 when a file
            // failed; it is started again while files are pending).
            if let Ok(Some(status)) = p.child.try_wait() {
                let expected = slot.name == "standalone" && matches!(status.code(), Some(0 | 1));
                assert!(expected, "seed {seed} run {run}: {} exited by itself ({status})", slot.name);
                if !hit && !queue_settled(&r.db) {
                    r.start(slot, figures);
                    continue;
                }
            }
            if hit {
                p.kill();
                match &slot.armed {
                    Some(Fault::At(phase)) => {
                        *figures.killed_at.entry(format!("{} at {phase}", kind(&slot.name))).or_default() += 1
                    }
                    _ => figures.killed_at_random += 1,
                }
                r.start(slot, figures);
            }
        }
        let settled = if mode == Mode::Standalone {
            let p = slots[0].proc.as_mut().unwrap();
            matches!(p.child.try_wait(), Ok(Some(_))) && queue_settled(&r.db)
        } else {
            try_stats(&url).is_some_and(|s| s["pending"] == 0 && s["running"] == 0 && s["total"] != 0)
        };
        settled_since = if settled { settled_since.or(Some(Instant::now())) } else { None };
        // Settled for a while (a worker may still hold a result to deliver): the faults
        // not reached by now never will be.
        let quiet_for = if mode == Mode::Standalone { Duration::ZERO } else { Duration::from_secs(3) };
        if settled_since.is_some_and(|t| t.elapsed() >= quiet_for) {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            figures.stuck.push(format!("seed {seed} run {run}: not settled in 300 s"));
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    // The faults are over (every planned one fired or can no longer): good files whose
    // attempts they used up are queued again, as a user would, and must now finish.
    let failed_good = failed_good_files(&r.db, &durations);
    if !failed_good.is_empty() && !figures.stuck.iter().any(|s| s.contains(&format!("run {run}:"))) {
        figures.retried_after_faults += failed_good.len() as u32;
        for slot in &mut slots {
            slot.armed = None;
            slot.plan.clear();
        }
        if mode == Mode::Standalone {
            let mut c = r.standalone_command();
            c.arg("--retry");
            slots[0].proc = Some(Proc::spawn_quiet(c, quiet));
            let p = slots[0].proc.as_mut().unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !matches!(p.child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        } else {
            for id in &failed_good {
                let (status, reply) = call(&url, "POST", &format!("/api/v1/files/{id}/retry"), None);
                assert_eq!(status, 200, "seed {seed} run {run}: retry {id}: {reply}");
            }
            let deadline = Instant::now() + Duration::from_secs(120);
            while !try_stats(&url).is_some_and(|s| s["pending"] == 0 && s["running"] == 0)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_secs(3)); // a worker may still deliver
        }
    }
    for slot in &mut slots {
        let armed = slot.armed.take().into_iter().chain(slot.plan.drain(..));
        for f in armed {
            if let Fault::At(phase) = f {
                *figures.not_reached.entry(format!("{} at {phase}", kind(&slot.name))).or_default() += 1;
            }
        }
        // Workers first, then the master: a clean stop, nothing left to interrupt.
        if let Some(p) = slot.proc.as_mut().filter(|_| slot.name.starts_with('w')) {
            p.stop(Duration::from_secs(10));
        }
    }
    slots[0].proc.as_mut().unwrap().stop(Duration::from_secs(10));
    check(seed, run, &r, &originals, &durations, workers, figures);
}

fn kind(slot: &str) -> &'static str {
    match slot {
        "master" => "master",
        "standalone" => "standalone",
        _ => "worker",
    }
}

/// Ids of the good files (those with a duration) that ended `failed`.
fn failed_good_files(db: &Path, durations: &BTreeMap<PathBuf, f64>) -> Vec<i64> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare("SELECT id, path FROM files WHERE status = 'failed'").unwrap();
    st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, path)| durations.contains_key(Path::new(path)))
        .map(|(id, _)| id)
        .collect()
}

/// Nothing pending or running in the queue (and something was recorded).
fn queue_settled(db: &Path) -> bool {
    let Ok(c) = rusqlite::Connection::open(db) else { return false };
    let counts: Result<(i64, i64), _> = c.query_row(
        "SELECT count(*), coalesce(sum(status IN ('pending', 'running')), 0) FROM files",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    );
    matches!(counts, Ok((total, 0)) if total > 0)
}

fn check(
    seed: u64,
    run: u32,
    r: &Run,
    originals: &BTreeMap<PathBuf, String>,
    durations: &BTreeMap<PathBuf, f64>,
    workers: usize,
    figures: &mut Figures,
) {
    let tag = format!("seed {seed} run {run}");
    let db = rusqlite::Connection::open(&r.db).unwrap();
    let ok: String = db.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
    if ok != "ok" {
        figures.integrity.push(format!("{tag}: {ok}"));
    }
    let mut rows = db
        .prepare("SELECT path, status, coalesce(reason, '') || ' ' || coalesce(detail, ''), original_path, lease_id FROM files")
        .unwrap()
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, Option<String>>(4)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>();
    rows.sort();
    let status_of = |p: &Path| {
        rows.iter()
            .find(|(path, _, _, original, _)| {
                Path::new(path) == p || original.as_deref().is_some_and(|o| Path::new(o) == p)
            })
            .map(|(_, s, detail, ..)| (s.clone(), detail.clone()))
    };
    for (path, status, detail, _, lease) in &rows {
        if status == "running" || status == "pending" || lease.is_some() {
            figures.stuck.push(format!("{tag}: {path} is {status} (lease {lease:?}): {detail}"));
        }
    }
    let mut expected: Vec<PathBuf> = Vec::new();
    for (path, want) in originals {
        figures.files += 1;
        let good = durations.contains_key(path);
        let status = status_of(path);
        let target = names::target_for(path);
        let backup = names::backup_for(path);
        let now = path.exists().then(|| hash(path));
        if now.as_deref() == Some(want.as_str()) {
            figures.untouched += 1;
            expected.push(path.clone());
            match (&status, good) {
                (Some((s, _)), _) if s == "done" => figures
                    .lost
                    .push(format!("{tag}: {} is done but the original is still there", path.display())),
                (Some((s, _)), false) if s == "failed" => figures.bad_inputs_failed += 1,
                // A good file left as it was must have been judged not worth replacing.
                (Some((s, detail)), true) if !(s == "skipped" && detail.starts_with("not_worth_it")) => {
                    figures.failed_good.push(format!("{tag}: {} ended {s}: {detail}", path.display()))
                }
                (None, true) => {
                    figures.failed_good.push(format!("{tag}: {} is not in the queue", path.display()))
                }
                _ => {}
            }
            if target != *path && target.exists() {
                figures.left_over.push(format!("{tag}: {} exists beside its original", target.display()));
            }
            continue;
        }
        // Replaced: a verified result and a byte-identical backup.
        let verdict = check_av1(&target, durations.get(path).copied());
        let backed_up = backup.exists().then(|| hash(&backup));
        match (verdict, backed_up) {
            (Ok(()), Some(b)) if b == *want && status.as_ref().is_some_and(|s| s.0 == "done") => {
                figures.replaced += 1;
                expected.push(target.clone());
                expected.push(backup.clone());
            }
            (verdict, b) => figures.lost.push(format!(
                "{tag}: {} is gone or changed: result {verdict:?}, backup {}, status {status:?}",
                path.display(),
                match b {
                    Some(b) if b == *want => "identical",
                    Some(_) => "DIFFERENT",
                    None => "missing",
                }
            )),
        }
    }
    for found in hashes(&r.lib).keys() {
        if !expected.contains(found) {
            figures.left_over.push(format!("{tag}: {} was left in the library", found.display()));
        }
    }
    for w in 0..workers {
        // A worker that never downloaded (shared storage, or no job) has no work folder.
        let work = r.dir.join(format!("worker-w{w}/work"));
        for e in std::fs::read_dir(&work).into_iter().flatten().flatten() {
            figures.left_over.push(format!("{tag}: {} was left in a worker's work dir", e.path().display()));
        }
    }
}

#[test]
fn torture() {
    let seed = env_u64("TORTURE_SEED", 1);
    let runs = env_u64("TORTURE_RUNS", 2) as u32;
    let faults = env_u64("TORTURE_FAULTS", 6) as u32;
    let quiet = runs > 2;
    let mut figures = Figures { seed, runs, ..Figures::default() };
    let start = Instant::now();
    for run in 0..runs {
        torture_run(seed, run, faults, quiet, &mut figures);
    }
    figures.seconds = start.elapsed().as_secs_f64();
    let report = serde_json::to_string_pretty(&figures).unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("torture");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(format!("seed-{seed}.json")), &report).unwrap();
    eprintln!("{report}");
    assert!(figures.lost.is_empty(), "files lost or damaged: {:#?}", figures.lost);
    assert!(figures.left_over.is_empty(), "files left behind: {:#?}", figures.left_over);
    assert!(figures.stuck.is_empty(), "stuck jobs: {:#?}", figures.stuck);
    assert!(figures.integrity.is_empty(), "database damaged: {:#?}", figures.integrity);
    assert!(figures.failed_good.is_empty(), "good files not done: {:#?}", figures.failed_good);
    assert!(figures.replaced > 0, "no file was replaced");
    assert!(figures.killed_at.values().sum::<u32>() + figures.killed_at_random > 0, "no fault was injected");
}
