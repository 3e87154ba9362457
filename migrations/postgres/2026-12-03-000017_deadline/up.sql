-- The reaper: PENDING jobs past their deadline; built without blocking writers
-- (one statement per migration, outside a transaction). A build interrupted midway leaves an
-- INVALID index: DROP INDEX CONCURRENTLY async_status_deadline_idx, then migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS async_status_deadline_idx ON async_status (status, deadline) WHERE deadline IS NOT NULL;
