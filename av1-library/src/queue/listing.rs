//! What the page and the summary read: counts, statistics, and pages of the file list
//! (filter, search, sort).

use super::*;

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

/// `root IN (?1, ?2, ...)` for `n` roots, or always true for none.
pub(super) fn roots_clause(n: usize) -> String {
    if n == 0 {
        "1".into()
    } else {
        format!("root IN ({})", (1..=n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", "))
    }
}

impl Queue {
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
                     WHERE status = {DONE} AND {where_roots}"
                ),
                rusqlite::params_from_iter(&roots),
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(Error::db("counting"))?;
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT COALESCE(reason, '?'), COUNT(*) FROM files WHERE status = {SKIPPED} AND {where_roots}
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
                format!("(CASE WHEN status = {DONE} THEN original_size - output_size END) {dir}, id {dir}")
            }
            Sort::Queue => format!("(status = {RUNNING}) DESC, priority DESC, mtime_ns ASC"),
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
