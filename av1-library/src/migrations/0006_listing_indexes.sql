-- The listing's sort orders, so a page of a 100 000-file queue is read from an index
-- instead of sorting the whole table (the expressions match Queue::page exactly).
CREATE INDEX files_by_size ON files (size);
CREATE INDEX files_by_savings ON files ((CASE WHEN status = 'done' THEN original_size - output_size END));
CREATE INDEX files_by_queue_order ON files ((status = 'running') DESC, priority DESC, mtime_ns ASC);
