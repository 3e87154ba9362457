DROP INDEX IF EXISTS async_status_last_updated_idx;
