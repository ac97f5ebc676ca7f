//! One job, from a claimed queue file to its recorded outcome: probe and plan again
//! (the file may have changed since the scan), check names and free space, transcode
//! to a hidden file in the target directory (or in the temp dir), stop early when the
//! result cannot be worth it, apply the savings rule, and replace.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::names;
use super::queue::{Job, Outcome, Queue};
use super::replace::{self, EncodeFacts};
use super::staged::Staged;
use crate::error::{chain, Error, Result};
use av1core::os::{self, Stamp};
use av1core::plan::{Decision, Settings, SkipReason};
use av1core::transcode::Progress;

/// Everything a job needs besides the file.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub settings: Settings,
    /// A result replaces the original only when at least this much smaller (percent).
    pub min_savings_percent: f64,
    pub replace: replace::Options,
    /// Encode here (a fast local disk) and copy the result beside the original after;
    /// `None` encodes beside the original directly.
    pub temp_dir: Option<PathBuf>,
    /// Percent of the frames after which a projected size over the limit stops the encode.
    pub early_stop_after_percent: f64,
    /// How far over the limit the projection must be to stop (1.10 = 10 % over).
    pub early_stop_margin: f64,
}

impl Default for JobSettings {
    fn default() -> JobSettings {
        JobSettings {
            settings: Settings::default(),
            min_savings_percent: 5.0,
            replace: replace::Options::default(),
            temp_dir: None,
            early_stop_after_percent: 20.0,
            early_stop_margin: 1.10,
        }
    }
}

impl JobSettings {
    /// Whether an encode heading for `p.projected_size` cannot meet `limit`: past the
    /// warm-up, projected clearly over the limit, and not so close to the end that
    /// the exact size is as near as the projection.
    pub fn hopeless(&self, p: &Progress, limit: u64) -> bool {
        // Already past the limit: nothing to project (and the space reserved for the
        // result is used up).
        p.bytes_written > limit
            || p.projected_size.is_some_and(|projected| {
                p.percent >= self.early_stop_after_percent
                    && p.percent < 90.0
                    && projected as f64 > limit as f64 * self.early_stop_margin
            })
    }

    /// The largest result (bytes) that replaces an original of `size` bytes.
    pub fn size_limit(&self, size: u64) -> u64 {
        size_limit(size, self.min_savings_percent)
    }
}

/// The 5% rule, in one place for the standalone mode, the workers and the master: the
/// largest result (bytes) that may replace an original of `size` bytes.
/// `MIN_SAVINGS_PERCENT` as every program reads it: a number from 0 up to (not
/// including) 100.
pub fn savings_percent(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..100.0).contains(&p) => Ok(p),
        _ => Err(format!("a percentage from 0 to below 100, not {s:?}")),
    }
}

pub fn size_limit(size: u64, min_savings_percent: f64) -> u64 {
    (size as f64 * (1.0 - min_savings_percent / 100.0)).floor() as u64
}

/// Why a job is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stop {
    /// The program is shutting down: the file goes back to `pending`.
    Shutdown = 1,
    /// A person cancelled it: `cancelled`.
    Cancel = 2,
}

/// A stop request shared between a job and whoever controls it (signal handler, API).
#[derive(Debug, Default)]
pub struct Control(AtomicU8);

impl Control {
    pub const fn new() -> Control {
        Control(AtomicU8::new(0))
    }

    /// Asks the running job to stop; the first reason given wins.
    pub fn request(&self, stop: Stop) {
        let _ = self.0.compare_exchange(0, stop as u8, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn requested(&self) -> Option<Stop> {
        match self.0.load(Ordering::SeqCst) {
            1 => Some(Stop::Shutdown),
            2 => Some(Stop::Cancel),
            _ => None,
        }
    }

    /// Clears a `Cancel` (it concerned one job); a shutdown stays.
    pub fn clear_cancel(&self) {
        let _ = self.0.compare_exchange(Stop::Cancel as u8, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// What a job reports while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase<'a> {
    Probing,
    Encoding(&'a Progress),
    Replacing,
}

/// Works on `job` and records its outcome in `queue`. Errors only when the queue
/// itself fails; everything about the file ends in the returned outcome.
pub fn run(
    queue: &mut Queue,
    job: &Job,
    cfg: &JobSettings,
    control: &Control,
    mut on_phase: impl FnMut(Phase<'_>),
) -> Result<Outcome> {
    on_phase(Phase::Probing);
    let outcome = match work(queue, job, cfg, control, &mut on_phase) {
        Ok(o) => o,
        Err(e) if e.is_cancelled() => match control.requested() {
            Some(Stop::Cancel) => Outcome::Cancelled { detail: "cancelled".into() },
            _ => Outcome::Requeued { detail: "interrupted; will start again".into() },
        },
        Err(e @ Error::Database { .. }) => return Err(e),
        // Not the file's fault: it waits for another turn (the caller skips it for the
        // rest of the run).
        Err(e) if e.is_unwritable_disk() => Outcome::Requeued { detail: chain(&e) },
        Err(e @ Error::SourceChanged { .. }) if job.path.exists() => Outcome::Requeued { detail: chain(&e) },
        Err(e) => Outcome::Failed { error: chain(&e) },
    };
    if !matches!(outcome, Outcome::Done(_)) {
        queue.finish(job, &outcome)?;
    }
    Ok(outcome)
}

fn work(
    queue: &mut Queue,
    job: &Job,
    cfg: &JobSettings,
    control: &Control,
    on_phase: &mut dyn FnMut(Phase<'_>),
) -> Result<Outcome> {
    let source = job.path.as_path();
    // Opened once beneath its library root (no link on the way, a regular file), and
    // read through that descriptor from here on.
    let original = open_source(job)?;
    let before = Stamp::from_metadata(&original.metadata().map_err(Error::io("reading metadata", source))?);
    let input = os::fd_path(&original);
    let names = [(input.as_path(), source)];
    let mut info = av1core::probe(&input).map_err(|e| e.naming(&names))?;
    info.path = source.to_path_buf();
    let plan = match av1core::plan(&info, &cfg.settings)? {
        Decision::Skip { reason, detail } => return Ok(Outcome::Skipped { reason, detail }),
        Decision::Encode(plan) => *plan,
    };
    let target = replace::target_of(source);
    if target != source && std::fs::symlink_metadata(&target).is_ok() {
        return Err(Error::NameClash { target, source_file: source.into() });
    }
    let staged = names::staged_for(&target);
    // Ours by name; a stale one (or a symlink planted there) must not be written through.
    let _ = std::fs::remove_file(&staged);
    let library_dir = os::parent(source);
    // The result is kept only when smaller than the limit; the encode stops early
    // when it heads past it, so that is the most it may need.
    let needed = space_needed(cfg.size_limit(before.size));
    check_space(library_dir, needed)?;
    let encoded = match &cfg.temp_dir {
        Some(dir) => {
            check_space(dir, needed)?;
            let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            dir.join(format!(".{}-{name}{}", job.file_id, names::STAGED_SUFFIX))
        }
        None => staged.clone(),
    };
    let _cleanup = RemoveOnDrop(vec![encoded.clone(), staged.clone()]);

    // The transcode watches one flag; it is raised by a stop request or by the
    // early savings check, both looked at on every progress report.
    let stop = AtomicBool::new(control.requested().is_some());
    let limit = cfg.size_limit(before.size);
    let mut early = None;
    let report = av1core::transcode(&input, &encoded, &plan, &stop, |p| {
        on_phase(Phase::Encoding(p));
        if p.frames > 0 {
            crate::pause_point(crate::Pause::JobEncoding);
        }
        if control.requested().is_some() {
            stop.store(true, Ordering::SeqCst);
        }
        if early.is_none() && cfg.hopeless(p, limit) {
            early = p.projected_size.map(|projected| (p.percent, projected));
            stop.store(true, Ordering::SeqCst);
        }
    });
    let report = match report {
        Err(av1core::Error::Cancelled) if control.requested().is_none() => {
            let (percent, projected) = early.unwrap_or_default();
            return Ok(Outcome::Skipped {
                reason: SkipReason::NotWorthIt,
                detail: format!(
                    "stopped at {percent:.0}%: projected {projected} bytes, over the {limit} bytes a {}% saving allows",
                    cfg.min_savings_percent
                ),
            });
        }
        other => other.map_err(|e| e.naming(&names))?,
    };
    source_unchanged(source, before)?;
    if report.output_size > limit {
        return Ok(not_worth_it(report.output_size, before.size, cfg.min_savings_percent));
    }
    if encoded != staged {
        copy_synced(&encoded, &staged)?;
        let _ = std::fs::remove_file(&encoded);
    }
    on_phase(Phase::Replacing);
    let facts = EncodeFacts {
        encoder: report.encoder.clone(),
        fps: report.fps,
        elapsed: report.elapsed.as_secs_f64(),
        settings: Some(plan.video.settings_json()),
    };
    place(queue, job, before, &staged, report.output_size, &facts, cfg)
}

/// The source as it was when the job opened it (an lstat: same size, mtime, inode),
/// else [`Error::SourceChanged`] saying how.
fn source_unchanged(source: &Path, before: Stamp) -> Result<()> {
    let what = match Stamp::of_link(source) {
        Ok(now) if now == before => return Ok(()),
        Ok(_) => "it was modified while encoding".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "it disappeared while encoding".to_owned(),
        Err(e) => format!("it cannot be read any more after the encode ({e})"),
    };
    Err(Error::SourceChanged { path: source.into(), what })
}

/// A result of `size` bytes is not enough smaller than its `original`.
fn not_worth_it(size: u64, original: u64, min_savings_percent: f64) -> Outcome {
    let saved = 100.0 * (1.0 - size as f64 / original.max(1) as f64);
    let compared =
        if saved < 0.0 { format!("{:.1}% larger", -saved) } else { format!("{saved:.1}% smaller") };
    Outcome::Skipped {
        reason: SkipReason::NotWorthIt,
        detail: format!(
            "the result ({size} bytes) would be {compared}; at least {min_savings_percent}% smaller is required"
        ),
    }
}

/// Puts the verified result at `staged` in place of the job's source (crash-safe, see
/// `replace`); past the replacement's record, whatever goes wrong is finished or undone
/// by recovery, for this file's record only, which says which.
fn place(
    queue: &mut Queue,
    job: &Job,
    before: Stamp,
    staged: &Path,
    size: u64,
    facts: &EncodeFacts,
    cfg: &JobSettings,
) -> Result<Outcome> {
    // Held open from here to the rename: a link or another file planted under the
    // name is refused, never followed.
    let held = Staged::open(&job.root, staged)?;
    if held.stamp()?.size != size {
        return Err(Error::SourceChanged {
            path: staged.into(),
            what: "the name no longer holds the result that was written and verified".into(),
        });
    }
    match replace::replace(queue, job.file_id, &job.path, before, &held, facts, &cfg.replace) {
        Ok(done) => Ok(Outcome::Done(done)),
        // Not recorded (or another replacement's record): nothing to settle.
        Err(e @ Error::Database { .. }) => Err(e),
        Err(e) => match replace::recover_file(queue, job.file_id)? {
            Some(replace::Recovered::Finished(done)) => Ok(Outcome::Done(done)),
            _ => Err(e),
        },
    }
}

/// The job's source, opened beneath its root: a file gone is [`Error::SourceChanged`]
/// (the job waits for the next scan), anything that is not a regular file reached
/// without a link fails the job, saying what it is.
fn open_source(job: &Job) -> Result<std::fs::File> {
    os::open_beneath(&job.root, &job.path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput => Error::unsupported(
            &job.path,
            format!("{e}; only regular files beneath the library root are transcoded"),
        ),
        std::io::ErrorKind::NotFound => {
            Error::SourceChanged { path: job.path.clone(), what: format!("it is gone ({e})") }
        }
        _ => Error::SourceChanged { path: job.path.clone(), what: format!("it cannot be opened ({e})") },
    })
}

/// The room a result of at most `limit` bytes needs: a margin on top for the Matroska
/// index and file-system slack (1% of it, at least 1 MiB, at most 64 MiB).
pub fn space_needed(limit: u64) -> u64 {
    limit + (limit / 100).clamp(1 << 20, 64 << 20)
}

fn check_space(dir: &Path, needed: u64) -> Result<()> {
    let available = os::free_space(dir)?;
    if available < needed {
        return Err(Error::NoSpace { path: dir.into(), needed, available });
    }
    Ok(())
}

/// Copies `from` to `to` (another file system), syncs it, and checks the copy reads
/// back with the same BLAKE3 hash.
fn copy_synced(from: &Path, to: &Path) -> Result<()> {
    use std::io::Write;
    let hash_file = |p: &Path| -> Result<blake3::Hash> {
        let mut h = blake3::Hasher::new();
        h.update_reader(std::fs::File::open(p).map_err(Error::io("opening", p))?)
            .map_err(Error::io("reading", p))?;
        Ok(h.finalize())
    };
    // Written under a temporary name (never through a symlink), then renamed: `to`
    // only ever names a complete copy.
    let partial = av1core::transcode::temp_path(to);
    let _ = std::fs::remove_file(&partial);
    let _cleanup = RemoveOnDrop(vec![partial.clone()]);
    let mut src = std::fs::File::open(from).map_err(Error::io("opening the result", from))?;
    let mut dst = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&partial)
            .map_err(Error::io("creating", &partial))?
    };
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut src, &mut buf).map_err(Error::io("reading the result", from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n]).map_err(|e| space_or_io(e, &partial))?;
    }
    dst.sync_all().map_err(|e| space_or_io(e, &partial))?;
    drop(dst);
    if hash_file(&partial)? != hasher.finalize() {
        return Err(Error::io("copying the result (read back differs)", to)(std::io::Error::other(
            "hash mismatch",
        )));
    }
    std::fs::rename(&partial, to).map_err(Error::io("renaming the copy", to))
}

/// A full disk is `NoSpace` (the job waits for another turn), anything else an I/O error.
fn space_or_io(e: std::io::Error, path: &Path) -> Error {
    if e.kind() == std::io::ErrorKind::StorageFull {
        Error::NoSpace { path: path.into(), needed: 0, available: 0 }
    } else {
        Error::io("writing the result", path)(e)
    }
}

/// Removes our files of a job that did not complete (missing ones are fine).
struct RemoveOnDrop(Vec<PathBuf>);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Removes our temporary files (see [`names::is_ours`]) from `dir`, not recursing;
/// returns how many. Never touches anything else, so `dir` may be shared.
pub fn clean_temp_dir(dir: &Path) -> Result<usize> {
    let mut n = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("listing the temp dir", dir)(e)),
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if names::is_ours(&p)
            && entry.file_type().is_ok_and(|t| t.is_file())
            && std::fs::remove_file(&p).is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn savings_percent_is_from_0_to_below_100() {
        assert_eq!(savings_percent("5"), Ok(5.0));
        assert_eq!(savings_percent(" 0 "), Ok(0.0));
        for bad in ["100", "-1", "five", "NaN", "inf", ""] {
            assert!(savings_percent(bad).is_err(), "{bad}");
        }
    }

    fn at(percent: f64, projected: Option<u64>) -> Progress {
        Progress {
            frames: 1,
            total_frames: 100,
            fps: 1.0,
            percent,
            elapsed: Duration::ZERO,
            eta: None,
            bytes_written: 0,
            projected_size: projected,
        }
    }

    #[test]
    fn early_stop_needs_warm_up_margin_and_room_left() {
        let cfg = JobSettings::default();
        let limit = cfg.size_limit(1000);
        assert_eq!(limit, 950);
        assert!(!cfg.hopeless(&at(10.0, Some(5000)), limit), "still warming up");
        assert!(cfg.hopeless(&at(25.0, Some(5000)), limit));
        assert!(!cfg.hopeless(&at(25.0, Some(1000)), limit), "within the margin");
        assert!(!cfg.hopeless(&at(95.0, Some(5000)), limit), "nearly done: the exact size decides");
        assert!(!cfg.hopeless(&at(50.0, None), limit));
    }
}
