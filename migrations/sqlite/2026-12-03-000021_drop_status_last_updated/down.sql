CREATE INDEX IF NOT EXISTS async_status_status_last_updated_idx ON async_status (status, last_updated);
