-- The list order last_updated within a status (with id, its tie-break), and the reaper's and
-- the purge's (status, last_updated) ranges, which it replaces; built without blocking writers.
-- A build interrupted midway leaves an INVALID index: DROP INDEX CONCURRENTLY
-- async_status_status_last_updated_id_idx, then migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS async_status_status_last_updated_id_idx ON async_status (status, last_updated, id);
