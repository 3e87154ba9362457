-- The same tables as migrations/postgres (see there).
CREATE TABLE signing_secret (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    secret     TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE revoked_session (
    sid        TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
);
CREATE INDEX revoked_session_expires_at_idx ON revoked_session (expires_at);
DROP TABLE revoked_token;
