DROP TABLE asyncstatus.revoked_cookie;
