DROP INDEX CONCURRENTLY IF EXISTS async_status_last_updated_idx;
