DROP INDEX CONCURRENTLY IF EXISTS async_status_start_time_idx;
