-- The job lifecycle (issue 14): kind, labels, owner, progress, deadlines, per-job heartbeat
-- timeouts, cooperative cancel and single-flight keys. Every column is nullable or has a
-- constant default, so adding them rewrites no row and existing jobs read with the defaults.
ALTER TABLE async_status
    ADD COLUMN kind                text,
    ADD COLUMN labels              text NOT NULL DEFAULT '{}',
    ADD COLUMN created_by          text,
    ADD COLUMN progress_done       bigint,
    ADD COLUMN progress_total      bigint,
    ADD COLUMN deadline            timestamptz,
    ADD COLUMN heartbeat_timeout   bigint,
    ADD COLUMN heartbeat_due       timestamptz,
    ADD COLUMN cancel_requested    boolean NOT NULL DEFAULT false,
    ADD COLUMN cancel_reason       text,
    ADD COLUMN cancel_requested_by text,
    ADD COLUMN flight_key          text;

-- Cancelling is its own permission, held by the roles that may update jobs.
INSERT INTO role_capability (role_id, cap_name)
SELECT r.id, 'ASYNC-STATUS:CANCEL' FROM role r WHERE r.name IN ('admin', 'operations')
ON CONFLICT DO NOTHING;
