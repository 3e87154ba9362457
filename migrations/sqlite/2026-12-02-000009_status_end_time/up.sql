-- Serves a documented list order without sorting the table.
CREATE INDEX IF NOT EXISTS async_status_status_end_time_idx ON async_status (status, (end_time IS NULL), end_time, id);
