-- The token signing secret generated on the first start when auth.secrets is empty: one row,
-- created with INSERT … ON CONFLICT DO NOTHING and read back, so replicas starting at once
-- agree on it.
CREATE TABLE signing_secret (
    id         integer PRIMARY KEY CHECK (id = 1),
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Logged-out sessions (every token refreshed from one shares its `sid`), kept until the
-- session could no longer be used anyway (its start + auth.session_max_age). Replaces the
-- per-token revocations: tokens without a session id no longer verify.
CREATE TABLE revoked_session (
    sid        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_session_expires_at_idx ON revoked_session (expires_at);
DROP TABLE revoked_token;
