//! The master's side of a worker's result (shared storage: the worker wrote it beside
//! the original under our hidden name). Only the master replaces files, and only after
//! it has checked the result itself:
//!
//! ```text
//! take the job over (the lease ends) ─▶ the original unchanged since the claim?
//!   ─▶ the result there, with the size and BLAKE3 hash the worker reported?
//!   ─▶ at least MIN_SAVINGS_PERCENT smaller? ─▶ av1core::verify (decodes every frame)
//!   ─▶ replace::replace (crash-safe) ─▶ done
//! ```
//!
//! Anything else leaves the original untouched, removes the result, and records why:
//! a transfer problem (size, hash) or a changed original puts the file back in the
//! queue; a result that fails verification fails the file.

use std::path::Path;

use super::queue::{Outcome, Queue};
use super::{names, replace};
use crate::error::{chain, Error, Result};
use crate::os::Stamp;
use crate::plan::{Decision, Settings, SkipReason};

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
    super::pause_point("master:verifying");
    let source = job.path.clone();
    // Named from the source's name alone (never from what a disk says), so master and
    // worker agree even when one of them sees a case-insensitive file system.
    let staged = names::staged_for_lease(&names::target_for(&source), lease);
    let checked = check_and_place(queue, file_id, &source, job.size, job.mtime_ns, &staged, d, policy);
    // Past the replacement record, recovery decides (finish or undo), never this code.
    if checked.is_err() && queue.pending_replacements()?.iter().any(|r| r.file_id == file_id) {
        let recovered = replace::recover(queue)?;
        let finished = recovered
            .iter()
            .any(|r| matches!(r, replace::Recovered::Finished(d) if d.original_path == source));
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
        let _ = std::fs::remove_file(&staged);
        queue.finish(&job, &outcome)?;
    }
    queue.credit_worker(file_id, matches!(outcome, Outcome::Done(_)))?;
    Ok(Some(outcome))
}

#[allow(clippy::too_many_arguments)]
fn check_and_place(
    queue: &mut Queue,
    file_id: i64,
    source: &Path,
    size: u64,
    mtime_ns: i64,
    staged: &Path,
    d: &Delivered,
    policy: &Policy,
) -> Result<Outcome> {
    let stamp = Stamp::of(source)
        .map_err(|e| Error::SourceChanged { path: source.into(), what: format!("cannot read it: {e}") })?;
    if (stamp.size, stamp.mtime_ns) != (size, mtime_ns) {
        // Its next attempt is for the content it has now.
        queue.restamp(file_id, stamp.size, stamp.mtime_ns)?;
        return Err(Error::SourceChanged {
            path: source.into(),
            what: "it changed since it was handed out".into(),
        });
    }
    let transfer = |what: String| Err(Error::SourceChanged { path: staged.into(), what });
    let actual = match std::fs::metadata(staged) {
        Ok(m) => m.len(),
        Err(e) => return transfer(format!("the worker's result is not there ({e})")),
    };
    if actual != d.size {
        return transfer(format!("the result has {actual} bytes, the worker reported {}", d.size));
    }
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(std::fs::File::open(staged).map_err(Error::io("opening the result", staged))?)
        .map_err(Error::io("reading the result", staged))?;
    let hash = hasher.finalize().to_hex();
    if !hash.as_str().eq_ignore_ascii_case(&d.blake3) {
        return transfer(format!("the result's BLAKE3 is {hash}, the worker reported {}", d.blake3));
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
    let info = crate::probe(source)?;
    let mut settings = policy.settings.clone();
    settings.reencode_av1 |= queue.reencode_requested(file_id)?;
    let plan = match crate::plan(&info, &settings)? {
        Decision::Encode(plan) => *plan,
        Decision::Skip { reason, detail } => return Ok(Outcome::Skipped { reason, detail }),
    };
    crate::verify::verify_from(source, staged, &plan, Some(d.frames))?;
    let facts = replace::EncodeFacts {
        encoder: d.encoder.clone(),
        fps: d.fps,
        elapsed: d.elapsed,
        settings: d.settings.as_ref().map(|s| s.to_string()),
    };
    let done = replace::replace(queue, file_id, source, stamp, staged, &facts, &policy.replace)?;
    Ok(Outcome::Done(done))
}
