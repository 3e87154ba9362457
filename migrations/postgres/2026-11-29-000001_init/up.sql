-- Traffic Ops' tables and column names, where Traffic Ops has them.
CREATE TABLE role (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    description  text NOT NULL DEFAULT '',
    priv_level   integer NOT NULL DEFAULT 0,
    last_updated timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE role_capability (
    role_id      bigint NOT NULL REFERENCES role (id) ON DELETE CASCADE,
    cap_name     text NOT NULL,
    last_updated timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role_id, cap_name)
);

CREATE TABLE tm_user (
    id                 bigserial PRIMARY KEY,
    username           text NOT NULL UNIQUE,
    local_passwd       text,
    role               bigint NOT NULL REFERENCES role (id),
    last_authenticated timestamptz,
    last_updated       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE revoked_token (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_token_expires_at_idx ON revoked_token (expires_at);

CREATE TABLE async_status (
    id           bigserial PRIMARY KEY,
    status       text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    message      text,
    start_time   timestamptz NOT NULL DEFAULT now(),
    end_time     timestamptz,
    last_updated timestamptz NOT NULL DEFAULT now()
);
-- For the reaper: stale PENDING jobs and old finished ones.
CREATE INDEX async_status_status_last_updated_idx ON async_status (status, last_updated);

INSERT INTO role (name, description, priv_level) VALUES
    ('admin', 'Has every permission.', 30),
    ('operations', 'Reads, creates, updates and deletes async jobs.', 20),
    ('read-only', 'Logs in; no async job permissions.', 10),
    ('disallowed', 'Cannot log in.', 0);

INSERT INTO role_capability (role_id, cap_name)
SELECT r.id, c.cap_name
FROM role r
CROSS JOIN (VALUES ('ASYNC-STATUS:READ'), ('ASYNC-STATUS:CREATE'),
                   ('ASYNC-STATUS:UPDATE'), ('ASYNC-STATUS:DELETE')) AS c (cap_name)
WHERE r.name IN ('admin', 'operations');
