DROP INDEX CONCURRENTLY IF EXISTS async_status_created_by_idx;
