-- Single flight: at most one PENDING job per key, on every replica; built without blocking writers
-- (one statement per migration, outside a transaction). A build interrupted midway leaves an
-- INVALID index: DROP INDEX CONCURRENTLY async_status_flight_key_idx, then migrate again.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS async_status_flight_key_idx ON async_status (flight_key) WHERE status = 'PENDING' AND flight_key IS NOT NULL;
