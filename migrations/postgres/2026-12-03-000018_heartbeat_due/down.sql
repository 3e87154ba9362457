DROP INDEX CONCURRENTLY IF EXISTS async_status_heartbeat_due_idx;
