-- The list order last_updated.
CREATE INDEX IF NOT EXISTS async_status_last_updated_idx ON async_status (last_updated, id);
