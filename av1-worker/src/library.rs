//! The standalone library mode: `av1-worker transcode DIR|FILE ...`.
//!
//! start-up: lock the queue, finish or undo interrupted replacements, requeue files
//! left running, clean the temp dir ─▶ scan (incremental, parallel probes), remove
//! orphaned temporary files ─▶ take files one by one: transcode, verify, apply the
//! savings rule, replace ─▶ summary, exit code. Re-running resumes where it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context as _};
use av1_library::job::{self, JobSettings, Stop};
use av1_library::queue::{Counts, FileOrder, Outcome, Queue, Status, Verdict};
use av1_library::{replace, scan};
use av1core::SkipReason;
use serde::Serialize;

use crate::progress::{bytes, LibraryBars};
use crate::TranscodeArgs;

/// Settings of the library mode.
#[derive(clap::Args)]
pub struct LibraryArgs {
    /// Queue database (SQLite) [default: $XDG_STATE_HOME/av1/queue.sqlite].
    #[arg(long, env = "AV1_DB")]
    db: Option<PathBuf>,
    /// Keep each original as NAME.bak beside its result.
    #[arg(long, env = "TESTING_MODE", value_parser = clap::builder::BoolishValueParser::new())]
    testing_mode: bool,
    /// A result replaces its original only when at least this many percent smaller.
    #[arg(long, env = "MIN_SAVINGS_PERCENT", default_value_t = 5.0, value_parser = av1_library::job::savings_percent)]
    min_savings: f64,
    /// Which pending file comes first: oldest, newest, largest, smallest.
    #[arg(long, env = "FILE_ORDER", default_value = "oldest")]
    file_order: FileOrder,
    /// Encode here (a fast local disk) and copy results beside the originals; by
    /// default results are written beside the originals directly.
    #[arg(long, env = "TEMP_DIR")]
    temp_dir: Option<PathBuf>,
    /// CPU priority, 0 (normal) to 19 (lowest).
    #[arg(long = "nice", env = "NICE_LEVEL", default_value_t = 19)]
    nice_level: i32,
    /// I/O priority class: 1 realtime, 2 best effort, 3 idle.
    #[arg(long = "ionice", env = "IONICE_CLASS", default_value_t = 3)]
    ionice_class: u8,
    /// Owner of the results (default: the original's).
    #[arg(long, env = "PUID", requires = "pgid")]
    puid: Option<u32>,
    /// Group of the results (default: the original's).
    #[arg(long, env = "PGID", requires = "puid")]
    pgid: Option<u32>,
    /// Print what would be done with each file, as a table, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Queue failed and cancelled files again.
    #[arg(long)]
    retry: bool,
    /// Encode again the files already done (and AV1 sources), keeping the first backup.
    #[arg(long)]
    reencode: bool,
    /// Files probed at the same time while scanning (0 = one per core, at most 4).
    #[arg(long, default_value_t = 0)]
    probe_threads: usize,
}

/// What a run did and where the library stands, printed at the end.
#[derive(Debug, Default, Serialize)]
struct Summary {
    elapsed_seconds: f64,
    scan: scan::ScanReport,
    recovered_replacements: usize,
    /// Outcomes of the files worked on in this run.
    done: usize,
    skipped: BTreeMap<String, usize>,
    failed: Vec<(PathBuf, String)>,
    left_pending: usize,
    bytes_before: u64,
    bytes_after: u64,
    interrupted: bool,
    /// The queue under these roots after the run.
    library: Counts,
}

pub fn run(args: &TranscodeArgs) -> anyhow::Result<ExitCode> {
    let la = &args.library;
    let started = Instant::now();
    let mut settings = args.encoder.settings()?;
    if la.reencode {
        settings.reencode_av1 = true;
    }
    let order = la.file_order;
    let roots = scan::canonical_roots(&args.paths)?;
    let probe_threads = match la.probe_threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()).min(4),
        n => n,
    };
    if la.dry_run {
        return dry_run(&roots, &settings, probe_threads);
    }
    // Before any thread: every thread started later inherits the priority.
    av1core::os::set_priority(la.nice_level, la.ionice_class)?;

    let db = la.db.clone().unwrap_or_else(default_db);
    let _lock = lock(&db)?;
    let _root_locks = lock_roots(&roots)?;
    let mut queue = Queue::open(&db).with_context(|| format!("opening the queue {}", db.display()))?;
    let mut summary = Summary { recovered_replacements: recover(&mut queue)?, ..Summary::default() };
    let temp_dir = own_temp_dir(la, &db)?;
    summary.scan = scan_library(&mut queue, &roots, &settings, probe_threads)?;
    after_scan(&mut queue, la, &summary.scan)?;
    let cfg = JobSettings {
        settings,
        min_savings_percent: la.min_savings,
        replace: replace::Options { testing_mode: la.testing_mode, owner: la.puid.zip(la.pgid) },
        temp_dir,
        ..JobSettings::default()
    };
    work_through(&mut queue, &roots, &cfg, order, &mut summary)?;
    summary.library = queue.counts(&roots)?;
    summary.left_pending = summary.library.pending as usize;
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    print_summary(&summary, &queue, &roots)?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(if summary.interrupted {
        ExitCode::from(crate::single::EXIT_INTERRUPTED)
    } else if summary.library.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Finishes or undoes the replacements a crash interrupted, and queues again what an
/// earlier run left running; how many replacements there were.
fn recover(queue: &mut Queue) -> anyhow::Result<usize> {
    let recovered = replace::recover(queue)?;
    for r in &recovered {
        match r {
            replace::Recovered::Finished(d) => {
                tracing::info!("finished an interrupted replacement: {}", d.path.display())
            }
            replace::Recovered::RolledBack { source, why } => {
                tracing::warn!("undid an interrupted replacement of {}: {why}", source.display())
            }
        }
    }
    let requeued = queue.requeue_running("interrupted by the end of an earlier run")?;
    if requeued > 0 {
        tracing::info!("{requeued} file(s) interrupted by an earlier run are queued again");
    }
    Ok(recovered.len())
}

/// Our own directory inside TEMP_DIR (one per queue), so that runs sharing TEMP_DIR
/// never touch each other's files; emptied of what an earlier run left.
fn own_temp_dir(la: &LibraryArgs, db: &Path) -> anyhow::Result<Option<PathBuf>> {
    let Some(t) = &la.temp_dir else { return Ok(None) };
    let canonical = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let id = blake3::hash(canonical.as_os_str().as_encoded_bytes()).to_hex();
    let dir = t.join(format!("av1-standalone-{}", &id[..12]));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating the temp dir {}", dir.display()))?;
    let n = job::clean_temp_dir(&dir)?;
    if n > 0 {
        tracing::info!("removed {n} leftover temporary file(s) from {}", dir.display());
    }
    Ok(Some(dir))
}

/// After the scan: our orphaned temporary files removed, problems said, and what
/// `--retry` and `--reencode` ask queued again.
fn after_scan(queue: &mut Queue, la: &LibraryArgs, scan: &scan::ScanReport) -> anyhow::Result<()> {
    // Nothing else works on this queue (it is locked) and no replacement is pending
    // any more: every temporary file of ours in the library is an orphan.
    for orphan in &scan.ours {
        match std::fs::remove_file(orphan) {
            Ok(()) => tracing::info!("removed an orphaned temporary file: {}", orphan.display()),
            Err(e) => tracing::warn!("could not remove {}: {e}", orphan.display()),
        }
    }
    for p in &scan.problems {
        tracing::warn!("{p}");
    }
    if la.retry {
        let n = queue.requeue(Status::Failed, &[])? + queue.requeue(Status::Cancelled, &[])?;
        tracing::info!("{n} failed or cancelled file(s) queued again");
    }
    if la.reencode {
        let n =
            queue.requeue(Status::Done, &[])? + queue.requeue(Status::Skipped, &[SkipReason::AlreadyAv1])?;
        tracing::info!("{n} file(s) queued to be encoded again");
    }
    Ok(())
}

/// The job loop: claims, runs and records jobs until the queue is empty or a stop is
/// asked; what came of them goes into `summary`.
fn work_through(
    queue: &mut Queue,
    roots: &[PathBuf],
    cfg: &JobSettings,
    order: FileOrder,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let control = crate::signals::install("abandoning the current file; it stays queued");
    let before = queue.counts(roots)?;
    let mut bars = LibraryBars::new(before.pending as usize, before.pending_bytes);
    let mut deferred = Vec::new();
    loop {
        if control.requested() == Some(Stop::Shutdown) {
            summary.interrupted = true;
            break;
        }
        let Some(job) = queue.claim_next("standalone", order, &deferred, roots)? else { break };
        bars.start(&job);
        let outcome = job::run(queue, &job, cfg, &control, |phase| bars.phase(phase))?;
        bars.end(&job, &outcome);
        if let Some(dir) = &cfg.temp_dir {
            job::clean_temp_dir(dir)?;
        }
        match outcome {
            Outcome::Done(d) => {
                summary.done += 1;
                summary.bytes_before += d.original_size;
                summary.bytes_after += d.size;
            }
            Outcome::Skipped { reason, .. } => {
                *summary.skipped.entry(reason.as_str().to_owned()).or_default() += 1
            }
            Outcome::Failed { error } => summary.failed.push((job.path.clone(), error)),
            Outcome::Requeued { .. } => deferred.push(job.file_id),
            Outcome::Cancelled { .. } => {}
        }
    }
    bars.finish();
    Ok(())
}

/// An exclusive lock on every library root (the directory itself, nothing written in it)
/// for the whole run: two runs with different queues cannot work on one library.
fn lock_roots(roots: &[PathBuf]) -> anyhow::Result<Vec<std::fs::File>> {
    roots
        .iter()
        .map(|root| {
            let dir = if root.is_dir() { root.as_path() } else { av1core::os::parent(root) };
            let f = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
            match f.try_lock() {
                Ok(()) => Ok(f),
                Err(std::fs::TryLockError::WouldBlock) => {
                    bail!("another run is working on {} (its directory is locked)", dir.display())
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    Err(e).with_context(|| format!("locking {}", dir.display()))
                }
            }
        })
        .collect()
}

/// `$XDG_STATE_HOME/av1/queue.sqlite`, else `~/.local/state/av1/queue.sqlite`.
fn default_db() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".local/state")
    });
    state.join("av1/queue.sqlite")
}

/// One run per queue: an exclusive lock on `QUEUE.lock`, held until exit (the
/// kernel releases it when the process dies, however it dies).
fn lock(db: &Path) -> anyhow::Result<std::fs::File> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let path = db.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("another run is using the queue {} (lock {} is held)", db.display(), path.display())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

fn scan_library(
    queue: &mut Queue,
    roots: &[PathBuf],
    settings: &av1core::Settings,
    threads: usize,
) -> anyhow::Result<scan::ScanReport> {
    let spinner = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_style(
            indicatif::ProgressStyle::with_template("{spinner} scanning: {pos} file(s) probed  {msg}")
                .expect("static"),
        );
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    });
    let report = scan::scan(queue, roots, settings, threads, &|e| {
        if let Some(s) = &spinner {
            s.inc(1);
            s.set_message(e.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        }
    })?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    tracing::info!(
        "scan: {} video file(s), {} new, {} changed, {} unchanged (not probed again), {} gone from the queue, {} unreadable",
        report.found,
        report.new,
        report.changed,
        report.unchanged,
        report.pruned,
        report.unreadable
    );
    Ok(report)
}

fn print_summary(s: &Summary, queue: &Queue, roots: &[PathBuf]) -> anyhow::Result<()> {
    let l = &s.library;
    let saved = s.bytes_before.saturating_sub(s.bytes_after);
    let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    eprintln!();
    eprintln!("Summary ({:.0} s{})", s.elapsed_seconds, if s.interrupted { ", interrupted" } else { "" });
    eprintln!(
        "  this run: {} done ({} -> {}, saved {} = {:.1}%), {} skipped, {} failed",
        s.done,
        bytes(s.bytes_before),
        bytes(s.bytes_after),
        bytes(saved),
        pct(saved, s.bytes_before),
        s.skipped.values().sum::<usize>(),
        s.failed.len()
    );
    eprintln!(
        "  library:  {} files: {} done, {} skipped, {} failed, {} pending, {} cancelled",
        l.total, l.done, l.skipped, l.failed, l.pending, l.cancelled
    );
    if !l.skipped_by_reason.is_empty() {
        let reasons: Vec<String> =
            l.skipped_by_reason.iter().map(|(r, n)| format!("{} {n}", r.replace('_', " "))).collect();
        eprintln!("            skipped: {}", reasons.join(", "));
    }
    let lib_saved = l.original_bytes.saturating_sub(l.output_bytes);
    eprintln!(
        "            saved so far: {} of {} ({:.1}%)",
        bytes(lib_saved),
        bytes(l.original_bytes),
        pct(lib_saved, l.original_bytes)
    );
    let failed = queue.list(Some(Status::Failed))?;
    let failed: Vec<_> = failed.iter().filter(|f| roots.iter().any(|r| f.path.starts_with(r))).collect();
    if !failed.is_empty() {
        eprintln!("  failed:");
        for f in failed {
            eprintln!("    {}: {}", f.path.display(), f.detail.as_deref().unwrap_or("?"));
        }
    }
    if s.left_pending > 0 {
        eprintln!("  {} file(s) still pending: run the same command again to continue", s.left_pending);
    }
    Ok(())
}

/// `--dry-run`: probe and plan every file, print a table, touch nothing.
fn dry_run(roots: &[PathBuf], settings: &av1core::Settings, threads: usize) -> anyhow::Result<ExitCode> {
    let walk = scan::walk(roots);
    let examined = scan::examine_all(&walk.videos, settings, threads, &|_| {})?;
    println!(
        "{:<48} {:<10} {:>10} {:<12} {:>3}  {:<40} action",
        "file", "codec", "resolution", "HDR", "CRF", "audio"
    );
    let mut rows: Vec<_> = examined.iter().collect();
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    for e in rows {
        let s = &e.summary;
        let name = e
            .path
            .strip_prefix(roots.iter().find(|r| e.path.starts_with(r)).map_or(Path::new(""), |r| r))
            .unwrap_or(&e.path)
            .display()
            .to_string();
        let name = if name.is_empty() { e.path.display().to_string() } else { name };
        let action = match &e.verdict {
            Verdict::Encode => "encode".to_owned(),
            Verdict::Skip { reason, detail } => format!("skip ({}): {detail}", reason.as_str()),
            Verdict::Unreadable { error } => format!("fail: {error}"),
        };
        println!(
            "{:<48} {:<10} {:>10} {:<12} {:>3}  {:<40} {action}",
            name,
            s.video_codec.as_deref().unwrap_or("-"),
            s.width.zip(s.height).map_or("-".into(), |(w, h)| format!("{w}x{h}")),
            s.hdr.as_deref().unwrap_or("-"),
            s.crf.map_or("-".into(), |c| c.to_string()),
            s.audio.as_deref().unwrap_or("-"),
        );
    }
    for p in &walk.problems {
        eprintln!("warning: {p}");
    }
    eprintln!("{} file(s); nothing was changed (dry run)", examined.len());
    Ok(ExitCode::SUCCESS)
}
