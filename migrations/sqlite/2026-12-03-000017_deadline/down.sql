DROP INDEX IF EXISTS async_status_deadline_idx;
