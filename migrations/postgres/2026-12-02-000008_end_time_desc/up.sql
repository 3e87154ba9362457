-- Serves a documented list order without sorting the table; built without blocking writers
-- (one statement per migration, outside a transaction). A build interrupted midway leaves an
-- INVALID index: DROP INDEX CONCURRENTLY async_status_end_time_desc_idx, then migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS async_status_end_time_desc_idx ON async_status ((end_time IS NULL), end_time DESC, id DESC);
