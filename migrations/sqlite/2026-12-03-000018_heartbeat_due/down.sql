DROP INDEX IF EXISTS async_status_heartbeat_due_idx;
