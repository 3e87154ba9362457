-- The reaper: PENDING jobs past their deadline.
CREATE INDEX IF NOT EXISTS async_status_deadline_idx ON async_status (status, deadline) WHERE deadline IS NOT NULL;
