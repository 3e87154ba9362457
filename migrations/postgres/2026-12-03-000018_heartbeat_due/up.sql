-- The reaper: PENDING jobs past their own heartbeat_timeout; built without blocking writers
-- (one statement per migration, outside a transaction). A build interrupted midway leaves an
-- INVALID index: DROP INDEX CONCURRENTLY async_status_heartbeat_due_idx, then migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS async_status_heartbeat_due_idx ON async_status (status, heartbeat_due) WHERE heartbeat_due IS NOT NULL;
