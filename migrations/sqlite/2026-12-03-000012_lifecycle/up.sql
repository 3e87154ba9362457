-- The same columns as migrations/postgres (booleans are integers, timestamps RFC 3339 text).
ALTER TABLE async_status ADD COLUMN kind TEXT;
ALTER TABLE async_status ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE async_status ADD COLUMN created_by TEXT;
ALTER TABLE async_status ADD COLUMN progress_done INTEGER;
ALTER TABLE async_status ADD COLUMN progress_total INTEGER;
ALTER TABLE async_status ADD COLUMN deadline TEXT;
ALTER TABLE async_status ADD COLUMN heartbeat_timeout INTEGER;
ALTER TABLE async_status ADD COLUMN heartbeat_due TEXT;
ALTER TABLE async_status ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE async_status ADD COLUMN cancel_reason TEXT;
ALTER TABLE async_status ADD COLUMN cancel_requested_by TEXT;
ALTER TABLE async_status ADD COLUMN flight_key TEXT;

INSERT OR IGNORE INTO role_capability (role_id, cap_name)
SELECT r.id, 'ASYNC-STATUS:CANCEL' FROM role r WHERE r.name IN ('admin', 'operations');
