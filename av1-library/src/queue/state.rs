//! Where a file stands ([`Status`], with the one table of allowed changes) and how a
//! job ended ([`Outcome`]); recording an outcome, conditional on the status expected.

use super::*;

/// Where a file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Done,
    Skipped,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] =
        [Status::Pending, Status::Running, Status::Done, Status::Skipped, Status::Failed, Status::Cancelled];

    /// The one spelling of each status, quoted as SQL writes it (`'running'`): the
    /// stored value ([`Status::as_str`]) and the constants the statements name
    /// (`RUNNING`, …) all come from here.
    pub const fn sql(self) -> &'static str {
        match self {
            Status::Pending => "'pending'",
            Status::Running => "'running'",
            Status::Done => "'done'",
            Status::Skipped => "'skipped'",
            Status::Failed => "'failed'",
            Status::Cancelled => "'cancelled'",
        }
    }

    /// The stored value (`running`).
    pub fn as_str(self) -> &'static str {
        let quoted = self.sql();
        &quoted[1..quoted.len() - 1]
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The state machine, in one place. A running file ends in one of the final
    /// states or goes back to `pending` (interrupted); anything not running can be
    /// queued again (retry, re-encode, the file changed) or skipped by hand.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        match (self, to) {
            (Pending, Running) => true,
            (Running, Pending | Done | Skipped | Failed | Cancelled) => true,
            (Running, Running) => false,
            (_, Running) => false,
            (Pending | Done | Skipped | Failed | Cancelled, Pending | Skipped) => true,
            (Pending, Cancelled) => true,
            _ => false,
        }
    }

    /// The states `to` can be reached from, for conditional updates.
    pub(super) fn sources(to: Status) -> Vec<&'static str> {
        Status::ALL.into_iter().filter(|from| from.can_become(to)).map(Status::as_str).collect()
    }
}

/// The statuses as the statements name them (see [`Status::sql`]).
pub(super) const PENDING: &str = Status::Pending.sql();
pub(super) const RUNNING: &str = Status::Running.sql();
pub(super) const DONE: &str = Status::Done.sql();
pub(super) const SKIPPED: &str = Status::Skipped.sql();
pub(super) const FAILED: &str = Status::Failed.sql();
pub(super) const CANCELLED: &str = Status::Cancelled.sql();

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Recorded through [`Queue::complete_replacement`], which puts the result in place
    /// first; passing it to [`Queue::finish`] records a result already in place.
    Done(Done),
    Skipped {
        reason: SkipReason,
        detail: String,
    },
    Failed {
        error: String,
    },
    /// Interrupted (shutdown, no space yet, the file changed): back to `pending`.
    Requeued {
        detail: String,
    },
    Cancelled {
        detail: String,
    },
}

impl Outcome {
    pub fn status(&self) -> Status {
        match self {
            Outcome::Done(_) => Status::Done,
            Outcome::Skipped { .. } => Status::Skipped,
            Outcome::Failed { .. } => Status::Failed,
            Outcome::Requeued { .. } => Status::Pending,
            Outcome::Cancelled { .. } => Status::Cancelled,
        }
    }

    pub(super) fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Skipped { detail, .. }
            | Outcome::Requeued { detail }
            | Outcome::Cancelled { detail } => Some(detail),
            Outcome::Failed { error } => Some(error),
        }
    }
}

/// Records `outcome` for a running file inside `tx`; false when it was not running.
pub(super) fn finish_in(
    tx: &rusqlite::Transaction<'_>,
    file_id: i64,
    attempt_id: i64,
    outcome: &Outcome,
) -> Result<bool> {
    finish_row(tx, file_id, attempt_id, outcome, true)
}

/// A row that stops running holds no lease any more (whichever path ends it: a worker's
/// call, the lease keeper, or the recovery of an interrupted replacement). The worker
/// stays named until [`Queue::credit_worker`] has counted the job for it.
const LEASE_ENDS: &str = "lease_id = NULL, lease_expires = NULL, cancel_requested = 0";

/// [`finish_in`], optionally whatever the file's status is now.
pub(super) fn finish_row(
    tx: &rusqlite::Transaction<'_>,
    file_id: i64,
    attempt_id: i64,
    outcome: &Outcome,
    only_running: bool,
) -> Result<bool> {
    let to = outcome.status();
    debug_assert!(Status::Running.can_become(to));
    let guard = if only_running { format!("AND status = {RUNNING}") } else { String::new() };
    let t = now();
    let reason = match outcome {
        Outcome::Skipped { reason, .. } => Some(reason_str(*reason)),
        _ => None,
    };
    let n = match outcome {
        Outcome::Done(d) => tx.execute(
            &format!(
                "UPDATE files SET status = {DONE}, reason = NULL, detail = NULL, path = ?2, size = ?3, mtime_ns = ?4,
                     original_path = ?5, original_size = ?6, output_size = ?3, output_mtime_ns = ?4, encoder = ?7,
                     fps = ?8, elapsed = ?9, backup_path = COALESCE(?10, backup_path), video_codec = 'av1',
                     container = 'matroska', reencode = 0, encode_settings = ?12, finished_at = ?11,
                     updated_at = ?11, {LEASE_ENDS}
                 WHERE id = ?1 {guard}"
            ),
            params![
                file_id,
                path_str(&d.path)?,
                d.size as i64,
                d.mtime_ns,
                path_str(&d.original_path)?,
                d.original_size as i64,
                d.encoder,
                d.fps,
                d.elapsed,
                d.backup.as_deref().map(path_str).transpose()?,
                t,
                d.settings
            ],
        ),
        _ => tx.execute(
            &format!(
                // A cancel asked for meanwhile is not forgotten when the job goes back to
                // the queue (its lease ran out, its worker gave it back).
                "UPDATE files SET status = CASE WHEN ?2 = {PENDING} AND cancel_requested = 1 THEN {CANCELLED} ELSE ?2 END,
                     reason = ?3, detail = ?4, finished_at = ?5, updated_at = ?5, {LEASE_ENDS}
                 WHERE id = ?1 {guard}"
            ),
            params![file_id, to.as_str(), reason, outcome.detail(), t],
        ),
    }
    .map_err(Error::db("recording a result"))?;
    let label = match outcome {
        Outcome::Requeued { .. } => "requeued",
        _ => to.as_str(),
    };
    tx.execute(
        "UPDATE attempts SET finished_at = ?2, outcome = ?3, detail = ?4 WHERE id = ?1 AND finished_at IS NULL",
        params![attempt_id, t, label, outcome.detail()],
    )
    .map_err(Error::db("recording a result"))?;
    // A file's history is its last attempts, not every one since it was found.
    tx.execute(
        "DELETE FROM attempts WHERE file_id = ?1 AND id <=
             (SELECT id FROM attempts WHERE file_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![file_id, KEPT_ATTEMPTS],
    )
    .map_err(Error::db("recording a result"))?;
    Ok(n == 1)
}
