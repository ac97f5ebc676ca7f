//! The master's side of a worker's result (shared storage: the worker wrote it beside
//! the original under our hidden name). Only the master replaces files, and only after
//! it has checked the result itself:
//!
//! ```text
//! take the job over (the lease ends) ─▶ the original unchanged since the claim?
//!   ─▶ the result there: opened once, no link, a regular file with one name (Staged)
//!   ─▶ with the size and BLAKE3 hash the worker reported?
//!   ─▶ at least MIN_SAVINGS_PERCENT smaller? ─▶ av1core::verify (decodes every frame)
//!   ─▶ the same BLAKE3 again (a worker still writing to it is caught)
//!   ─▶ replace::replace (crash-safe) ─▶ done
//! ```
//!
//! Everything after the open goes through the one descriptor: what is hashed is what
//! is verified, chowned and renamed.
//!
//! Anything else leaves the original untouched, removes the result, and records why:
//! a transfer problem (size, hash) or a changed original puts the file back in the
//! queue; a result that fails verification fails the file.

use std::path::Path;

use super::queue::{Job, Outcome, Queue};
use super::staged::Staged;
use super::{names, replace};
use crate::error::{chain, Error, Result};
use av1core::os::{self, Stamp};
use av1core::plan::{Decision, Settings, SkipReason};

/// What a worker reports with its result.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Delivered {
    pub size: u64,
    /// BLAKE3 of the whole file, hex.
    pub blake3: String,
    /// Video frames written.
    pub frames: u64,
    pub encoder: String,
    pub fps: f64,
    /// Seconds.
    pub elapsed: f64,
    /// The encoder settings used (JSON), recorded with the result.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
}

/// The master's rules for results.
#[derive(Debug, Clone)]
pub struct Policy {
    pub settings: Settings,
    pub min_savings_percent: f64,
    pub replace: replace::Options,
}

/// Checks and places the result of the leased job `file_id`. `None` when `lease` is
/// not the job's current lease (nothing changed); otherwise the recorded outcome.
pub fn accept(
    queue: &mut Queue,
    file_id: i64,
    lease: &str,
    d: &Delivered,
    policy: &Policy,
) -> Result<Option<Outcome>> {
    let Some(job) = queue.take_over(file_id, lease)? else { return Ok(None) };
    crate::pause_point(crate::Pause::MasterVerifying);
    let source = job.path.clone();
    // Named from the source's name alone (never from what a disk says), so master and
    // worker agree even when one of them sees a case-insensitive file system.
    let staged = names::staged_for_lease(&names::target_for(&source), lease);
    let checked = check_and_place(queue, &job, &staged, d, policy);
    // Past the replacement record, recovery decides (finish or undo), never this code.
    if checked.is_err() && queue.pending_replacements()?.iter().any(|r| r.file_id == file_id) {
        // Only this file's record: other files may be being replaced on other threads.
        let recovered = replace::recover_file(queue, file_id)?;
        let finished = matches!(recovered, Some(replace::Recovered::Finished(_)));
        queue.credit_worker(file_id, finished)?;
        let why = checked.err().map(|e| chain(&e)).unwrap_or_default();
        return Ok(Some(Outcome::Requeued {
            detail: format!("the replacement was completed or undone by recovery after: {why}"),
        }));
    }
    let outcome = match checked {
        Ok(o) => o,
        Err(e @ (Error::SourceChanged { .. } | Error::Database { .. })) => {
            Outcome::Requeued { detail: chain(&e) }
        }
        Err(e) if e.is_unwritable_disk() => Outcome::Requeued { detail: chain(&e) },
        Err(e) => Outcome::Failed { error: chain(&e) },
    };
    // A file that keeps coming back (results that never arrive whole, a source that
    // keeps changing) fails after the last attempt instead of being encoded forever.
    let outcome = match outcome {
        Outcome::Requeued { detail } if job.attempts >= super::queue::MAX_ATTEMPTS => {
            Outcome::Failed { error: format!("gave up after {} attempts; the last: {detail}", job.attempts) }
        }
        o => o,
    };
    if !matches!(outcome, Outcome::Done(_)) {
        // Whatever the name holds is ours to remove (an unlink never follows a link).
        let _ = std::fs::remove_file(&staged);
        queue.finish(&job, &outcome)?;
    }
    queue.credit_worker(file_id, matches!(outcome, Outcome::Done(_)))?;
    Ok(Some(outcome))
}

fn check_and_place(
    queue: &mut Queue,
    job: &Job,
    staged: &Path,
    d: &Delivered,
    policy: &Policy,
) -> Result<Outcome> {
    let (file_id, source, size, mtime_ns) = (job.file_id, job.path.as_path(), job.size, job.mtime_ns);
    // Read beneath its library root, never through a link: a directory swapped for one
    // cannot make the master check (and then replace) a file elsewhere.
    let original = os::open_beneath(&job.root, source).map_err(|e| Error::SourceChanged {
        path: source.into(),
        what: format!("cannot be opened beneath its library root: {e}"),
    })?;
    let stamp = Stamp::from_metadata(&original.metadata().map_err(Error::io("reading metadata", source))?);
    let original_fd = os::fd_path(&original);
    if (stamp.size, stamp.mtime_ns) != (size, mtime_ns) {
        // Its next attempt is for the content it has now.
        queue.restamp(file_id, stamp.size, stamp.mtime_ns)?;
        return Err(Error::SourceChanged {
            path: source.into(),
            what: "it changed since it was handed out".into(),
        });
    }
    let transfer = |what: String| Err(Error::SourceChanged { path: staged.into(), what });
    let held = match Staged::open(&job.root, staged) {
        Ok(held) => held,
        Err(e) => return transfer(format!("the worker's result is not usable ({})", chain(&e))),
    };
    let actual = held.stamp()?.size;
    if actual != d.size {
        return transfer(format!("the result has {actual} bytes, the worker reported {}", d.size));
    }
    if let Err(why) = same_hash(&held, &d.blake3)? {
        return transfer(why);
    }
    let limit = super::job::size_limit(size, policy.min_savings_percent);
    if d.size > limit {
        return Ok(Outcome::Skipped {
            reason: SkipReason::NotWorthIt,
            detail: format!(
                "the result ({} bytes) is not {}% smaller than the original ({size} bytes)",
                d.size, policy.min_savings_percent
            ),
        });
    }
    let held_fd = held.fd_path();
    let names = [(original_fd.as_path(), source), (held_fd.as_path(), staged)];
    let mut info = av1core::probe(&original_fd).map_err(|e| e.naming(&names))?;
    info.path = source.to_path_buf();
    let mut settings = policy.settings.clone();
    settings.reencode_av1 |= queue.reencode_requested(file_id)?;
    let plan = match av1core::plan(&info, &settings)? {
        Decision::Encode(plan) => *plan,
        Decision::Skip { reason, detail } => return Ok(Outcome::Skipped { reason, detail }),
    };
    av1core::verify::verify_from(&original_fd, &held_fd, &plan, Some(d.frames))
        .map_err(|e| e.naming(&names))?;
    // A worker on shared storage could still be writing to it: what is put in place
    // must be what was verified.
    if let Err(why) = same_hash(&held, &d.blake3)? {
        return transfer(format!("after verification: {why}"));
    }
    let facts = replace::EncodeFacts {
        encoder: d.encoder.clone(),
        fps: d.fps,
        elapsed: d.elapsed,
        settings: d.settings.as_ref().map(|s| s.to_string()),
    };
    let done = replace::replace(queue, file_id, source, stamp, &held, &facts, &policy.replace)?;
    Ok(Outcome::Done(done))
}

/// `Err(why)` when the file held does not have the BLAKE3 (hex) the worker reported.
fn same_hash(held: &Staged, reported: &str) -> Result<std::result::Result<(), String>> {
    let hash = held.hash()?.to_hex();
    if hash.as_str().eq_ignore_ascii_case(reported) {
        Ok(Ok(()))
    } else {
        Ok(Err(format!("the result's BLAKE3 is {hash}, the worker reported {reported}")))
    }
}
