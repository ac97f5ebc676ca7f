//! The queue: the library's files and their state in SQLite (WAL, synchronous=FULL,
//! schema migrations in `migrations/*.sql`). Used the same way by the standalone mode
//! and the master; it knows nothing of terminals or HTTP.
//!
//! Status changes go through [`Status::can_become`] in one place, and every update is
//! conditional on the status it expects, so two callers can never both win.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use av1core::plan::SkipReason;

mod lease;
pub use lease::{
    Claimed, Expired, Heartbeat, JobProgress, LeaseReply, WorkerInfo, WorkerPhase, WorkerRow, MAX_ATTEMPTS,
};

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_queue.sql"),
    include_str!("migrations/0002_output_stamp.sql"),
    include_str!("migrations/0003_leases.sql"),
    include_str!("migrations/0004_controls.sql"),
    include_str!("migrations/0005_settings.sql"),
    include_str!("migrations/0006_listing_indexes.sql"),
];

/// How long a writer waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Done => "done",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
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
    fn sources(to: Status) -> Vec<&'static str> {
        Status::ALL.into_iter().filter(|from| from.can_become(to)).map(Status::as_str).collect()
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which pending file comes next (after priority).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileOrder {
    /// Oldest modification time first.
    #[default]
    Oldest,
    Newest,
    Largest,
    Smallest,
}

impl FileOrder {
    fn sql(self) -> &'static str {
        match self {
            FileOrder::Oldest => "mtime_ns ASC, id ASC",
            FileOrder::Newest => "mtime_ns DESC, id ASC",
            FileOrder::Largest => "size DESC, id ASC",
            FileOrder::Smallest => "size ASC, id ASC",
        }
    }
}

impl std::str::FromStr for FileOrder {
    type Err = Error;
    fn from_str(s: &str) -> Result<FileOrder> {
        match s.to_ascii_lowercase().as_str() {
            "oldest" => Ok(FileOrder::Oldest),
            "newest" => Ok(FileOrder::Newest),
            "largest" => Ok(FileOrder::Largest),
            "smallest" => Ok(FileOrder::Smallest),
            _ => Err(Error::Config(format!(
                "FILE_ORDER must be oldest, newest, largest or smallest, not {s:?}"
            ))),
        }
    }
}

/// What the scanner learnt about a file, stored with it and shown in listings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub container: Option<String>,
    pub video_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub hdr: Option<String>,
    pub duration: Option<f64>,
    /// One line: what happens to each audio track.
    pub audio: Option<String>,
    pub crf: Option<u8>,
}

/// The scanner's verdict on a new or changed file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    Encode,
    Skip {
        reason: SkipReason,
        detail: String,
    },
    /// Probing failed: the error chain.
    Unreadable {
        error: String,
    },
}

/// A file as the scanner saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Examined {
    pub path: PathBuf,
    pub root: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub summary: Summary,
    pub verdict: Verdict,
}

/// A queued file's identity and stamp, for the scanner's "has it changed" test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub id: i64,
    pub size: u64,
    pub mtime_ns: i64,
    pub status: Status,
}

/// A file taken up for work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub file_id: i64,
    pub attempt_id: i64,
    pub path: PathBuf,
    /// The library root it was found under: the file is only ever opened beneath it.
    #[serde(default)]
    pub root: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    /// Including this one.
    pub attempts: u32,
}

/// A result in place of the original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// Where the result is now (`Movie.mkv`).
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    /// The name and size the file had (`Movie.mp4`).
    pub original_path: PathBuf,
    pub original_size: u64,
    pub encoder: String,
    pub fps: f64,
    /// Seconds.
    pub elapsed: f64,
    pub backup: Option<PathBuf>,
    /// The encoder settings that produced it (JSON), as the encoding side reported.
    #[serde(default)]
    pub settings: Option<String>,
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

    fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Skipped { detail, .. }
            | Outcome::Requeued { detail }
            | Outcome::Cancelled { detail } => Some(detail),
            Outcome::Failed { error } => Some(error),
        }
    }
}

/// A replacement recorded before its first rename (see `replace`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingReplacement {
    pub file_id: i64,
    pub source: PathBuf,
    pub source_size: u64,
    pub source_mtime_ns: i64,
    pub source_ino: u64,
    pub staged: PathBuf,
    pub staged_size: u64,
    pub staged_ino: u64,
    pub target: PathBuf,
    pub backup: Option<PathBuf>,
    pub done: Done,
}

/// Files per status, and the bytes the finished ones saved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    pub pending: u64,
    pub running: u64,
    pub done: u64,
    pub skipped: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Sizes of the done files before and after.
    pub original_bytes: u64,
    pub output_bytes: u64,
    /// Bytes of every file in the queue as it is now.
    pub library_bytes: u64,
    /// Bytes still to be worked on (pending and running).
    pub pending_bytes: u64,
    pub skipped_by_reason: Vec<(String, u64)>,
}

/// One row of the queue, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRow {
    pub id: i64,
    pub path: PathBuf,
    pub size: u64,
    pub status: Status,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub priority: i64,
    pub attempts: u32,
    pub summary: Summary,
    pub original_path: Option<PathBuf>,
    pub original_size: Option<u64>,
    pub output_size: Option<u64>,
    pub backup_path: Option<PathBuf>,
    /// `SVT-AV1 2.3.0` for a done file.
    pub encoder: Option<String>,
    /// The encoder settings that produced a done file.
    pub settings: Option<serde_json::Value>,
    /// Who worked on it last (a worker's name, `standalone`).
    pub worker: Option<String>,
}

/// A file's recorded backup, and the (size, mtime) of its last result.
pub type BackupInfo = (Option<PathBuf>, Option<(u64, i64)>);

/// How to sort a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    #[default]
    Name,
    Size,
    Status,
    /// Bytes saved (done files first when descending).
    Savings,
    /// The order the queue works in: running, then by priority and age.
    Queue,
}

impl std::str::FromStr for Sort {
    type Err = Error;
    fn from_str(s: &str) -> Result<Sort> {
        match s {
            "name" => Ok(Sort::Name),
            "size" => Ok(Sort::Size),
            "status" => Ok(Sort::Status),
            "savings" => Ok(Sort::Savings),
            "queue" => Ok(Sort::Queue),
            _ => Err(Error::Config(format!("sort must be name, size, status, savings or queue, not {s:?}"))),
        }
    }
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub status: Option<Status>,
    /// A piece of the path, matched literally anywhere in it.
    pub search: Option<String>,
    pub sort: Sort,
    pub descending: bool,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

impl Default for ListQuery {
    fn default() -> ListQuery {
        ListQuery { status: None, search: None, sort: Sort::Name, descending: false, page: 1, per_page: 50 }
    }
}

/// A page of a listing and how many files match in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub total: u64,
    pub rows: Vec<FileRow>,
}

/// The queue database.
pub struct Queue {
    conn: Connection,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().ok_or_else(|| Error::unsupported(p, "a file name that is not UTF-8"))
}

impl Queue {
    /// Opens (creating when missing) the queue at `path`, in WAL mode — asserted, since
    /// readers (the web UI) must never block the writer — and migrates its schema.
    pub fn open(path: &Path) -> Result<Queue> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(Error::io("creating the database directory", dir))?;
        }
        let conn = Connection::open(path).map_err(Error::db("opening"))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(Error::db("enabling WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Config(format!(
                "{} cannot use write-ahead logging (journal mode is {mode}); put it on a local disk",
                path.display()
            )));
        }
        Queue::setup(conn)
    }

    /// A private in-memory queue (tests, dry runs).
    pub fn open_in_memory() -> Result<Queue> {
        Queue::setup(Connection::open_in_memory().map_err(Error::db("opening"))?)
    }

    fn setup(conn: Connection) -> Result<Queue> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(Error::db("setting busy_timeout"))?;
        // FULL: a committed replacement record must survive a power cut before the
        // rename it announces happens.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(Error::db("setting pragmas"))?;
        let mut q = Queue { conn };
        q.migrate()?;
        Ok(q)
    }

    fn migrate(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(Error::db("starting the migration"))?;
        let version: usize = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(Error::db("reading the version"))?;
        if version > MIGRATIONS.len() {
            return Err(Error::Config(format!(
                "the queue database has schema version {version}, newer than this program's {}; upgrade the program",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql).map_err(Error::db("migrating the schema"))?;
            tx.pragma_update(None, "user_version", i + 1).map_err(Error::db("migrating the schema"))?;
        }
        tx.commit().map_err(Error::db("migrating the schema"))
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<usize> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(Error::db("reading the version"))
    }

    /// SQLite's journal mode (`wal` for a file database).
    pub fn journal_mode(&self) -> Result<String> {
        self.conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(Error::db("reading the journal mode"))
    }

    /// `PRAGMA integrity_check` says `ok`.
    pub fn integrity_ok(&self) -> Result<bool> {
        let r: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(Error::db("integrity_check"))?;
        Ok(r == "ok")
    }

    /// The queued files under `root`, by path.
    pub fn known_under(&self, root: &Path) -> Result<HashMap<PathBuf, Known>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, path, size, mtime_ns, status FROM files WHERE root = ?1")
            .map_err(Error::db("listing files"))?;
        let rows = st
            .query_map([path_str(root)?], |r| {
                Ok((
                    PathBuf::from(r.get::<_, String>(1)?),
                    Known {
                        id: r.get(0)?,
                        size: r.get::<_, i64>(2)? as u64,
                        mtime_ns: r.get(3)?,
                        status: Status::parse(&r.get::<_, String>(4)?).unwrap_or(Status::Failed),
                    },
                ))
            })
            .map_err(Error::db("listing files"))?;
        rows.collect::<std::result::Result<_, _>>().map_err(Error::db("listing files"))
    }

    /// Records what the scanner found about a new or changed file. A running file is
    /// left alone (its job notices the change itself). Returns the file's id.
    pub fn upsert(&mut self, e: &Examined) -> Result<i64> {
        upsert_in(&self.conn, e)
    }

    /// [`Queue::upsert`] for many files in one transaction (one sync, not one per file:
    /// a scan of a large library would otherwise wait on the disk for every file).
    pub fn upsert_all(&mut self, items: &[Examined]) -> Result<()> {
        let tx = self.conn.transaction().map_err(Error::db("recording scanned files"))?;
        for e in items {
            upsert_in(&tx, e)?;
        }
        tx.commit().map_err(Error::db("recording scanned files"))
    }

    /// Removes files that are gone from disk (never a running one).
    pub fn prune(&mut self, ids: &[i64]) -> Result<usize> {
        let tx = self.conn.transaction().map_err(Error::db("pruning"))?;
        let mut n = 0;
        for id in ids {
            n += tx
                .execute("DELETE FROM files WHERE id = ?1 AND status <> 'running'", [id])
                .map_err(Error::db("pruning"))?;
        }
        tx.commit().map_err(Error::db("pruning"))?;
        Ok(n)
    }

    /// Takes the next pending file (highest priority, then `order`) under `roots` (any
    /// when empty), skipping `exclude`; marks it running and opens an attempt for `worker`.
    pub fn claim_next(
        &mut self,
        worker: &str,
        order: FileOrder,
        exclude: &[i64],
        roots: &[PathBuf],
    ) -> Result<Option<Job>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::db("claiming a file"))?;
        let excluded = exclude.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT id, path, size, mtime_ns, attempts, root FROM files
             WHERE status = 'pending' AND id NOT IN ({excluded}) AND {}
             ORDER BY priority DESC, {} LIMIT 1",
            roots_clause(roots.len()),
            order.sql()
        );
        let roots = roots.iter().map(|r| path_str(r)).collect::<Result<Vec<_>>>()?;
        let row = tx
            .query_row(&sql, rusqlite::params_from_iter(roots), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .optional()
            .map_err(Error::db("claiming a file"))?;
        let Some((file_id, path, size, mtime_ns, attempts, root)) = row else { return Ok(None) };
        let t = now();
        tx.execute(
            "UPDATE files SET status = 'running', attempts = attempts + 1, started_at = ?2, updated_at = ?2,
                 finished_at = NULL, cancel_requested = 0 WHERE id = ?1 AND status = 'pending'",
            params![file_id, t],
        )
        .map_err(Error::db("claiming a file"))?;
        tx.execute(
            "INSERT INTO attempts (file_id, worker, started_at) VALUES (?1, ?2, ?3)",
            params![file_id, worker, t],
        )
        .map_err(Error::db("claiming a file"))?;
        let attempt_id = tx.last_insert_rowid();
        tx.commit().map_err(Error::db("claiming a file"))?;
        Ok(Some(Job {
            file_id,
            attempt_id,
            path: path.into(),
            root: root.into(),
            size: size as u64,
            mtime_ns,
            attempts: attempts + 1,
        }))
    }

    /// Records how a running job ended. Returns false (and changes nothing) when the
    /// file is no longer running under this attempt.
    pub fn finish(&mut self, job: &Job, outcome: &Outcome) -> Result<bool> {
        let tx = self.conn.transaction().map_err(Error::db("recording a result"))?;
        let ok = finish_in(&tx, job.file_id, job.attempt_id, outcome)?;
        tx.commit().map_err(Error::db("recording a result"))?;
        Ok(ok)
    }

    /// Start-up of a single-process run: every `running` file was interrupted by the
    /// end of a previous run; back to `pending`.
    pub fn requeue_running(&mut self, detail: &str) -> Result<usize> {
        let tx = self.conn.transaction().map_err(Error::db("requeueing"))?;
        let t = now();
        tx.execute(
            "UPDATE attempts SET finished_at = ?1, outcome = 'interrupted', detail = ?2
             WHERE finished_at IS NULL",
            params![t, detail],
        )
        .map_err(Error::db("requeueing"))?;
        let n = tx
            .execute(
                "UPDATE files SET status = 'pending', detail = ?2, updated_at = ?1
                 WHERE status = 'running' AND id NOT IN (SELECT file_id FROM replacements)",
                params![t, detail],
            )
            .map_err(Error::db("requeueing"))?;
        tx.commit().map_err(Error::db("requeueing"))?;
        Ok(n)
    }

    /// Puts files of the given statuses back to `pending` (retry, re-encode). For
    /// `Skipped`, only `reasons` (all when empty). Returns how many changed.
    pub fn requeue(&mut self, from: Status, reasons: &[SkipReason]) -> Result<usize> {
        if !from.can_become(Status::Pending) || from == Status::Running {
            return Ok(0);
        }
        let mut sql = "UPDATE files SET status = 'pending', reason = NULL, detail = NULL, attempts = 0,
                 updated_at = ?2 WHERE status = ?1"
            .to_owned();
        if from == Status::Skipped && !reasons.is_empty() {
            let list = reasons.iter().map(|r| format!("'{}'", reason_str(*r))).collect::<Vec<_>>().join(",");
            sql.push_str(&format!(" AND reason IN ({list})"));
        }
        self.conn.execute(&sql, params![from.as_str(), now()]).map_err(Error::db("requeueing"))
    }

    /// Sets one file's status by hand (controls: retry, skip, cancel a queued file),
    /// checked against the state machine. Never touches a running file (its job owns
    /// it) and never makes a file running or done.
    pub fn set_status(&mut self, file_id: i64, to: Status, detail: Option<&str>) -> Result<bool> {
        if matches!(to, Status::Running | Status::Done) {
            return Ok(false);
        }
        let from = Status::sources(to)
            .iter()
            .filter(|s| **s != Status::Running.as_str())
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(",");
        let reason = (to == Status::Skipped).then_some("manual");
        let n = self
            .conn
            .execute(
                &format!(
                    "UPDATE files SET status = ?2, reason = ?3, detail = ?4, updated_at = ?5
                     WHERE id = ?1 AND status IN ({from})"
                ),
                params![file_id, to.as_str(), reason, detail, now()],
            )
            .map_err(Error::db("changing a status"))?;
        Ok(n == 1)
    }

    /// The backup recorded for a file and the stamp (size, mtime) of the result last
    /// put in place for it: what tells our own result from a file that replaced it.
    pub fn backup_info(&self, file_id: i64) -> Result<BackupInfo> {
        self.conn
            .query_row(
                "SELECT backup_path, output_size, output_mtime_ns FROM files WHERE id = ?1",
                [file_id],
                |r| {
                    let backup: Option<String> = r.get(0)?;
                    let size: Option<i64> = r.get(1)?;
                    let mtime: Option<i64> = r.get(2)?;
                    Ok((backup.map(Into::into), size.zip(mtime).map(|(s, m)| (s as u64, m))))
                },
            )
            .optional()
            .map_err(Error::db("reading a backup"))
            .map(Option::unwrap_or_default)
    }

    /// Controls: queue a failed, cancelled or skipped file again, with fresh attempts.
    pub fn retry(&mut self, file_id: i64) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE files SET status = 'pending', reason = NULL, detail = NULL, attempts = 0, updated_at = ?2
                 WHERE id = ?1 AND status IN ('failed', 'cancelled', 'skipped')",
                params![file_id, now()],
            )
            .map_err(Error::db("retrying"))?;
        Ok(n == 1)
    }

    /// Controls: encode a done (or skipped) file again, even though it is AV1 now.
    pub fn reencode(&mut self, file_id: i64) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE files SET status = 'pending', reason = NULL, detail = NULL, attempts = 0, reencode = 1,
                     updated_at = ?2
                 WHERE id = ?1 AND status IN ('done', 'skipped', 'failed', 'cancelled')",
                params![file_id, now()],
            )
            .map_err(Error::db("queueing a re-encode"))?;
        Ok(n == 1)
    }

    /// Controls: the file comes next (above every other priority).
    pub fn push_to_top(&mut self, file_id: i64) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE files SET priority = (SELECT COALESCE(MAX(priority), 0) + 1 FROM files), updated_at = ?2
                 WHERE id = ?1 AND status = 'pending'",
                params![file_id, now()],
            )
            .map_err(Error::db("changing a priority"))?;
        Ok(n == 1)
    }

    /// Controls: forget a file (not a running one); the next scan finds it again as new.
    pub fn remove(&mut self, file_id: i64) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "DELETE FROM files WHERE id = ?1 AND status <> 'running'
                 AND id NOT IN (SELECT file_id FROM replacements)",
                [file_id],
            )
            .map_err(Error::db("removing a file"))?;
        Ok(n == 1)
    }

    /// Whether the file was asked to be encoded again although it is AV1.
    pub fn reencode_requested(&self, file_id: i64) -> Result<bool> {
        self.conn
            .query_row("SELECT reencode FROM files WHERE id = ?1", [file_id], |r| r.get(0))
            .optional()
            .map_err(Error::db("reading a file"))
            .map(|v| v.unwrap_or(false))
    }

    /// Records a verified result about to replace its original. Durable on return.
    pub fn begin_replacement(&mut self, r: &PendingReplacement) -> Result<()> {
        let done = serde_json::to_string(&r.done).map_err(|e| Error::internal("queue", e))?;
        self.conn
            .execute(
                // A plain INSERT: one replacement per file at a time; a second one
                // for the same file fails here instead of overwriting the first's record.
                "INSERT INTO replacements (file_id, source, source_size, source_mtime, source_ino,
                     staged, staged_size, staged_ino, target, backup, outcome, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    r.file_id,
                    path_str(&r.source)?,
                    r.source_size as i64,
                    r.source_mtime_ns,
                    r.source_ino as i64,
                    path_str(&r.staged)?,
                    r.staged_size as i64,
                    r.staged_ino as i64,
                    path_str(&r.target)?,
                    r.backup.as_deref().map(path_str).transpose()?,
                    done,
                    now()
                ],
            )
            .map_err(Error::db("recording a replacement"))?;
        Ok(())
    }

    /// Replacements recorded and not completed (a crash interrupted them).
    pub fn pending_replacements(&self) -> Result<Vec<PendingReplacement>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT file_id, source, source_size, source_mtime, source_ino, staged, staged_size,
                     staged_ino, target, backup, outcome FROM replacements ORDER BY file_id",
            )
            .map_err(Error::db("listing replacements"))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    PendingReplacement {
                        file_id: r.get(0)?,
                        source: r.get::<_, String>(1)?.into(),
                        source_size: r.get::<_, i64>(2)? as u64,
                        source_mtime_ns: r.get(3)?,
                        source_ino: r.get::<_, i64>(4)? as u64,
                        staged: r.get::<_, String>(5)?.into(),
                        staged_size: r.get::<_, i64>(6)? as u64,
                        staged_ino: r.get::<_, i64>(7)? as u64,
                        target: r.get::<_, String>(8)?.into(),
                        backup: r.get::<_, Option<String>>(9)?.map(Into::into),
                        done: Done {
                            path: PathBuf::new(),
                            size: 0,
                            mtime_ns: 0,
                            original_path: PathBuf::new(),
                            original_size: 0,
                            encoder: String::new(),
                            fps: 0.0,
                            elapsed: 0.0,
                            backup: None,
                            settings: None,
                        },
                    },
                    r.get::<_, String>(10)?,
                ))
            })
            .map_err(Error::db("listing replacements"))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut rec, done) = row.map_err(Error::db("listing replacements"))?;
            rec.done = serde_json::from_str(&done)
                .map_err(|e| Error::internal("queue", format!("replacement record: {e}")))?;
            out.push(rec);
        }
        Ok(out)
    }

    /// The result is in place: the file becomes `done` under its new path and the
    /// replacement record goes, in one transaction.
    pub fn complete_replacement(&mut self, file_id: i64, done: &Done) -> Result<()> {
        let tx = self.conn.transaction().map_err(Error::db("completing a replacement"))?;
        // A stale row for the target's name (a file that was there before) describes
        // a file that no longer exists.
        tx.execute("DELETE FROM files WHERE path = ?1 AND id <> ?2", params![path_str(&done.path)?, file_id])
            .map_err(Error::db("completing a replacement"))?;
        // The result is in place whatever the row says meanwhile: the disk is the truth.
        end_replacement(tx, file_id, &Outcome::Done(done.clone()))
    }

    /// Forgets a replacement that was undone; the file goes back to `outcome`.
    pub fn abandon_replacement(&mut self, file_id: i64, outcome: &Outcome) -> Result<()> {
        let tx = self.conn.transaction().map_err(Error::db("undoing a replacement"))?;
        end_replacement(tx, file_id, outcome)
    }

    /// Files per status and bytes saved, under `roots` (all when empty).
    pub fn counts(&self, roots: &[PathBuf]) -> Result<Counts> {
        let mut c = Counts::default();
        let where_roots = roots_clause(roots.len());
        let roots = roots.iter().map(|r| path_str(r)).collect::<Result<Vec<_>>>()?;
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT status, COUNT(*), COALESCE(SUM(size), 0) FROM files WHERE {where_roots} GROUP BY status"
            ))
            .map_err(Error::db("counting"))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(&roots), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64))
            })
            .map_err(Error::db("counting"))?;
        for row in rows {
            let (status, n, bytes) = row.map_err(Error::db("counting"))?;
            c.total += n;
            c.library_bytes += bytes;
            match Status::parse(&status) {
                Some(Status::Pending) => {
                    c.pending = n;
                    c.pending_bytes += bytes;
                }
                Some(Status::Running) => {
                    c.running = n;
                    c.pending_bytes += bytes;
                }
                Some(Status::Done) => c.done = n,
                Some(Status::Skipped) => c.skipped = n,
                Some(Status::Failed) => c.failed = n,
                Some(Status::Cancelled) => c.cancelled = n,
                None => {}
            }
        }
        (c.original_bytes, c.output_bytes) = self
            .conn
            .query_row(
                &format!(
                    "SELECT COALESCE(SUM(original_size), 0), COALESCE(SUM(output_size), 0) FROM files
                     WHERE status = 'done' AND {where_roots}"
                ),
                rusqlite::params_from_iter(&roots),
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(Error::db("counting"))?;
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT COALESCE(reason, '?'), COUNT(*) FROM files WHERE status = 'skipped' AND {where_roots}
                 GROUP BY reason ORDER BY 1"
            ))
            .map_err(Error::db("counting"))?;
        c.skipped_by_reason = st
            .query_map(rusqlite::params_from_iter(&roots), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(Error::db("counting"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::db("counting"))?;
        Ok(c)
    }

    /// Files with `status` (all when `None`), by path.
    pub fn list(&self, status: Option<Status>) -> Result<Vec<FileRow>> {
        let q = ListQuery { status, per_page: u32::MAX, ..ListQuery::default() };
        Ok(self.page(&q)?.rows)
    }

    /// One page of the listing: filtered by status and by a piece of the path, sorted,
    /// with the number of matching files.
    pub fn page(&self, q: &ListQuery) -> Result<Page> {
        let search = q.search.as_deref().filter(|s| !s.is_empty()).map(|s| {
            let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        // Only the conditions asked for, so SQLite can walk an index in the sort order.
        let mut conditions = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(status) = q.status {
            values.push(status.as_str().to_owned().into());
            conditions.push(format!("status = ?{}", values.len()));
        }
        if let Some(search) = search {
            values.push(search.into());
            conditions.push(format!("path LIKE ?{} ESCAPE '\\'", values.len()));
        }
        let filter = if conditions.is_empty() { "1".to_owned() } else { conditions.join(" AND ") };
        let total: i64 = self
            .conn
            .query_row(
                &format!("SELECT COUNT(*) FROM files WHERE {filter}"),
                rusqlite::params_from_iter(&values),
                |r| r.get(0),
            )
            .map_err(Error::db("listing files"))?;
        let dir = if q.descending { "DESC" } else { "ASC" };
        // Each matches an index (migrations 0001 and 0006).
        let order = match q.sort {
            Sort::Name => format!("path {dir}"),
            Sort::Size => format!("size {dir}, id {dir}"),
            Sort::Status => format!("status {dir}, id {dir}"),
            Sort::Savings => {
                format!("(CASE WHEN status = 'done' THEN original_size - output_size END) {dir}, id {dir}")
            }
            Sort::Queue => "(status = 'running') DESC, priority DESC, mtime_ns ASC".to_owned(),
        };
        let per_page = i64::from(q.per_page.max(1));
        let offset = i64::from(q.page.max(1) - 1).saturating_mul(per_page);
        let (limit_at, offset_at) = (values.len() + 1, values.len() + 2);
        values.push(per_page.into());
        values.push(offset.into());
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, path, size, status, reason, detail, priority, attempts, container, video_codec,
                     width, height, hdr, duration, audio, crf, original_path, original_size, output_size,
                     backup_path, encoder, encode_settings,
                     (SELECT worker FROM attempts WHERE file_id = files.id ORDER BY id DESC LIMIT 1)
                 FROM files WHERE {filter} ORDER BY {order} LIMIT ?{limit_at} OFFSET ?{offset_at}"
            ))
            .map_err(Error::db("listing files"))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(&values), |r| {
                Ok(FileRow {
                    id: r.get(0)?,
                    path: r.get::<_, String>(1)?.into(),
                    size: r.get::<_, i64>(2)? as u64,
                    status: Status::parse(&r.get::<_, String>(3)?).unwrap_or(Status::Failed),
                    reason: r.get(4)?,
                    detail: r.get(5)?,
                    priority: r.get(6)?,
                    attempts: r.get(7)?,
                    summary: Summary {
                        container: r.get(8)?,
                        video_codec: r.get(9)?,
                        width: r.get(10)?,
                        height: r.get(11)?,
                        hdr: r.get(12)?,
                        duration: r.get(13)?,
                        audio: r.get(14)?,
                        crf: r.get(15)?,
                    },
                    original_path: r.get::<_, Option<String>>(16)?.map(Into::into),
                    original_size: r.get::<_, Option<i64>>(17)?.map(|v| v as u64),
                    output_size: r.get::<_, Option<i64>>(18)?.map(|v| v as u64),
                    backup_path: r.get::<_, Option<String>>(19)?.map(Into::into),
                    encoder: r.get(20)?,
                    settings: r.get::<_, Option<String>>(21)?.and_then(|s| serde_json::from_str(&s).ok()),
                    worker: r.get(22)?,
                })
            })
            .map_err(Error::db("listing files"))?;
        let rows = rows.collect::<std::result::Result<_, _>>().map_err(Error::db("listing files"))?;
        Ok(Page { total: total as u64, rows })
    }
}

/// Records `outcome` for the file of a replacement record (and its open attempt),
/// drops the record, and commits.
fn end_replacement(tx: rusqlite::Transaction<'_>, file_id: i64, outcome: &Outcome) -> Result<()> {
    let attempt: Option<i64> = tx
        .query_row(
            "SELECT id FROM attempts WHERE file_id = ?1 AND finished_at IS NULL ORDER BY id DESC LIMIT 1",
            [file_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(Error::db("ending a replacement"))?;
    finish_row(&tx, file_id, attempt.unwrap_or(0), outcome, false)?;
    tx.execute("DELETE FROM replacements WHERE file_id = ?1", [file_id])
        .map_err(Error::db("ending a replacement"))?;
    tx.commit().map_err(Error::db("ending a replacement"))
}

/// Records what the scanner found about a file (see [`Queue::upsert`]).
fn upsert_in(conn: &Connection, e: &Examined) -> Result<i64> {
    let (status, reason, detail) = match &e.verdict {
        Verdict::Encode => (Status::Pending, None, None),
        Verdict::Skip { reason, detail } => {
            (Status::Skipped, Some(reason_str(*reason)), Some(detail.clone()))
        }
        Verdict::Unreadable { error } => (Status::Failed, None, Some(error.clone())),
    };
    let s = &e.summary;
    let t = now();
    conn.execute(
        "INSERT INTO files (path, root, size, mtime_ns, status, reason, detail, container, video_codec,
                 width, height, hdr, duration, audio, crf, added_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)
             ON CONFLICT (path) DO UPDATE SET
                 root = excluded.root, size = excluded.size, mtime_ns = excluded.mtime_ns,
                 status = excluded.status, reason = excluded.reason, detail = excluded.detail,
                 container = excluded.container, video_codec = excluded.video_codec,
                 width = excluded.width, height = excluded.height, hdr = excluded.hdr,
                 duration = excluded.duration, audio = excluded.audio, crf = excluded.crf,
                 attempts = 0, updated_at = excluded.updated_at
             WHERE files.status <> 'running'",
        params![
            path_str(&e.path)?,
            path_str(&e.root)?,
            e.size as i64,
            e.mtime_ns,
            status.as_str(),
            reason,
            detail,
            s.container,
            s.video_codec,
            s.width,
            s.height,
            s.hdr,
            s.duration,
            s.audio,
            s.crf,
            t
        ],
    )
    .map_err(Error::db("recording a scanned file"))?;
    conn.query_row("SELECT id FROM files WHERE path = ?1", [path_str(&e.path)?], |r| r.get(0))
        .map_err(Error::db("recording a scanned file"))
}

/// `root IN (?1, ?2, ...)` for `n` roots, or always true for none.
fn roots_clause(n: usize) -> String {
    if n == 0 {
        "1".into()
    } else {
        format!("root IN ({})", (1..=n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", "))
    }
}

/// The stored code of a skip reason (`not_worth_it`).
pub fn reason_str(r: SkipReason) -> &'static str {
    match r {
        SkipReason::DynamicHdr => "dynamic_hdr",
        SkipReason::AlreadyAv1 => "already_av1",
        SkipReason::NotWorthIt => "not_worth_it",
        SkipReason::Manual => "manual",
    }
}

/// Records `outcome` for a running file inside `tx`; false when it was not running.
fn finish_in(
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

/// Attempts kept per file (older ones are removed as new ones end).
pub const KEPT_ATTEMPTS: i64 = 10;

/// [`finish_in`], optionally whatever the file's status is now.
fn finish_row(
    tx: &rusqlite::Transaction<'_>,
    file_id: i64,
    attempt_id: i64,
    outcome: &Outcome,
    only_running: bool,
) -> Result<bool> {
    let to = outcome.status();
    debug_assert!(Status::Running.can_become(to));
    let guard = if only_running { "AND status = 'running'" } else { "" };
    let t = now();
    let reason = match outcome {
        Outcome::Skipped { reason, .. } => Some(reason_str(*reason)),
        _ => None,
    };
    let n = match outcome {
        Outcome::Done(d) => tx.execute(
            &format!(
                "UPDATE files SET status = 'done', reason = NULL, detail = NULL, path = ?2, size = ?3, mtime_ns = ?4,
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
                "UPDATE files SET status = CASE WHEN ?2 = 'pending' AND cancel_requested = 1 THEN 'cancelled' ELSE ?2 END,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn examined(path: &str, size: u64, mtime_ns: i64, verdict: Verdict) -> Examined {
        Examined {
            path: path.into(),
            root: "/lib".into(),
            size,
            mtime_ns,
            summary: Summary { video_codec: Some("h264".into()), ..Summary::default() },
            verdict,
        }
    }

    #[test]
    fn migrations_apply_once_and_in_order() {
        let q = Queue::open_in_memory().unwrap();
        assert_eq!(q.schema_version().unwrap(), MIGRATIONS.len());
        let mut q = q;
        q.migrate().unwrap();
        assert_eq!(q.schema_version().unwrap(), MIGRATIONS.len());
        assert!(q.integrity_ok().unwrap());
        // A database from a newer program is refused, not damaged.
        q.conn.pragma_update(None, "user_version", MIGRATIONS.len() + 1).unwrap();
        assert!(matches!(q.migrate(), Err(Error::Config(_))));
    }

    #[test]
    fn file_database_is_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(&dir.path().join("sub/queue.sqlite")).unwrap();
        assert_eq!(q.journal_mode().unwrap(), "wal");
        let sync: i64 = q.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2, "synchronous = FULL");
    }

    #[test]
    fn state_machine() {
        use Status::*;
        assert!(Pending.can_become(Running));
        assert!(!Running.can_become(Running));
        assert!(!Done.can_become(Running), "a file is claimed only from pending");
        assert!(Running.can_become(Pending));
        assert!(Failed.can_become(Pending) && Done.can_become(Pending));
        assert!(!Pending.can_become(Done) && !Failed.can_become(Done));
    }

    #[test]
    fn only_the_last_attempts_are_kept() {
        let mut q = Queue::open_in_memory().unwrap();
        q.upsert(&examined("/lib/a.mkv", 300, 30, Verdict::Encode)).unwrap();
        for i in 0..25 {
            let job = q.claim_next("w", FileOrder::Oldest, &[], &[]).unwrap().unwrap();
            q.finish(&job, &Outcome::Requeued { detail: format!("round {i}") }).unwrap();
        }
        let (n, oldest): (i64, String) = q
            .conn
            .query_row("SELECT COUNT(*), MIN(detail) FROM attempts", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(n, KEPT_ATTEMPTS, "the last {KEPT_ATTEMPTS} of 25");
        assert_eq!(oldest, "round 15");
    }

    #[test]
    fn claim_order_priority_and_outcomes() {
        let mut q = Queue::open_in_memory().unwrap();
        let a = q.upsert(&examined("/lib/a.mkv", 300, 30, Verdict::Encode)).unwrap();
        let b = q.upsert(&examined("/lib/b.mkv", 100, 10, Verdict::Encode)).unwrap();
        let c = q.upsert(&examined("/lib/c.mkv", 200, 20, Verdict::Encode)).unwrap();
        q.upsert(&examined(
            "/lib/d.mkv",
            50,
            5,
            Verdict::Skip { reason: SkipReason::AlreadyAv1, detail: "av1".into() },
        ))
        .unwrap();
        q.upsert(&examined("/lib/e.mkv", 0, 1, Verdict::Unreadable { error: "empty".into() })).unwrap();

        let next = |q: &mut Queue, order| {
            let j = q.claim_next("t", order, &[], &[]).unwrap().unwrap();
            q.finish(&j, &Outcome::Requeued { detail: "test".into() }).unwrap();
            j.file_id
        };
        assert_eq!(next(&mut q, FileOrder::Oldest), b);
        assert_eq!(next(&mut q, FileOrder::Newest), a);
        assert_eq!(next(&mut q, FileOrder::Largest), a);
        assert_eq!(next(&mut q, FileOrder::Smallest), b);
        q.conn.execute("UPDATE files SET priority = 5 WHERE id = ?1", [c]).unwrap();
        assert_eq!(next(&mut q, FileOrder::Oldest), c, "priority first");

        let job = q.claim_next("t", FileOrder::Oldest, &[], &[]).unwrap().unwrap();
        assert_eq!(job.file_id, c);
        assert_eq!(job.attempts, 2);
        // The same file cannot be claimed twice.
        let other = q.claim_next("t", FileOrder::Oldest, &[], &[]).unwrap().unwrap();
        assert_ne!(other.file_id, c);
        assert!(q.finish(&other, &Outcome::Failed { error: "boom: because".into() }).unwrap());
        assert!(
            !q.finish(&other, &Outcome::Requeued { detail: "late".into() }).unwrap(),
            "not running any more"
        );
        assert!(q
            .finish(&job, &Outcome::Skipped { reason: SkipReason::NotWorthIt, detail: "4% smaller".into() })
            .unwrap());
        // A running file is not touched by the scanner.
        let third = q.claim_next("t", FileOrder::Oldest, &[], &[]).unwrap().unwrap();
        q.upsert(&examined(third.path.to_str().unwrap(), 1, 1, Verdict::Encode)).unwrap();
        assert_eq!(q.list(Some(Status::Running)).unwrap().len(), 1);
        assert_eq!(q.requeue_running("restart").unwrap(), 1);

        let c = q.counts(&[]).unwrap();
        assert_eq!((c.total, c.pending, c.running, c.skipped, c.failed), (5, 1, 0, 2, 2));
        assert_eq!(c.skipped_by_reason, vec![("already_av1".into(), 1), ("not_worth_it".into(), 1)]);
        let failed = q.list(Some(Status::Failed)).unwrap();
        assert!(failed.iter().any(|f| f.detail.as_deref() == Some("boom: because")));

        assert_eq!(q.requeue(Status::Skipped, &[SkipReason::NotWorthIt]).unwrap(), 1);
        assert_eq!(q.requeue(Status::Failed, &[]).unwrap(), 2);
        assert_eq!(q.counts(&[]).unwrap().pending, 4);
        assert!(q.set_status(b, Status::Skipped, Some("by hand")).unwrap());
        assert_eq!(q.list(Some(Status::Skipped)).unwrap().iter().filter(|f| f.id == b).count(), 1);
    }

    #[test]
    fn pages_filter_search_and_sort() {
        let mut q = Queue::open_in_memory().unwrap();
        for (name, size) in [("b_1.mkv", 30), ("a%2.mkv", 10), ("c3.mkv", 20), ("other.mkv", 5)] {
            q.upsert(&examined(&format!("/lib/{name}"), size, 1, Verdict::Encode)).unwrap();
        }
        let names = |p: Page| {
            p.rows
                .iter()
                .map(|r| r.path.file_name().unwrap().to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let all = q.page(&ListQuery { per_page: 2, ..ListQuery::default() }).unwrap();
        assert_eq!(all.total, 4);
        assert_eq!(names(all), ["a%2.mkv", "b_1.mkv"]);
        let second = q.page(&ListQuery { per_page: 2, page: 2, ..ListQuery::default() }).unwrap();
        assert_eq!(names(second), ["c3.mkv", "other.mkv"]);
        let by_size =
            q.page(&ListQuery { sort: Sort::Size, descending: true, ..ListQuery::default() }).unwrap();
        assert_eq!(names(by_size)[0], "b_1.mkv");
        // Search is literal: % and _ match themselves only.
        let pct = q.page(&ListQuery { search: Some("%".into()), ..ListQuery::default() }).unwrap();
        assert_eq!(names(pct), ["a%2.mkv"]);
        let underscore = q.page(&ListQuery { search: Some("_".into()), ..ListQuery::default() }).unwrap();
        assert_eq!(names(underscore), ["b_1.mkv"]);
        let none = q.page(&ListQuery { status: Some(Status::Done), ..ListQuery::default() }).unwrap();
        assert_eq!(none.total, 0);
    }

    #[test]
    fn replacement_record_survives_and_completes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.sqlite");
        let mut q = Queue::open(&db).unwrap();
        let id = q.upsert(&examined("/lib/Movie.mp4", 1000, 1, Verdict::Encode)).unwrap();
        let stale = q.upsert(&examined("/lib/Movie.mkv", 10, 1, Verdict::Encode)).unwrap();
        q.prune(&[stale]).unwrap();
        let job = q.claim_next("t", FileOrder::Oldest, &[], &[]).unwrap().unwrap();
        let done = Done {
            path: "/lib/Movie.mkv".into(),
            size: 400,
            mtime_ns: 2,
            original_path: "/lib/Movie.mp4".into(),
            original_size: 1000,
            encoder: "SVT-AV1".into(),
            fps: 10.0,
            elapsed: 1.0,
            backup: None,
            settings: None,
        };
        let rec = PendingReplacement {
            file_id: id,
            source: "/lib/Movie.mp4".into(),
            source_size: 1000,
            source_mtime_ns: 1,
            source_ino: 7,
            staged: "/lib/.Movie.mkv.av1-verified".into(),
            staged_size: 400,
            staged_ino: 8,
            target: "/lib/Movie.mkv".into(),
            backup: None,
            done: done.clone(),
        };
        q.begin_replacement(&rec).unwrap();
        drop(q);
        let mut q = Queue::open(&db).unwrap();
        assert_eq!(q.pending_replacements().unwrap(), vec![rec]);
        assert_eq!(q.requeue_running("restart").unwrap(), 0, "a file being replaced stays running");
        q.complete_replacement(job.file_id, &done).unwrap();
        assert!(q.pending_replacements().unwrap().is_empty());
        let rows = q.list(None).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].path, PathBuf::from("/lib/Movie.mkv"));
        assert_eq!(rows[0].status, Status::Done);
        let c = q.counts(&[]).unwrap();
        assert_eq!((c.original_bytes, c.output_bytes), (1000, 400));
    }
}
