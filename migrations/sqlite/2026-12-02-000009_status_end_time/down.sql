DROP INDEX IF EXISTS async_status_status_end_time_idx;
