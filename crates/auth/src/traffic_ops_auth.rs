//! Requests authenticated by Traffic Ops' own sessions (`database.layout = "traffic_ops"`):
//! which credential of a request counts, in Traffic Ops' precedence (`GetUserFromReq` in
//! `traffic_ops_golang/api/api.go`, shared/TRAFFIC_OPS.md §2), its verification with Traffic
//! Ops' `secrets[0]`, the user read from Traffic Ops' tables, and the refreshed cookies of the
//! answer.
//!
//! 1. An `Authorization` header containing `Bearer`: its second field is the access token;
//!    cookies are then ignored.
//! 2. Else the first `access_token` or `mojolicious` cookie, in header order (a bad
//!    access_token is refused even when a good mojolicious cookie follows it).
//! 3. An access token's signature only is checked; the `mojolicious` value inside it decides,
//!    as a cookie does: signature, then `expires`.
//! 4. The user must exist with a role; the rule of `role_based_permissions` decides what it may.

use std::sync::Arc;

use asyncstatus_persistence::{Store, TrafficOpsUser};
use secrecy::{ExposeSecret, SecretString};

use crate::traffic_ops::{access_token, cookie, UNAUTHORIZED_PLEASE_LOG_IN};
use crate::{AccessRule, AuthError, Principal};

/// How long a refreshed `mojolicious` cookie lives (Traffic Ops: 1 h on every answer).
pub const REFRESH_SECONDS: i64 = 3600;
/// How long the cookies of a login live (Traffic Ops: 6 h).
pub const LOGIN_SECONDS: i64 = 6 * 3600;

/// Traffic Ops' 401 text for a valid cookie whose user is gone or has no role.
pub const USER_NOT_FOUND: &str = "user not found";

/// The credential a request carries, as found in Traffic Ops' order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <jwt>`.
    Bearer(String),
    /// The `access_token` cookie.
    AccessTokenCookie(String),
    /// The `mojolicious` cookie.
    Mojolicious(String),
}

/// The credential of a request: its `Authorization` header (if any) and its cookies as
/// `(name, value)` in header order.
pub fn credential_of<'a>(
    authorization: Option<&str>,
    cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<Credential> {
    if let Some(header) = authorization.filter(|h| h.contains("Bearer")) {
        // Traffic Ops takes the second whitespace-separated field, whatever the first.
        return Some(Credential::Bearer(
            header.split_whitespace().nth(1).unwrap_or("").to_owned(),
        ));
    }
    cookies
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .find_map(|(name, value)| match name {
            access_token::NAME => Some(Credential::AccessTokenCookie(value.to_owned())),
            cookie::NAME => Some(Credential::Mojolicious(value.to_owned())),
            _ => None,
        })
}

/// A verified session, before its user is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The username the cookie names.
    pub username: String,
    /// The `mojolicious` value that was verified (the one inside an access token, for one).
    pub mojolicious: String,
    /// The access token the request carried, if that was its credential.
    pub access_token: Option<String>,
}

/// An authenticated request.
#[derive(Debug, Clone)]
pub struct TrafficOpsSession {
    pub principal: Arc<Principal>,
    pub verified: Verified,
}

/// Authenticates requests by Traffic Ops' sessions against its database.
pub struct TrafficOpsAuthenticator {
    store: Store,
    secret: SecretString,
    role_based: bool,
}

impl TrafficOpsAuthenticator {
    /// `secret` is Traffic Ops' `secrets[0]`; `role_based` its `role_based_permissions`.
    pub fn new(store: Store, secret: SecretString, role_based: bool) -> Self {
        TrafficOpsAuthenticator {
            store,
            secret,
            role_based,
        }
    }

    /// Checks `credential` at `now` (Unix seconds), CPU only. The error's text is Traffic
    /// Ops' 401 text.
    pub fn verify(&self, credential: &Credential, now: i64) -> Result<Verified, AuthError> {
        let secret = self.secret.expose_secret();
        let (mojolicious, token) = match credential {
            Credential::Bearer(jwt) | Credential::AccessTokenCookie(jwt) => {
                let inner = access_token::verify_access_token(jwt, secret).map_err(|e| {
                    tracing::debug!(error = %e, "access_token refused");
                    AuthError::SessionRefused(e.unauthorized_text().to_owned())
                })?;
                (inner, Some(jwt.clone()))
            }
            Credential::Mojolicious(value) => (value.clone(), None),
        };
        let parsed = cookie::parse(&mojolicious, secret, now).map_err(|e| {
            tracing::debug!(error = %e, "mojolicious cookie refused");
            AuthError::SessionRefused(e.unauthorized_text())
        })?;
        Ok(Verified {
            username: parsed.auth_data,
            mojolicious,
            access_token: token,
        })
    }

    /// Reads the user of a verified session (one query): it must exist and have a role.
    pub fn load(&self, verified: Verified) -> Result<TrafficOpsSession, AuthError> {
        let user = self
            .store
            .traffic_ops_user(&verified.username)?
            .ok_or_else(|| AuthError::SessionRefused(USER_NOT_FOUND.to_owned()))?;
        Ok(TrafficOpsSession {
            principal: Arc::new(self.principal_of(user)),
            verified,
        })
    }

    /// The principal of a Traffic Ops user under this instance's permission rule.
    pub fn principal_of(&self, user: TrafficOpsUser) -> Principal {
        Principal {
            user_id: user.id,
            username: user.username,
            role: user.role,
            permissions: user.permissions,
            rule: if self.role_based {
                AccessRule::Permissions
            } else {
                AccessRule::PrivLevel(user.priv_level)
            },
        }
    }

    /// A `mojolicious` value for `username` that expires `lifetime` seconds after `now`.
    pub fn cookie_for(&self, username: &str, now: i64, lifetime: i64) -> (String, i64) {
        let expires = now.saturating_add(lifetime);
        (
            cookie::make(username, expires, self.secret.expose_secret()),
            expires,
        )
    }

    /// The access token Traffic Ops re-signs on each answer to a request that carried one:
    /// the same claims (the old `mojoCookie`, the old `exp`), so the token never slides.
    pub fn resign(&self, verified: &Verified, now: i64) -> Result<Option<String>, AuthError> {
        if verified.access_token.is_none() {
            return Ok(None);
        }
        let exp = cookie::parse(&verified.mojolicious, self.secret.expose_secret(), now)
            .map(|c| c.expires)
            .map_err(|e| AuthError::SessionRefused(e.unauthorized_text()))?;
        access_token::make_access_token(&verified.mojolicious, exp, self.secret.expose_secret())
            .map(Some)
            .map_err(|e| AuthError::Issue(e.to_string()))
    }
}

/// Traffic Ops' 401 text when a request carries no credential.
pub fn no_credential() -> AuthError {
    AuthError::SessionRefused(UNAUTHORIZED_PLEASE_LOG_IN.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_wins_over_cookies_and_the_first_session_cookie_over_later_ones() {
        let cookies = [
            ("theme", "dark"),
            ("mojolicious", "m1"),
            ("access_token", "t1"),
            ("mojolicious", "m2"),
        ];
        assert_eq!(
            credential_of(Some("Bearer jwt-here"), cookies),
            Some(Credential::Bearer("jwt-here".into()))
        );
        // "contains Bearer": Traffic Ops takes the second field whatever the first says.
        assert_eq!(
            credential_of(Some("xBearer  second third"), cookies),
            Some(Credential::Bearer("second".into()))
        );
        assert_eq!(
            credential_of(Some("Bearer"), cookies),
            Some(Credential::Bearer(String::new()))
        );
        assert_eq!(
            credential_of(Some("Basic abc"), cookies),
            Some(Credential::Mojolicious("m1".into()))
        );
        assert_eq!(
            credential_of(None, [("access_token", "t1"), ("mojolicious", "m1")]),
            Some(Credential::AccessTokenCookie("t1".into()))
        );
        assert_eq!(
            credential_of(None, [("mojolicious", ""), ("access_token", "t1")]),
            Some(Credential::AccessTokenCookie("t1".into()))
        );
        assert_eq!(credential_of(None, [("theme", "dark")]), None);
    }
}
