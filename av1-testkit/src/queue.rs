//! The queue database read directly (SQL, not our code): what the tests check after
//! a run.

use std::collections::BTreeMap;
use std::path::Path;

/// Status and reason of each file in the queue, by file name.
pub fn statuses(db: &Path) -> BTreeMap<String, (String, Option<String>)> {
    let conn = rusqlite::Connection::open(db).expect("opening the queue");
    let mut st = conn.prepare("SELECT path, status, reason FROM files").expect("a query");
    let rows = st
        .query_map([], |r| {
            let path: String = r.get(0)?;
            let name = Path::new(&path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(path);
            Ok((name, (r.get(1)?, r.get(2)?)))
        })
        .expect("reading the queue");
    rows.map(|r| r.expect("a row")).collect()
}

/// Nothing running, no replacement half done, the database intact and in WAL mode.
pub fn assert_settled(db: &Path) {
    let conn = rusqlite::Connection::open(db).expect("opening the queue");
    let running: i64 = conn
        .query_row("SELECT COUNT(*) FROM files WHERE status = 'running'", [], |r| r.get(0))
        .expect("counting");
    let pending_replacements: i64 =
        conn.query_row("SELECT COUNT(*) FROM replacements", [], |r| r.get(0)).expect("counting");
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("checking");
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("reading the mode");
    assert_eq!((running, pending_replacements, integrity.as_str(), mode.as_str()), (0, 0, "ok", "wal"));
}
