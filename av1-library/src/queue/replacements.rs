//! The replacement journal: a result's replacement is recorded before its first
//! rename and completed (or abandoned) in one transaction, so a crash at any instant
//! is finished or undone at the next start (`replace::recover`).

use super::*;

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

impl Queue {
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
}
