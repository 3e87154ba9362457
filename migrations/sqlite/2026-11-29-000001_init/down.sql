DROP TABLE async_status;
DROP TABLE revoked_token;
DROP TABLE tm_user;
DROP TABLE role_capability;
DROP TABLE role;
