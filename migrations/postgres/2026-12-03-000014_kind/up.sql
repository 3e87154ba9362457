-- The list filter kind; built without blocking writers
-- (one statement per migration, outside a transaction). A build interrupted midway leaves an
-- INVALID index: DROP INDEX CONCURRENTLY async_status_kind_idx, then migrate again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS async_status_kind_idx ON async_status (kind, id) WHERE kind IS NOT NULL;
