//! The vocabulary of asyncstatus: jobs and their lifecycle, permissions and roles, the
//! validation rules for names and messages, and the list-query model.
//!
//! This crate does no I/O and knows nothing of databases or HTTP; every rule here is a pure
//! function, unit-tested beside its code. The crates after it in the chain
//! (`persistence`, `auth`, `api`) use these types and never re-define them.

pub mod job;
pub mod list;
pub mod permission;
pub mod validate;

pub use job::{
    AsyncStatus, CancelRequest, JobStatus, JobUpdate, Labels, NewJob, Progress, TransitionError,
    UnknownStatus,
};
pub use list::{After, ListParams, ListQuery, ListQueryError, OrderBy, SortOrder};
pub use permission::{Permission, ADMIN_ROLE, DISALLOWED_ROLE};
pub use validate::{
    validate_login_username, validate_message, validate_role_name, validate_username,
    ValidationError, MAX_LOGIN_USERNAME_CHARS, MAX_MESSAGE_BYTES,
};
