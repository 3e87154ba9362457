DROP INDEX IF EXISTS async_status_status_id_idx;
