//! Which file is next ([`FileOrder`], after priority), claiming it for a job, and
//! putting interrupted or finished files back in the queue.

use super::*;

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

impl Queue {
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
             WHERE status = {PENDING} AND id NOT IN ({excluded}) AND {}
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
            &format!("UPDATE files SET status = {RUNNING}, attempts = attempts + 1, started_at = ?2, updated_at = ?2,
                 finished_at = NULL, cancel_requested = 0 WHERE id = ?1 AND status = {PENDING}"),
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
                &format!(
                    "UPDATE files SET status = {PENDING}, detail = ?2, updated_at = ?1
                 WHERE status = {RUNNING} AND id NOT IN (SELECT file_id FROM replacements)"
                ),
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
        let mut sql = format!(
            "UPDATE files SET status = {PENDING}, reason = NULL, detail = NULL, attempts = 0,
                 updated_at = ?2 WHERE status = ?1"
        );
        if from == Status::Skipped && !reasons.is_empty() {
            let list = reasons.iter().map(|r| format!("'{}'", reason_str(*r))).collect::<Vec<_>>().join(",");
            sql.push_str(&format!(" AND reason IN ({list})"));
        }
        self.conn.execute(&sql, params![from.as_str(), now()]).map_err(Error::db("requeueing"))
    }
}
