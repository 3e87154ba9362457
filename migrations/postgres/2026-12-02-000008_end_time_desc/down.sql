DROP INDEX CONCURRENTLY IF EXISTS async_status_end_time_desc_idx;
