DELETE FROM role_capability WHERE cap_name = 'ASYNC-STATUS:CANCEL';
ALTER TABLE async_status
    DROP COLUMN kind,
    DROP COLUMN labels,
    DROP COLUMN created_by,
    DROP COLUMN progress_done,
    DROP COLUMN progress_total,
    DROP COLUMN deadline,
    DROP COLUMN heartbeat_timeout,
    DROP COLUMN heartbeat_due,
    DROP COLUMN cancel_requested,
    DROP COLUMN cancel_reason,
    DROP COLUMN cancel_requested_by,
    DROP COLUMN flight_key;
