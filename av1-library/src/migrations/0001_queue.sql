-- The library's files and their state. One row per video file found by the scanner.
-- `path` is where the file is now: after a replacement it is the result's path
-- (Movie.mp4 becomes Movie.mkv) and `original_path` keeps the name it had.
CREATE TABLE files (
    id            INTEGER PRIMARY KEY,
    path          TEXT    NOT NULL UNIQUE,
    root          TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'done', 'skipped', 'failed', 'cancelled')),
    -- skipped: dynamic_hdr | already_av1 | not_worth_it | manual
    reason        TEXT,
    -- skip detail, or the whole error chain of a failure
    detail        TEXT,
    priority      INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    -- what the probe found
    container     TEXT,
    video_codec   TEXT,
    width         INTEGER,
    height        INTEGER,
    hdr           TEXT,
    duration      REAL,
    audio         TEXT,
    crf           INTEGER,
    -- the result
    original_path TEXT,
    original_size INTEGER,
    output_size   INTEGER,
    encoder       TEXT,
    fps           REAL,
    elapsed       REAL,
    backup_path   TEXT,
    added_at      INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER
);
CREATE INDEX files_by_status ON files (status, priority DESC);
CREATE INDEX files_by_root ON files (root);

-- Every time a file was taken up, and how that ended.
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    file_id     INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    worker      TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT,
    detail      TEXT
);
CREATE INDEX attempts_by_file ON attempts (file_id);

-- A verified result on its way into the library. Written (and synced) before the
-- first rename; removed in the same transaction that marks the file done. A row
-- here at start-up is a replacement a crash interrupted: it is finished or undone.
CREATE TABLE replacements (
    file_id       INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    source        TEXT    NOT NULL,
    source_size   INTEGER NOT NULL,
    source_mtime  INTEGER NOT NULL,
    source_ino    INTEGER NOT NULL,
    staged        TEXT    NOT NULL,
    staged_size   INTEGER NOT NULL,
    staged_ino    INTEGER NOT NULL,
    target        TEXT    NOT NULL,
    backup        TEXT,
    -- the `Done` record to store once the result is in place (JSON)
    outcome       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
