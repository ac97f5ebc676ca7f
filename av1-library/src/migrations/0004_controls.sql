-- Asked by a person to encode a file again even though it is AV1 already (our result).
ALTER TABLE files ADD COLUMN reencode INTEGER NOT NULL DEFAULT 0;
