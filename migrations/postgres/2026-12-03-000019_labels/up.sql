-- The list filter label (PostgreSQL: a GIN index on the labels as jsonb; SQLite: the labelled jobs' ids, whose labels are then matched one by one); built without blocking writers
-- (one statement per migration, outside a transaction). A build interrupted midway leaves an
-- INVALID index: DROP INDEX CONCURRENTLY async_status_labels_idx, then migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS async_status_labels_idx ON async_status USING gin ((labels::jsonb) jsonb_path_ops) WHERE labels <> '{}';
