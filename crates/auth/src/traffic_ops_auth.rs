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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use asyncstatus_domain::DISALLOWED_ROLE;
use asyncstatus_persistence::{Store, TrafficOpsUser};
use secrecy::{ExposeSecret, SecretString};

use crate::password::DUMMY_HASH;
use crate::traffic_ops::{
    access_token, cookie, make_access_token, verify_traffic_ops_password,
    UNAUTHORIZED_PLEASE_LOG_IN,
};
use crate::{AccessRule, AuthError, LoginThrottle, Principal};

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

/// Every session credential of a request (its Bearer token and each `access_token` and
/// `mojolicious` cookie), for a logout to refuse them all.
pub fn all_credentials_of<'a>(
    authorization: Option<&str>,
    cookies: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Credential> {
    let bearer = authorization
        .filter(|h| h.contains("Bearer"))
        .and_then(|h| h.split_whitespace().nth(1))
        .map(|jwt| Credential::Bearer(jwt.to_owned()));
    bearer
        .into_iter()
        .chain(cookies.into_iter().filter_map(|(name, value)| match name {
            _ if value.is_empty() => None,
            access_token::NAME => Some(Credential::AccessTokenCookie(value.to_owned())),
            cookie::NAME => Some(Credential::Mojolicious(value.to_owned())),
            _ => None,
        }))
        .collect()
}

/// A verified session, before its user is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The username the cookie names.
    pub username: String,
    /// The `mojolicious` value verified (the one inside an access token, for one), as
    /// Traffic Ops makes it for its user and expiry (one spelling for every spelling of its
    /// signature that verifies).
    pub mojolicious: String,
    /// The access token the request carried, if that was its credential.
    pub access_token: Option<String>,
    /// When the verified `mojolicious` value expires (Unix seconds).
    pub expires: i64,
}

/// An authenticated request.
#[derive(Debug, Clone)]
pub struct TrafficOpsSession {
    pub principal: Arc<Principal>,
    pub verified: Verified,
    /// The digests of the user's revoked cookies (see [`TrafficOpsAuthenticator::cookie_for`]).
    pub revoked: Arc<[String]>,
}

/// A login's cookies: the `mojolicious` value, its `access_token`, and when both expire.
#[derive(Debug, Clone)]
pub struct TrafficOpsLogin {
    pub mojolicious: String,
    pub access_token: String,
    pub expires: i64,
    pub principal: Arc<Principal>,
}

struct Cached {
    principal: Arc<Principal>,
    /// The digests of the user's revoked cookies when it was read.
    revoked: Arc<[String]>,
    loaded: Instant,
}

/// The digest a revoked cookie is kept as: the hex SHA-256 of its value.
pub fn cookie_digest(mojolicious: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(mojolicious.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether the verified cookie is among the user's `revoked` digests (no digest is computed
/// for a user who never logged out here: the common case, on every request).
fn is_revoked(revoked: &[String], verified: &Verified) -> bool {
    !revoked.is_empty() && revoked.contains(&cookie_digest(&verified.mojolicious))
}

/// Cached principals kept before expired ones are swept.
const CACHE_SWEEP_AT: usize = 4096;

/// Authenticates requests by Traffic Ops' sessions against its database.
pub struct TrafficOpsAuthenticator {
    store: Store,
    secret: SecretString,
    role_based: bool,
    throttle: LoginThrottle,
    cache_ttl: Duration,
    /// Principals by username (and when each user last logged out here), trusted for
    /// `cache_ttl` (as Traffic Ops' own
    /// `user_cache_refresh_interval_sec` serves users from memory). By username, not by
    /// cookie: every answer issues a new cookie, so a cache by cookie would grow with the
    /// request rate; by username it is bounded by Traffic Ops' users.
    cache: RwLock<Cache>,
}

#[derive(Default)]
struct Cache {
    users: HashMap<String, Cached>,
    /// When each user's latest logout here committed: a user read that started before it
    /// may hold the revocations of before it, and is not cached but read again.
    logouts: HashMap<String, Instant>,
}

impl TrafficOpsAuthenticator {
    /// `secret` is Traffic Ops' `secrets[0]`; `role_based` its `role_based_permissions`;
    /// users read are trusted for `cache_ttl` (zero: read on every request).
    pub fn new(
        store: Store,
        secret: SecretString,
        role_based: bool,
        throttle: LoginThrottle,
        cache_ttl: Duration,
    ) -> Self {
        TrafficOpsAuthenticator {
            store,
            secret,
            role_based,
            throttle,
            cache_ttl,
            cache: RwLock::new(Cache::default()),
        }
    }

    /// `Throttled` when `username` from `addr` may not try a login now (asked before a login
    /// waits for a derivation slot).
    pub fn check_throttle(&self, username: &str, addr: Option<IpAddr>) -> Result<(), AuthError> {
        self.throttle
            .check(username, addr, Instant::now())
            .map_err(|retry_after| AuthError::Throttled { retry_after })
    }

    /// Checks a password against the user's Traffic Ops hash (`SCRYPT:…`, or a legacy SHA-1;
    /// one derivation whatever the outcome) and makes the login's cookies in Traffic Ops'
    /// formats, which Traffic Ops accepts too. Unknown user, no or wrong password, and the
    /// `disallowed` role all give `BadCredentials` (`Invalid username or password.`).
    /// `tm_user.last_authenticated` is not written: Traffic Ops' tables are read only here.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        addr: Option<IpAddr>,
        now: i64,
    ) -> Result<TrafficOpsLogin, AuthError> {
        let user = crate::authenticator::checked_login(
            &self.throttle,
            username,
            password,
            addr,
            || self.store.traffic_ops_user(username),
            |u| u.local_passwd.as_deref(),
            |u| u.role != DISALLOWED_ROLE,
            |hash, password| {
                let matches = verify_traffic_ops_password(hash, password).unwrap_or_else(|e| {
                    tracing::warn!(user = %username, problem = %e, "stored Traffic Ops password hash refused");
                    false
                });
                // Every failure costs one derivation: a legacy SHA-1 hash, or one refused,
                // costs none of its own, and would tell such accounts apart by their speed.
                if !matches && !hash.starts_with("SCRYPT:") {
                    let _ = verify_traffic_ops_password(DUMMY_HASH, password);
                }
                matches
            },
        )?;
        let (mojolicious, expires) =
            self.cookie_for(&user.username, now, LOGIN_SECONDS, &user.revoked);
        let access_token = make_access_token(&mojolicious, expires, self.secret.expose_secret())
            .map_err(|e| AuthError::Issue(e.to_string()))?;
        Ok(TrafficOpsLogin {
            mojolicious,
            access_token,
            expires,
            principal: Arc::new(self.principal_of(user)),
        })
    }

    /// Logs sessions out at asyncstatus: each verified credential's `mojolicious` value (for
    /// an access token, the one inside it) is refused here from now on, until it expires.
    /// Traffic Ops' cookies name no session, so a value refreshed earlier and not presented
    /// stays valid (for at most the hour of its refresh, unless used again), as every value
    /// stays valid at Traffic Ops, which cannot be told.
    pub fn logout(&self, credentials: &[Verified]) -> Result<(), AuthError> {
        for verified in credentials {
            let expires = chrono::DateTime::from_timestamp(verified.expires, 0)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
            self.store.revoke_traffic_ops_cookie(
                &verified.username,
                &cookie_digest(&verified.mojolicious),
                expires,
            )?;
            let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
            cache.users.remove(&verified.username);
            cache
                .logouts
                .insert(verified.username.clone(), Instant::now());
        }
        Ok(())
    }

    /// Checks `credential` at `now` (Unix seconds), CPU only. The error's text is Traffic
    /// Ops' 401 text.
    pub fn verify(&self, credential: &Credential, now: i64) -> Result<Verified, AuthError> {
        let secret = self.secret.expose_secret();
        let (presented, token) = match credential {
            Credential::Bearer(jwt) | Credential::AccessTokenCookie(jwt) => {
                let inner = access_token::verify_access_token(jwt, secret).map_err(|e| {
                    tracing::debug!(error = %e, "access_token refused");
                    AuthError::SessionRefused(e.unauthorized_text().to_owned())
                })?;
                (inner, Some(jwt.clone()))
            }
            Credential::Mojolicious(value) => (value.clone(), None),
        };
        let parsed = cookie::parse(&presented, secret, now).map_err(|e| {
            tracing::debug!(error = %e, "mojolicious cookie refused");
            AuthError::SessionRefused(e.unauthorized_text())
        })?;
        // The value made for this user and expiry: spellings of one signature (its hex in
        // either case, anything before the last dash) verify alike and are one cookie, which a
        // logout refuses whichever was presented.
        let canonical = cookie::make(&parsed.auth_data, parsed.expires, secret);
        Ok(Verified {
            username: parsed.auth_data,
            mojolicious: canonical,
            access_token: token,
            expires: parsed.expires,
        })
    }

    /// The principal of a verified session from the cache, if it was read within
    /// `cache_ttl` (CPU only).
    pub fn cached(&self, verified: Verified) -> Result<TrafficOpsSession, Verified> {
        if self.cache_ttl.is_zero() {
            return Err(verified);
        }
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let hit = cache
            .users
            .get(&verified.username)
            .filter(|hit| hit.loaded.elapsed() < self.cache_ttl)
            // A revoked cookie is refused by `load`, which reads the database.
            .filter(|hit| !is_revoked(&hit.revoked, &verified));
        match hit {
            Some(hit) => Ok(TrafficOpsSession {
                principal: hit.principal.clone(),
                revoked: hit.revoked.clone(),
                verified,
            }),
            None => Err(verified),
        }
    }

    /// Reads the user of a verified session: it must exist and have a role, and its cookie
    /// must not predate a logout at asyncstatus. Cached for `cache_ttl`.
    pub fn load(&self, verified: Verified) -> Result<TrafficOpsSession, AuthError> {
        loop {
            let started = Instant::now();
            let mut user = self
                .store
                .traffic_ops_user(&verified.username)?
                .ok_or_else(|| AuthError::SessionRefused(USER_NOT_FOUND.to_owned()))?;
            if is_revoked(&user.revoked, &verified) {
                return Err(no_credential());
            }
            let revoked: Arc<[String]> = std::mem::take(&mut user.revoked).into();
            let principal = Arc::new(self.principal_of(user));
            // Checked and cached under the lock a logout takes to note itself, so that a read
            // from before a logout is never cached after it.
            let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
            if cache
                .logouts
                .get(&verified.username)
                .is_some_and(|at| *at >= started)
            {
                continue;
            }
            if !self.cache_ttl.is_zero() {
                let ttl = self.cache_ttl;
                if cache.users.len() >= CACHE_SWEEP_AT {
                    cache.users.retain(|_, c| c.loaded.elapsed() < ttl);
                }
                if cache.logouts.len() >= CACHE_SWEEP_AT {
                    cache.logouts.retain(|_, at| at.elapsed() < ttl);
                }
                cache.users.insert(
                    verified.username.clone(),
                    Cached {
                        principal: principal.clone(),
                        revoked: revoked.clone(),
                        loaded: Instant::now(),
                    },
                );
            }
            return Ok(TrafficOpsSession {
                principal,
                revoked,
                verified,
            });
        }
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

    /// A `mojolicious` value for `username` that expires `lifetime` seconds after `now`, or a
    /// second or more later when that value was revoked (`revoked`, the user's revoked
    /// digests): a cookie is only its user and expiry, so a login (or refresh) in the same
    /// second as a logout would otherwise make the very value the logout refused.
    pub fn cookie_for(
        &self,
        username: &str,
        now: i64,
        lifetime: i64,
        revoked: &[String],
    ) -> (String, i64) {
        let mut expires = now.saturating_add(lifetime);
        loop {
            let value = cookie::make(username, expires, self.secret.expose_secret());
            if !revoked.contains(&cookie_digest(&value)) {
                return (value, expires);
            }
            expires = expires.saturating_add(1);
        }
    }

    /// The access token Traffic Ops re-signs on each answer to a request that carried one,
    /// with the same claims (the old `mojoCookie`, `exp`, and `iss`/`aud` when present) and
    /// the same key: the token the request carried, whose signature was verified, so the
    /// token never slides.
    pub fn resign(&self, verified: &Verified) -> Option<String> {
        verified.access_token.clone()
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
