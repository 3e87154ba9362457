-- The same tables as migrations/postgres. Timestamps are RFC 3339 UTC text with microseconds
-- ('2021-02-18T17:13:56.352261Z'), which sorts in time order; the defaults below have
-- milliseconds only and serve rows inserted by hand, the service always writes its own.
CREATE TABLE role (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    priv_level   INTEGER NOT NULL DEFAULT 0,
    last_updated TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE role_capability (
    role_id      INTEGER NOT NULL REFERENCES role (id) ON DELETE CASCADE,
    cap_name     TEXT NOT NULL,
    last_updated TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (role_id, cap_name)
);

CREATE TABLE tm_user (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    username           TEXT NOT NULL UNIQUE,
    local_passwd       TEXT,
    role               INTEGER NOT NULL REFERENCES role (id),
    last_authenticated TEXT,
    last_updated       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE revoked_token (
    jti        TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE INDEX revoked_token_expires_at_idx ON revoked_token (expires_at);

CREATE TABLE async_status (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    status       TEXT NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    message      TEXT,
    start_time   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    end_time     TEXT,
    last_updated TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX async_status_status_last_updated_idx ON async_status (status, last_updated);

INSERT INTO role (name, description, priv_level) VALUES
    ('admin', 'Has every permission.', 30),
    ('operations', 'Reads, creates, updates and deletes async jobs.', 20),
    ('read-only', 'Logs in; no async job permissions.', 10),
    ('disallowed', 'Cannot log in.', 0);

INSERT INTO role_capability (role_id, cap_name)
SELECT r.id, c.cap_name
FROM role r
CROSS JOIN (SELECT 'ASYNC-STATUS:READ' AS cap_name UNION ALL SELECT 'ASYNC-STATUS:CREATE'
            UNION ALL SELECT 'ASYNC-STATUS:UPDATE' UNION ALL SELECT 'ASYNC-STATUS:DELETE') AS c
WHERE r.name IN ('admin', 'operations');
