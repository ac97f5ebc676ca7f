-- Workers and leases (master mode). A running file handed to a worker carries a lease:
-- its id, the worker, and when it expires unless a heartbeat renews it. Every call that
-- changes the job must show the current lease id.
CREATE TABLE workers (
    id            INTEGER PRIMARY KEY,
    -- chosen by the worker, unique: `host` or `host-2` for a second one on the host
    name          TEXT    NOT NULL UNIQUE,
    host          TEXT    NOT NULL,
    cores         INTEGER,
    memory        INTEGER,
    encoder       TEXT,
    version       TEXT,
    registered_at INTEGER NOT NULL,
    -- unix milliseconds of the last call
    last_seen     INTEGER NOT NULL,
    -- idle | downloading | encoding | uploading (offline is derived from last_seen)
    phase         TEXT    NOT NULL DEFAULT 'idle',
    fade_out      INTEGER NOT NULL DEFAULT 0,
    jobs_done     INTEGER NOT NULL DEFAULT 0,
    jobs_failed   INTEGER NOT NULL DEFAULT 0,
    -- the last heartbeat's progress, as sent (JSON)
    progress      TEXT
);

ALTER TABLE files ADD COLUMN lease_id TEXT;
ALTER TABLE files ADD COLUMN lease_worker INTEGER REFERENCES workers (id) ON DELETE SET NULL;
-- unix milliseconds
ALTER TABLE files ADD COLUMN lease_expires INTEGER;
ALTER TABLE files ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX files_by_lease ON files (lease_id) WHERE lease_id IS NOT NULL;
