-- The reaper: PENDING jobs past their own heartbeat_timeout.
CREATE INDEX IF NOT EXISTS async_status_heartbeat_due_idx ON async_status (status, heartbeat_due) WHERE heartbeat_due IS NOT NULL;
