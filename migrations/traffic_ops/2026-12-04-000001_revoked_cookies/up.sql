-- database.layout = "traffic_ops": asyncstatus' own state, in its own schema `asyncstatus`
-- (created, and made the first of the search path, before these run, so the migrations'
-- bookkeeping table is here too). Nothing here touches Traffic Ops' tables or schema.
--
-- Session cookies refused after a logout at asyncstatus: Traffic Ops' cookies carry no
-- session id, so the value itself is what is refused (its SHA-256, hex), until it expires.
CREATE TABLE asyncstatus.revoked_cookie (
    digest  text PRIMARY KEY,
    expires timestamptz NOT NULL
);
CREATE INDEX revoked_cookie_expires ON asyncstatus.revoked_cookie (expires);
