CREATE TABLE revoked_token (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_token_expires_at_idx ON revoked_token (expires_at);
DROP TABLE revoked_session;
DROP TABLE signing_secret;
