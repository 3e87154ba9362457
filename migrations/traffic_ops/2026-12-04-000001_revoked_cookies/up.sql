-- database.layout = "traffic_ops": asyncstatus' own state, in its own schema `asyncstatus`
-- (created, and made the first of the search path, before these run, so the migrations'
-- bookkeeping table is here too). Nothing here touches Traffic Ops' tables or schema.
--
-- Session cookies refused after a logout at asyncstatus. Traffic Ops' cookies carry no
-- session id, only a user and an expiry, so the values a logout presented are what is refused
-- (their SHA-256, hex; for an access token, the mojolicious value inside it), until they
-- expire. Rows past `expires` refuse nothing and are removed; a user keeps at most 1000.
CREATE TABLE asyncstatus.revoked_cookie (
    digest   text PRIMARY KEY,
    username text NOT NULL,
    expires  timestamptz NOT NULL
);
CREATE INDEX revoked_cookie_username ON asyncstatus.revoked_cookie (username, expires);
CREATE INDEX revoked_cookie_expires ON asyncstatus.revoked_cookie (expires);
