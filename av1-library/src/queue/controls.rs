//! What a person can do to a file that is not running: retry, skip, re-encode, push
//! to the top, forget.

use super::*;

impl Queue {
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
                &format!("UPDATE files SET status = {PENDING}, reason = NULL, detail = NULL, attempts = 0, updated_at = ?2
                 WHERE id = ?1 AND status IN ({FAILED}, {CANCELLED}, {SKIPPED})"),
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
                &format!("UPDATE files SET status = {PENDING}, reason = NULL, detail = NULL, attempts = 0, reencode = 1,
                     updated_at = ?2
                 WHERE id = ?1 AND status IN ({DONE}, {SKIPPED}, {FAILED}, {CANCELLED})"),
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
                &format!("UPDATE files SET priority = (SELECT COALESCE(MAX(priority), 0) + 1 FROM files), updated_at = ?2
                 WHERE id = ?1 AND status = {PENDING}"),
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
                &format!(
                    "DELETE FROM files WHERE id = ?1 AND status <> {RUNNING}
                 AND id NOT IN (SELECT file_id FROM replacements)"
                ),
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
}
