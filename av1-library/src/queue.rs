//! The queue: the library's files and their state in SQLite (WAL, synchronous=FULL,
//! schema migrations in `migrations/*.sql`). Used the same way by the standalone mode
//! and the master; it knows nothing of terminals or HTTP.
//!
//! Status changes go through [`Status::can_become`] in one place, and every update is
//! conditional on the status it expects, so two callers can never both win.
//!
//! Here: the queue itself and what the scanner records (files found, changed, gone).
//! By concern: `schema` (open, migrations), `state` (statuses, outcomes), `claim` (which
//! file next; requeueing), `controls` (a person's retry/skip/re-encode/top/delete),
//! `replacements` (the replacement journal), `listing` (counts, statistics, pages),
//! `lease` (workers and their leases).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use av1core::plan::SkipReason;

mod claim;
mod controls;
mod lease;
mod listing;
mod replacements;
mod schema;
mod state;

pub use claim::FileOrder;
pub use lease::{
    Claimed, Expired, Heartbeat, JobProgress, LeaseReply, WorkerInfo, WorkerPhase, WorkerRow, MAX_ATTEMPTS,
};
pub use listing::{Counts, FileRow, ListQuery, Page, Sort};
pub use replacements::PendingReplacement;
pub use state::{Outcome, Status};
use {
    listing::roots_clause,
    state::{finish_in, finish_row, CANCELLED, DONE, FAILED, PENDING, RUNNING, SKIPPED},
};

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

/// A file's recorded backup, and the (size, mtime) of its last result.
pub type BackupInfo = (Option<PathBuf>, Option<(u64, i64)>);

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
                .execute(&format!("DELETE FROM files WHERE id = ?1 AND status <> {RUNNING}"), [id])
                .map_err(Error::db("pruning"))?;
        }
        tx.commit().map_err(Error::db("pruning"))?;
        Ok(n)
    }
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
        &format!(
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
             WHERE files.status <> {RUNNING}"
        ),
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

/// The stored code of a skip reason (`not_worth_it`).
pub fn reason_str(r: SkipReason) -> &'static str {
    match r {
        SkipReason::DynamicHdr => "dynamic_hdr",
        SkipReason::AlreadyAv1 => "already_av1",
        SkipReason::NotWorthIt => "not_worth_it",
        SkipReason::Manual => "manual",
    }
}

/// Attempts kept per file (older ones are removed as new ones end).
pub const KEPT_ATTEMPTS: i64 = 10;

#[cfg(test)]
mod tests {
    use super::*;
    use schema::MIGRATIONS;

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
