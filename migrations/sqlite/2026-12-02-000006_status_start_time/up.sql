-- Serves a documented list order without sorting the table.
CREATE INDEX IF NOT EXISTS async_status_status_start_time_idx ON async_status (status, start_time, id);
