-- The list order last_updated; built without blocking writers
-- (one statement per migration, outside a transaction). A build interrupted midway leaves an
-- INVALID index: DROP INDEX CONCURRENTLY async_status_last_updated_idx, then migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS async_status_last_updated_idx ON async_status (last_updated, id);
