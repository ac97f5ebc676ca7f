//! Opening the queue: WAL asserted, `synchronous=FULL`, the busy timeout, and the
//! schema migrations (`migrations/*.sql`, counted by `PRAGMA user_version`).

use super::*;

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_queue.sql"),
    include_str!("../migrations/0002_output_stamp.sql"),
    include_str!("../migrations/0003_leases.sql"),
    include_str!("../migrations/0004_controls.sql"),
    include_str!("../migrations/0005_settings.sql"),
    include_str!("../migrations/0006_listing_indexes.sql"),
];

/// How long a writer waits for another connection's lock before giving up.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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

    pub(super) fn migrate(&mut self) -> Result<()> {
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
}
