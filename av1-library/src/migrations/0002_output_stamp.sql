-- The modification time of a result when it was put in place, with `output_size`: a
-- file whose size and mtime still equal these is our own result (re-encoding it keeps
-- the first backup instead of making a new one).
ALTER TABLE files ADD COLUMN output_mtime_ns INTEGER;
