DROP INDEX IF EXISTS async_status_status_start_time_idx;
