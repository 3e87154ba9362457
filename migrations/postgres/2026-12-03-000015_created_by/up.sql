-- The list filter created_by; built without blocking writers
-- (one statement per migration, outside a transaction). A build interrupted midway leaves an
-- INVALID index: DROP INDEX CONCURRENTLY async_status_created_by_idx, then migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS async_status_created_by_idx ON async_status (created_by, id) WHERE created_by IS NOT NULL;
