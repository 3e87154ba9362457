-- Replaced by async_status_status_last_updated_id_idx, which serves the same ranges.
DROP INDEX IF EXISTS async_status_status_last_updated_idx;
