DROP INDEX CONCURRENTLY IF EXISTS async_status_deadline_idx;
