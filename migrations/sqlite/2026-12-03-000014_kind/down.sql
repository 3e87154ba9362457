DROP INDEX IF EXISTS async_status_kind_idx;
