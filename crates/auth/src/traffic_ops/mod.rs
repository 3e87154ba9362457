//! Traffic Ops' own credentials, for `database.layout = "traffic_ops"` (issue 12): its
//! `mojolicious` session cookie, its `access_token` JWT, its password hashes, and its
//! authorization rule, each written from the facts of `shared/TRAFFIC_OPS.md` §2–3 so that
//! what Traffic Ops issues is accepted here and what asyncstatus issues is accepted by
//! Traffic Ops.
//!
//! Pure functions only: no database, no clock (the caller passes `now`), no HTTP. Which
//! credential a request carries and in what order they are tried is the api crate's.
//! The key is always Traffic Ops' `secrets[0]` from cdn.conf: Traffic Ops signs and verifies
//! with that one only, so there is no rotation here.

pub mod access_token;
pub mod cookie;
pub mod password;
pub mod permissions;

pub use access_token::{make_access_token, verify_access_token, AccessTokenError};
pub use cookie::{Cookie, CookieError};
pub use password::{hash_traffic_ops_password, verify_traffic_ops_password, PasswordHashError};
pub use permissions::{authorize_traffic_ops, TrafficOpsForbidden, ASYNC_STATUS_PRIV_LEVEL};

/// Traffic Ops' 401 text when no credential is given, or the access_token is bad.
pub const UNAUTHORIZED_PLEASE_LOG_IN: &str = "unauthorized, please log in.";
