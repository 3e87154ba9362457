//! The one error type of this crate.

use std::time::Duration;

use asyncstatus_domain::Permission;
use asyncstatus_persistence::StoreError;

/// Why a login, a token or a permission check failed. The texts of the first four are
/// Traffic Ops' own; the api crate shows them to the user as they are.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Login without a username or password.
    #[error("username and password are required")]
    MissingCredentials,
    /// Unknown user, wrong password, or a role that may not log in — deliberately one text.
    #[error("Invalid username or password.")]
    BadCredentials,
    /// No token, or one that is malformed, tampered, expired, revoked, or whose user is gone.
    #[error("unauthorized, please log in.")]
    Unauthorized,
    /// The principal lacks these permissions.
    #[error("missing required Permissions: {}", .0.iter().map(Permission::as_str).collect::<Vec<_>>().join(", "))]
    Forbidden(Vec<Permission>),
    /// Traffic Ops' rule by `priv_level` (`role_based_permissions = false`) refused it.
    #[error("Forbidden.")]
    PrivLevel,
    /// A Traffic Ops session refused, with Traffic Ops' text for why (see
    /// [`crate::traffic_ops::CookieError::unauthorized_text`]).
    #[error("{0}")]
    SessionRefused(String),
    /// Too many failed logins for this username or client address.
    #[error("too many failed login attempts; try again in {} seconds", whole_seconds_up(*.retry_after))]
    Throttled { retry_after: Duration },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A token could not be made.
    #[error("issuing a token: {0}")]
    Issue(String),
}

/// Seconds, rounded up (so a client told to wait never comes back too early), at least 1.
pub fn whole_seconds_up(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds_up(Duration::from_millis(299_500)), 300);
        assert_eq!(whole_seconds_up(Duration::from_secs(300)), 300);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
        let text = AuthError::Throttled {
            retry_after: Duration::from_millis(299_500),
        }
        .to_string();
        assert!(text.ends_with("in 300 seconds"), "{text}");
    }

    #[test]
    fn texts_are_traffic_ops_own() {
        assert_eq!(
            AuthError::Unauthorized.to_string(),
            "unauthorized, please log in."
        );
        assert_eq!(
            AuthError::BadCredentials.to_string(),
            "Invalid username or password."
        );
        assert_eq!(
            AuthError::Forbidden(vec![
                Permission::ASYNC_STATUS_CREATE,
                Permission::ASYNC_STATUS_DELETE
            ])
            .to_string(),
            "missing required Permissions: ASYNC-STATUS:CREATE, ASYNC-STATUS:DELETE"
        );
    }
}
