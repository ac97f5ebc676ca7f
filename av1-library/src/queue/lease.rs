//! Workers and leases: what the master adds to the queue. A claim hands a pending file
//! to a worker under a lease id; heartbeats extend it; any call that changes the job
//! must show the current lease (a stale or foreign one changes nothing); a lease not
//! renewed in time puts the file back in the queue, and after [`MAX_ATTEMPTS`] attempts
//! the file fails with the reasons of each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::{finish_in, FileOrder, Job, Outcome, Queue, DONE, PENDING, RUNNING};

/// The idle phase as the statements name it.
const IDLE: &str = WorkerPhase::Idle.sql();
use crate::error::{Error, Result};

/// Attempts a file gets before it fails for good.
pub const MAX_ATTEMPTS: u32 = 3;
/// Workers registered at most (see `Queue::register_worker`).
pub const MAX_WORKERS: i64 = 1000;

/// `lease_expires` of a job the master has taken over to check its result: the lease
/// id stays (the result's name derives from it, so sweeps leave it alone), it never
/// expires, and the worker's calls with it are stale.
const CHECKING: i64 = i64::MAX;

/// What a worker is doing, as it last said (heartbeats) or as the master set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerPhase {
    /// No job (registered, or its job ended).
    #[default]
    Idle,
    /// Fetching its source from the master (file distribution).
    Downloading,
    Encoding,
    /// Sending its result to the master (file distribution).
    Uploading,
}

impl WorkerPhase {
    pub const ALL: [WorkerPhase; 4] =
        [WorkerPhase::Idle, WorkerPhase::Downloading, WorkerPhase::Encoding, WorkerPhase::Uploading];

    /// The one spelling of each phase, quoted as SQL writes it (`'idle'`).
    pub const fn sql(self) -> &'static str {
        match self {
            WorkerPhase::Idle => "'idle'",
            WorkerPhase::Downloading => "'downloading'",
            WorkerPhase::Encoding => "'encoding'",
            WorkerPhase::Uploading => "'uploading'",
        }
    }

    /// The word stored in the queue (and sent on the wire).
    pub fn as_str(self) -> &'static str {
        let quoted = self.sql();
        &quoted[1..quoted.len() - 1]
    }

    fn parse(s: &str) -> Option<WorkerPhase> {
        WorkerPhase::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Where a worker is with its job, as its heartbeats say: every field is optional (a
/// download has no frames yet), and nothing else is accepted, so what a worker makes
/// the master store is bounded by this type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobProgress {
    /// 0..=100.
    pub percent: Option<f64>,
    /// Frames encoded per second.
    pub fps: Option<f64>,
    pub frames: Option<u64>,
    pub total_frames: Option<u64>,
    pub eta_seconds: Option<u64>,
    /// The result's size if it goes on as so far, bytes.
    pub projected_size: Option<u64>,
    /// The source's size, bytes.
    pub size: Option<u64>,
    /// The worker's CPU use, percent of one core.
    pub cpu_percent: Option<f64>,
    /// The worker's resident memory, bytes.
    pub memory_bytes: Option<u64>,
}

impl JobProgress {
    /// Bytes of the source encoded per second (its size times the share of frames
    /// done per second), when the worker said enough to know.
    pub fn bytes_per_second(&self) -> Option<f64> {
        let total = self.total_frames.filter(|t| *t > 0)? as f64;
        Some(self.size? as f64 * self.fps? / total)
    }
}

/// What a worker says about itself when it registers. Nothing else is accepted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerInfo {
    pub name: String,
    pub host: String,
    pub cores: Option<u32>,
    /// Bytes.
    pub memory: Option<u64>,
    /// `SVT-AV1 2.3.0`.
    pub encoder: Option<String>,
    pub version: Option<String>,
}

/// A worker as the master sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerRow {
    pub id: i64,
    #[serde(flatten)]
    pub info: WorkerInfo,
    /// Unix milliseconds.
    pub last_seen: i64,
    pub phase: WorkerPhase,
    pub fade_out: bool,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    /// The last heartbeat's progress.
    pub progress: Option<JobProgress>,
    /// The file it holds a lease on, if any.
    pub file_id: Option<i64>,
}

/// A lease that ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub file_id: i64,
    pub path: std::path::PathBuf,
    pub lease: String,
    /// The last attempt: the file failed.
    pub failed: bool,
}

/// A claimed file and its lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claimed {
    pub job: Job,
    pub lease: String,
    /// Unix milliseconds.
    pub expires: i64,
    /// Encode it even though it is AV1 (a person asked to re-encode it).
    #[serde(default)]
    pub reencode: bool,
}

/// A heartbeat: where the worker is with the job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub phase: WorkerPhase,
    #[serde(default)]
    pub progress: JobProgress,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseReply {
    /// Renewed; `cancel` asks the worker to stop the job.
    Renewed { cancel: bool, expires: i64 },
    /// Not (or no longer) this lease: the worker must drop the job.
    Stale,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A fresh lease id: unique and unguessable enough to tell leases apart (the token, not
/// the lease, keeps strangers out).
fn new_lease(file_id: i64, attempt_id: i64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    h.update(&file_id.to_le_bytes());
    h.update(&attempt_id.to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    h.update(&nanos.to_le_bytes());
    h.finalize().to_hex()[..32].to_owned()
}

/// Gives back an attempt a job used up through no fault of the file (its worker gave
/// it back, the master stopped while checking it).
const FORGIVE_ATTEMPT: &str = "attempts = max(attempts - 1, 0)";

impl Queue {
    /// Records the size and modification time a source has now (it changed during a
    /// job): the next claim hands out the new content, which is what a worker will see.
    pub fn restamp(&mut self, file_id: i64, size: u64, mtime_ns: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE files SET size = ?2, mtime_ns = ?3 WHERE id = ?1",
                rusqlite::params![file_id, size as i64, mtime_ns],
            )
            .map_err(Error::db("recording a changed source"))?;
        Ok(())
    }

    /// The path of a queued file.
    pub fn file_path(&self, file_id: i64) -> Result<Option<std::path::PathBuf>> {
        self.conn
            .query_row("SELECT path FROM files WHERE id = ?1", [file_id], |r| r.get::<_, String>(0))
            .optional()
            .map_err(Error::db("reading a file"))
            .map(|p| p.map(Into::into))
    }

    /// Something that changes whenever a file is added, changes state or goes: what the
    /// web page's event stream watches to reload its listing.
    pub fn revision(&self) -> Result<String> {
        self.conn
            .query_row(
                &format!("SELECT COUNT(*), COALESCE(MAX(updated_at), 0), COALESCE(SUM(attempts), 0), COALESCE(MAX(id), 0),
                     COALESCE(SUM(CASE status WHEN {DONE} THEN 1 WHEN {RUNNING} THEN 2 ELSE 0 END), 0)
                 FROM files"),
                [],
                |r| Ok(format!("{}-{}-{}-{}-{}", r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?, r.get::<_, i64>(4)?)),
            )
            .map_err(Error::db("reading the revision"))
    }

    /// Whether a worker id is registered.
    pub fn worker_exists(&self, worker: i64) -> Result<bool> {
        self.conn
            .query_row("SELECT 1 FROM workers WHERE id = ?1", [worker], |_| Ok(()))
            .optional()
            .map_err(Error::db("reading a worker"))
            .map(|r| r.is_some())
    }

    /// Registers (or re-registers, by name) a worker; returns its id.
    pub fn register_worker(&mut self, w: &WorkerInfo) -> Result<i64> {
        if w.name.is_empty() || w.name.len() > 200 {
            return Err(Error::Config("a worker name is 1 to 200 characters".into()));
        }
        let t = now_ms();
        self.make_room_for_worker(&w.name, t)?;
        self.conn
            .execute(
                &format!("INSERT INTO workers (name, host, cores, memory, encoder, version, registered_at, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT (name) DO UPDATE SET host = excluded.host, cores = excluded.cores,
                     memory = excluded.memory, encoder = excluded.encoder, version = excluded.version,
                     last_seen = excluded.last_seen, phase = {IDLE}"),
                params![w.name, w.host, w.cores, w.memory.map(|m| m as i64), w.encoder, w.version, t],
            )
            .map_err(Error::db("registering a worker"))?;
        self.conn
            .query_row("SELECT id FROM workers WHERE name = ?1", [&w.name], |r| r.get(0))
            .map_err(Error::db("registering a worker"))
    }

    /// At most [`MAX_WORKERS`] registered: a new name first removes workers unseen for a
    /// day that hold no job; if that leaves no room, it is refused.
    fn make_room_for_worker(&mut self, name: &str, now: i64) -> Result<()> {
        let known: bool = self
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM workers WHERE name = ?1)", [name], |r| r.get(0))
            .map_err(Error::db("registering a worker"))?;
        let count: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM workers", [], |r| r.get(0))
            .map_err(Error::db("registering a worker"))?;
        if known || count < MAX_WORKERS {
            return Ok(());
        }
        self.conn
            .execute(
                "DELETE FROM workers WHERE last_seen < ?1
                     AND id NOT IN (SELECT lease_worker FROM files WHERE lease_worker IS NOT NULL)",
                [now - 24 * 3600 * 1000],
            )
            .map_err(Error::db("registering a worker"))?;
        let count: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM workers", [], |r| r.get(0))
            .map_err(Error::db("registering a worker"))?;
        if count >= MAX_WORKERS {
            return Err(Error::Config(format!("{MAX_WORKERS} workers are registered already")));
        }
        Ok(())
    }

    /// Hands the next pending file to `worker` under a new lease valid for `ttl`; none
    /// when the queue is empty, the worker is fading out or unknown.
    pub fn claim_for(
        &mut self,
        worker: i64,
        order: FileOrder,
        ttl: Duration,
        exclude: &[i64],
    ) -> Result<Option<Claimed>> {
        let known: Option<(String, bool)> = self
            .conn
            .query_row("SELECT name, fade_out FROM workers WHERE id = ?1", [worker], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(Error::db("claiming a file"))?;
        let Some((name, fade_out)) = known else { return Ok(None) };
        self.touch_worker(worker, None)?;
        if fade_out {
            return Ok(None);
        }
        let Some(job) = self.claim_next(&name, order, exclude, &[])? else { return Ok(None) };
        let lease = new_lease(job.file_id, job.attempt_id);
        let expires = now_ms() + ttl.as_millis() as i64;
        self.conn
            .execute(
                // (Not resetting the cancel flag: one asked for since the file became
                // running, a moment ago, must reach the worker.)
                &format!(
                    "UPDATE files SET lease_id = ?2, lease_worker = ?3, lease_expires = ?4
                 WHERE id = ?1 AND status = {RUNNING}"
                ),
                params![job.file_id, lease, worker, expires],
            )
            .map_err(Error::db("claiming a file"))?;
        let reencode = self.reencode_requested(job.file_id)?;
        Ok(Some(Claimed { job, lease, expires, reencode }))
    }

    /// Renews a lease and records the worker's progress; tells it to cancel when asked.
    pub fn heartbeat(
        &mut self,
        file_id: i64,
        lease: &str,
        ttl: Duration,
        beat: &Heartbeat,
    ) -> Result<LeaseReply> {
        let expires = now_ms() + ttl.as_millis() as i64;
        let n = self
            .conn
            .execute(
                &format!(
                    "UPDATE files SET lease_expires = ?3
                 WHERE id = ?1 AND lease_id = ?2 AND status = {RUNNING} AND lease_expires <> ?4"
                ),
                params![file_id, lease, expires, CHECKING],
            )
            .map_err(Error::db("renewing a lease"))?;
        if n == 0 {
            return Ok(LeaseReply::Stale);
        }
        let (worker, cancel): (Option<i64>, bool) = self
            .conn
            .query_row("SELECT lease_worker, cancel_requested FROM files WHERE id = ?1", [file_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(Error::db("renewing a lease"))?;
        if let Some(w) = worker {
            self.touch_worker(w, Some(beat))?;
        }
        Ok(LeaseReply::Renewed { cancel, expires })
    }

    /// Records how a leased job ended. False (and nothing changed) when `lease` is not
    /// the file's current lease.
    pub fn finish_leased(&mut self, file_id: i64, lease: &str, outcome: &Outcome) -> Result<bool> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::db("recording a result"))?;
        let held: Option<(i64, Option<i64>)> = tx
            .query_row(
                &format!(
                    "SELECT a.id, f.lease_worker FROM files f JOIN attempts a ON a.file_id = f.id
                 WHERE f.id = ?1 AND f.lease_id = ?2 AND f.status = {RUNNING} AND a.finished_at IS NULL
                     AND f.lease_expires <> ?3
                 ORDER BY a.id DESC LIMIT 1"
                ),
                params![file_id, lease, CHECKING],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(Error::db("recording a result"))?;
        let Some((attempt_id, worker)) = held else { return Ok(false) };
        if !finish_in(&tx, file_id, attempt_id, outcome)? {
            return Ok(false);
        }
        tx.execute(
            "UPDATE files SET lease_id = NULL, lease_worker = NULL, lease_expires = NULL, cancel_requested = 0
             WHERE id = ?1",
            [file_id],
        )
        .map_err(Error::db("recording a result"))?;
        if let Some(w) = worker {
            let column = match outcome {
                Outcome::Failed { .. } => "jobs_failed = jobs_failed + 1,",
                Outcome::Done(_) => "jobs_done = jobs_done + 1,",
                _ => "",
            };
            tx.execute(
                &format!("UPDATE workers SET {column} phase = {IDLE}, progress = NULL WHERE id = ?1"),
                [w],
            )
            .map_err(Error::db("recording a result"))?;
        }
        tx.commit().map_err(Error::db("recording a result"))?;
        Ok(true)
    }

    /// The job `file_id` if `lease` is its current lease (a read: nothing changes).
    pub fn leased(&self, file_id: i64, lease: &str) -> Result<Option<Job>> {
        self.conn
            .query_row(
                &format!("SELECT f.id, COALESCE((SELECT MAX(id) FROM attempts WHERE file_id = f.id), 0), f.path, f.size,
                     f.mtime_ns, f.attempts, f.root
                 FROM files f WHERE f.id = ?1 AND f.lease_id = ?2 AND f.status = {RUNNING}
                     AND f.lease_expires <> ?3"),
                params![file_id, lease, CHECKING],
                |r| {
                    Ok(Job {
                        file_id: r.get(0)?,
                        attempt_id: r.get(1)?,
                        path: r.get::<_, String>(2)?.into(),
                        root: r.get::<_, String>(6)?.into(),
                        size: r.get::<_, i64>(3)? as u64,
                        mtime_ns: r.get(4)?,
                        attempts: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(Error::db("reading a lease"))
    }

    /// The master takes a leased job over to check and place its result: the lease
    /// ends (no heartbeat is needed any more; a later call with it is stale) and the
    /// file stays running until its outcome is recorded. None for a stale lease.
    pub fn take_over(&mut self, file_id: i64, lease: &str) -> Result<Option<Job>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::db("taking a job over"))?;
        let job: Option<Job> = tx
            .query_row(
                &format!(
                    "SELECT f.id, a.id, f.path, f.size, f.mtime_ns, f.attempts, f.root FROM files f
                 JOIN attempts a ON a.file_id = f.id
                 WHERE f.id = ?1 AND f.lease_id = ?2 AND f.status = {RUNNING} AND a.finished_at IS NULL
                     AND f.lease_expires <> ?3
                 ORDER BY a.id DESC LIMIT 1"
                ),
                params![file_id, lease, CHECKING],
                |r| {
                    Ok(Job {
                        file_id: r.get(0)?,
                        attempt_id: r.get(1)?,
                        path: r.get::<_, String>(2)?.into(),
                        root: r.get::<_, String>(6)?.into(),
                        size: r.get::<_, i64>(3)? as u64,
                        mtime_ns: r.get(4)?,
                        attempts: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(Error::db("taking a job over"))?;
        if job.is_some() {
            tx.execute(
                &format!(
                    "UPDATE workers SET phase = {IDLE}, progress = NULL
                 WHERE id = (SELECT lease_worker FROM files WHERE id = ?1)"
                ),
                [file_id],
            )
            .map_err(Error::db("taking a job over"))?;
            tx.execute("UPDATE files SET lease_expires = ?2 WHERE id = ?1", params![file_id, CHECKING])
                .map_err(Error::db("taking a job over"))?;
        }
        tx.commit().map_err(Error::db("taking a job over"))?;
        Ok(job)
    }

    /// Counts a job the master finished for the worker that held it, and lets go of
    /// the worker and the lease.
    pub fn credit_worker(&mut self, file_id: i64, ok: bool) -> Result<()> {
        let column = if ok { "jobs_done = jobs_done + 1" } else { "jobs_failed = jobs_failed + 1" };
        self.conn
            .execute(
                &format!(
                    "UPDATE workers SET {column} WHERE id = (SELECT lease_worker FROM files WHERE id = ?1)"
                ),
                [file_id],
            )
            .map_err(Error::db("updating a worker"))?;
        self.conn
            .execute(
                "UPDATE files SET lease_worker = NULL, lease_id = NULL, lease_expires = NULL WHERE id = ?1",
                [file_id],
            )
            .map_err(Error::db("updating a worker"))?;
        Ok(())
    }

    /// A job given back by its worker through no fault of the file (no room, no mount)
    /// does not count as one of its attempts.
    pub fn forgive_attempt(&mut self, file_id: i64) -> Result<()> {
        self.conn
            .execute(
                &format!("UPDATE files SET {FORGIVE_ATTEMPT} WHERE id = ?1 AND status = {PENDING}"),
                [file_id],
            )
            .map_err(Error::db("forgiving an attempt"))?;
        Ok(())
    }

    /// Master start-up: files left running without a lease (the master stopped while
    /// checking a result) go back to the queue. Replacements were recovered before.
    pub fn requeue_unleased(&mut self) -> Result<usize> {
        let ids: Vec<i64> = {
            let mut st = self
                .conn
                .prepare(
                    &format!("SELECT id FROM files WHERE status = {RUNNING} AND (lease_id IS NULL OR lease_expires = ?1)
                     AND id NOT IN (SELECT file_id FROM replacements)"),
                )
                .map_err(Error::db("requeueing"))?;
            let rows = st.query_map([CHECKING], |r| r.get(0)).map_err(Error::db("requeueing"))?;
            rows.collect::<std::result::Result<_, _>>().map_err(Error::db("requeueing"))?
        };
        for id in &ids {
            let tx = self.conn.transaction().map_err(Error::db("requeueing"))?;
            let attempt: Option<i64> = tx
                .query_row(
                    "SELECT id FROM attempts WHERE file_id = ?1 AND finished_at IS NULL ORDER BY id DESC LIMIT 1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(Error::db("requeueing"))?;
            let outcome = Outcome::Requeued { detail: "the master stopped while checking the result".into() };
            finish_in(&tx, *id, attempt.unwrap_or(0), &outcome)?;
            // The master's stop is not the file's fault: the attempt is not used up.
            tx.execute(
                &format!("UPDATE files SET lease_worker = NULL, {FORGIVE_ATTEMPT} WHERE id = ?1"),
                [id],
            )
            .map_err(Error::db("requeueing"))?;
            tx.commit().map_err(Error::db("requeueing"))?;
        }
        Ok(ids.len())
    }

    /// Puts every file whose lease ran out back in the queue (its attempt counted), or
    /// fails it after [`MAX_ATTEMPTS`] with the reasons of each attempt. Returns what
    /// expired, so the caller can remove the files written under those leases.
    pub fn expire_leases(&mut self) -> Result<Vec<Expired>> {
        let t = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::db("expiring leases"))?;
        let expired: Vec<(i64, u32, Option<i64>, String, String)> = {
            let mut st = tx
                .prepare(&format!(
                    "SELECT id, attempts, lease_worker, path, lease_id FROM files
                     WHERE status = {RUNNING} AND lease_id IS NOT NULL AND lease_expires < ?1"
                ))
                .map_err(Error::db("expiring leases"))?;
            let rows = st
                .query_map([t], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                .map_err(Error::db("expiring leases"))?;
            rows.collect::<std::result::Result<_, _>>().map_err(Error::db("expiring leases"))?
        };
        let mut out = Vec::new();
        for (file_id, attempts, worker, path, lease) in expired {
            let worker_name: Option<String> = match worker {
                Some(w) => tx
                    .query_row("SELECT name FROM workers WHERE id = ?1", [w], |r| r.get(0))
                    .optional()
                    .map_err(Error::db("expiring leases"))?,
                None => None,
            };
            let why = format!(
                "the lease of {} ran out (no heartbeat)",
                worker_name.as_deref().unwrap_or("a worker that is gone")
            );
            let attempt: Option<i64> = tx
                .query_row(
                    "SELECT id FROM attempts WHERE file_id = ?1 AND finished_at IS NULL ORDER BY id DESC LIMIT 1",
                    [file_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(Error::db("expiring leases"))?;
            let outcome = if attempts >= MAX_ATTEMPTS {
                // Every attempt's reason, oldest first.
                let mut st = tx
                    .prepare("SELECT COALESCE(detail, outcome, '?') FROM attempts WHERE file_id = ?1 AND finished_at IS NOT NULL ORDER BY id")
                    .map_err(Error::db("expiring leases"))?;
                let mut reasons: Vec<String> = st
                    .query_map([file_id], |r| r.get(0))
                    .map_err(Error::db("expiring leases"))?
                    .collect::<std::result::Result<_, _>>()
                    .map_err(Error::db("expiring leases"))?;
                reasons.push(why.clone());
                let list =
                    reasons.iter().enumerate().map(|(i, r)| format!("{}: {r}", i + 1)).collect::<Vec<_>>();
                out.push(Expired { file_id, path: path.into(), lease, failed: true });
                Outcome::Failed { error: format!("gave up after {attempts} attempts ({})", list.join("; ")) }
            } else {
                out.push(Expired { file_id, path: path.into(), lease, failed: false });
                Outcome::Requeued { detail: why }
            };
            finish_in(&tx, file_id, attempt.unwrap_or(0), &outcome)?;
            tx.execute(
                "UPDATE files SET lease_id = NULL, lease_worker = NULL, lease_expires = NULL, cancel_requested = 0
                 WHERE id = ?1",
                [file_id],
            )
            .map_err(Error::db("expiring leases"))?;
        }
        tx.commit().map_err(Error::db("expiring leases"))?;
        Ok(out)
    }

    /// Master start-up: every live lease gets a full `ttl` from now, so workers that kept
    /// working while the master was down can reconnect before their leases run out.
    pub fn extend_leases(&mut self, ttl: Duration) -> Result<usize> {
        let expires = now_ms() + ttl.as_millis() as i64;
        self.conn
            .execute(
                &format!(
                    "UPDATE files SET lease_expires = ?1
                 WHERE status = {RUNNING} AND lease_id IS NOT NULL AND lease_expires <> ?2"
                ),
                params![expires, CHECKING],
            )
            .map_err(Error::db("extending leases"))
    }

    /// The (path, lease) of every running leased file: what a sweep of our temporary
    /// files must leave alone.
    pub fn live_leases(&self) -> Result<Vec<(std::path::PathBuf, String)>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT path, lease_id FROM files WHERE status = {RUNNING} AND lease_id IS NOT NULL"
            ))
            .map_err(Error::db("listing leases"))?;
        let rows = st
            .query_map([], |r| Ok((std::path::PathBuf::from(r.get::<_, String>(0)?), r.get(1)?)))
            .map_err(Error::db("listing leases"))?;
        rows.collect::<std::result::Result<_, _>>().map_err(Error::db("listing leases"))
    }

    /// Asks for a file to stop: a running one is told at its next heartbeat, a pending
    /// one is cancelled at once. False when there is nothing to cancel.
    pub fn request_cancel(&mut self, file_id: i64) -> Result<bool> {
        let running = self
            .conn
            .execute(
                &format!("UPDATE files SET cancel_requested = 1 WHERE id = ?1 AND status = {RUNNING}"),
                [file_id],
            )
            .map_err(Error::db("cancelling"))?;
        if running == 1 {
            return Ok(true);
        }
        self.set_status(file_id, super::Status::Cancelled, Some("cancelled before it started"))
    }

    /// Sets a worker's fade-out flag (finish the current job, take no new one).
    pub fn set_fade_out(&mut self, worker: i64, fade_out: bool) -> Result<bool> {
        let n = self
            .conn
            .execute("UPDATE workers SET fade_out = ?2 WHERE id = ?1", params![worker, fade_out])
            .map_err(Error::db("changing a worker"))?;
        Ok(n == 1)
    }

    /// Every registered worker, by name.
    pub fn workers(&self) -> Result<Vec<WorkerRow>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT w.id, w.name, w.host, w.cores, w.memory, w.encoder, w.version, w.last_seen, w.phase,
                     w.fade_out, w.jobs_done, w.jobs_failed, w.progress,
                     (SELECT f.id FROM files f WHERE f.lease_worker = w.id AND f.status = {RUNNING} LIMIT 1)
                 FROM workers w ORDER BY w.name"
            ))
            .map_err(Error::db("listing workers"))?;
        let rows = st
            .query_map([], |r| {
                Ok(WorkerRow {
                    id: r.get(0)?,
                    info: WorkerInfo {
                        name: r.get(1)?,
                        host: r.get(2)?,
                        cores: r.get(3)?,
                        memory: r.get::<_, Option<i64>>(4)?.map(|m| m as u64),
                        encoder: r.get(5)?,
                        version: r.get(6)?,
                    },
                    last_seen: r.get(7)?,
                    phase: WorkerPhase::parse(&r.get::<_, String>(8)?).unwrap_or_default(),
                    fade_out: r.get(9)?,
                    jobs_done: r.get::<_, i64>(10)? as u64,
                    jobs_failed: r.get::<_, i64>(11)? as u64,
                    progress: r.get::<_, Option<String>>(12)?.and_then(|p| serde_json::from_str(&p).ok()),
                    file_id: r.get(13)?,
                })
            })
            .map_err(Error::db("listing workers"))?;
        rows.collect::<std::result::Result<_, _>>().map_err(Error::db("listing workers"))
    }

    fn touch_worker(&mut self, worker: i64, beat: Option<&Heartbeat>) -> Result<()> {
        let t = now_ms();
        match beat {
            Some(b) => self.conn.execute(
                "UPDATE workers SET last_seen = ?2, phase = ?3, progress = ?4 WHERE id = ?1",
                params![worker, t, b.phase.as_str(), serde_json::to_string(&b.progress).ok()],
            ),
            None => self.conn.execute("UPDATE workers SET last_seen = ?2 WHERE id = ?1", params![worker, t]),
        }
        .map_err(Error::db("updating a worker"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Examined, Status, Summary, Verdict};
    use super::*;

    fn queue_with_one_file() -> (Queue, i64) {
        let mut q = Queue::open_in_memory().unwrap();
        let id = q
            .upsert(&Examined {
                path: "/lib/a.mkv".into(),
                root: "/lib".into(),
                size: 10,
                mtime_ns: 1,
                summary: Summary::default(),
                verdict: Verdict::Encode,
            })
            .unwrap();
        (q, id)
    }

    fn worker(q: &mut Queue, name: &str) -> i64 {
        q.register_worker(&WorkerInfo { name: name.into(), host: "h".into(), ..WorkerInfo::default() })
            .unwrap()
    }

    #[test]
    fn only_the_current_lease_changes_a_job() {
        let (mut q, id) = queue_with_one_file();
        let w = worker(&mut q, "w1");
        assert_eq!(worker(&mut q, "w1"), w, "registering again keeps the id");
        let c = q.claim_for(w, FileOrder::Oldest, Duration::from_secs(60), &[]).unwrap().unwrap();
        assert_eq!(c.job.file_id, id);
        assert!(q.claim_for(w, FileOrder::Oldest, Duration::from_secs(60), &[]).unwrap().is_none());
        let progress = JobProgress { percent: Some(12.5), ..JobProgress::default() };
        let beat = Heartbeat { phase: WorkerPhase::Encoding, progress };
        assert!(matches!(
            q.heartbeat(id, &c.lease, Duration::from_secs(60), &beat).unwrap(),
            LeaseReply::Renewed { cancel: false, .. }
        ));
        assert_eq!(q.heartbeat(id, "forged", Duration::from_secs(60), &beat).unwrap(), LeaseReply::Stale);
        assert!(!q.finish_leased(id, "forged", &Outcome::Failed { error: "x".into() }).unwrap());
        assert_eq!(q.list(Some(Status::Running)).unwrap().len(), 1, "a foreign lease changed nothing");
        let workers = q.workers().unwrap();
        assert_eq!((workers[0].phase, workers[0].file_id), (WorkerPhase::Encoding, Some(id)));
        assert_eq!(workers[0].progress.as_ref().unwrap().percent, Some(12.5));

        assert!(q.request_cancel(id).unwrap());
        assert!(matches!(
            q.heartbeat(id, &c.lease, Duration::from_secs(60), &beat).unwrap(),
            LeaseReply::Renewed { cancel: true, .. }
        ));
        let cancelled = Outcome::Cancelled { detail: "by request".into() };
        assert!(q.finish_leased(id, &c.lease, &cancelled).unwrap());
        assert!(!q.finish_leased(id, &c.lease, &cancelled).unwrap(), "a replayed call changes nothing");
        assert_eq!(q.heartbeat(id, &c.lease, Duration::from_secs(60), &beat).unwrap(), LeaseReply::Stale);
        assert_eq!(q.list(Some(Status::Cancelled)).unwrap().len(), 1);
    }

    #[test]
    fn expired_leases_requeue_then_fail_with_every_reason() {
        let (mut q, id) = queue_with_one_file();
        let w = worker(&mut q, "w1");
        let mut old = None;
        for attempt in 1..=MAX_ATTEMPTS {
            let c = q.claim_for(w, FileOrder::Oldest, Duration::ZERO, &[]).unwrap().expect("claimable again");
            assert_eq!(c.job.attempts, attempt);
            if let Some(old) = old.replace(c.lease.clone()) {
                assert_ne!(old, c.lease);
                assert_eq!(
                    q.heartbeat(id, &old, Duration::from_secs(60), &Heartbeat::default()).unwrap(),
                    LeaseReply::Stale
                );
            }
            std::thread::sleep(Duration::from_millis(5));
            let expired = q.expire_leases().unwrap();
            assert_eq!(expired.len(), 1);
            assert_eq!((expired[0].file_id, expired[0].failed), (id, attempt == MAX_ATTEMPTS));
            assert_eq!(expired[0].lease, c.lease);
        }
        let row = &q.list(Some(Status::Failed)).unwrap()[0];
        let detail = row.detail.as_deref().unwrap();
        assert!(detail.starts_with("gave up after 3 attempts"), "{detail}");
        assert_eq!(detail.matches("the lease of w1 ran out").count(), 3, "{detail}");
        assert!(q.claim_for(w, FileOrder::Oldest, Duration::from_secs(60), &[]).unwrap().is_none());
    }

    #[test]
    fn a_job_being_checked_keeps_its_files_and_ignores_the_worker() {
        let (mut q, id) = queue_with_one_file();
        let w = worker(&mut q, "w1");
        let c = q.claim_for(w, FileOrder::Oldest, Duration::ZERO, &[]).unwrap().unwrap();
        assert!(q.take_over(id, &c.lease).unwrap().is_some());
        assert!(q.take_over(id, &c.lease).unwrap().is_none(), "checked once");
        assert_eq!(
            q.heartbeat(id, &c.lease, Duration::from_secs(60), &Heartbeat::default()).unwrap(),
            LeaseReply::Stale
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(q.expire_leases().unwrap().is_empty(), "a check does not expire");
        assert_eq!(q.live_leases().unwrap().len(), 1, "its files are kept by sweeps");
        // The master stopped during the check: back to the queue at the next start.
        assert_eq!(q.requeue_unleased().unwrap(), 1);
        let pending = q.list(Some(Status::Pending)).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].attempts, 0, "the master's stop does not use up an attempt");
        assert!(q.live_leases().unwrap().is_empty());
    }

    #[test]
    fn a_cancel_survives_the_job_going_back_to_the_queue() {
        let (mut q, id) = queue_with_one_file();
        let w = worker(&mut q, "w1");
        q.claim_for(w, FileOrder::Oldest, Duration::ZERO, &[]).unwrap().unwrap();
        assert!(q.request_cancel(id).unwrap());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(q.expire_leases().unwrap().len(), 1);
        assert_eq!(q.list(Some(Status::Cancelled)).unwrap().len(), 1, "cancelled, not pending again");
        assert!(q.claim_for(w, FileOrder::Oldest, Duration::from_secs(60), &[]).unwrap().is_none());
    }

    #[test]
    fn a_fading_worker_gets_nothing_new() {
        let (mut q, _) = queue_with_one_file();
        let w = worker(&mut q, "w1");
        assert!(q.set_fade_out(w, true).unwrap());
        assert!(q.claim_for(w, FileOrder::Oldest, Duration::from_secs(60), &[]).unwrap().is_none());
        assert!(
            q.claim_for(999, FileOrder::Oldest, Duration::from_secs(60), &[]).unwrap().is_none(),
            "unknown worker"
        );
        q.set_fade_out(w, false).unwrap();
        assert!(q.claim_for(w, FileOrder::Oldest, Duration::from_secs(60), &[]).unwrap().is_some());
    }
}
