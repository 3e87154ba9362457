DROP INDEX IF EXISTS async_status_start_time_idx;
