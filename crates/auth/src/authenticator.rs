//! Login, token authentication and logout against the database.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use asyncstatus_domain::DISALLOWED_ROLE;
use asyncstatus_persistence::{now_micros, Store, UserRecord};

use crate::password::{check_hash, verify_password, DUMMY_HASH};
use std::sync::Arc;

use crate::{AuthError, Claims, LoginThrottle, Principal, ThrottlePolicy, TokenService};

/// What the authenticator is configured with.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Signing secrets: the first signs, all verify.
    pub secrets: Vec<String>,
    pub token_ttl: Duration,
    /// The longest a session (one login and every token refreshed from it) lives.
    pub session_max_age: Duration,
    /// How long a loaded user (role, permissions, not-revoked) is trusted; zero reads the
    /// database on every request.
    pub user_cache_ttl: Duration,
    pub login_max_failures: u32,
    pub login_window: Duration,
    /// Failed logins from one client address across usernames before it is blocked.
    pub login_max_failures_per_address: u32,
    /// The longest block the growing login delay reaches.
    pub login_max_delay: Duration,
}

/// The password check every login makes, whichever table its users are in: the throttle is
/// asked first; `verify(hash, password)` runs on the user's stored hash, or on a dummy one when
/// there is no such user or it has no password, so that every attempt costs one derivation;
/// the user is accepted when the password matches its own hash and `may_log_in` holds.
/// Unknown user, no or wrong password, and a user that may not log in all give
/// `BadCredentials`, and the failure is recorded; a success clears the failures.
#[allow(clippy::too_many_arguments)]
pub(crate) fn checked_login<U>(
    throttle: &LoginThrottle,
    username: &str,
    password: &str,
    addr: Option<IpAddr>,
    find: impl FnOnce() -> Result<Option<U>, asyncstatus_persistence::StoreError>,
    hash_of: impl Fn(&U) -> Option<&str>,
    may_log_in: impl Fn(&U) -> bool,
    verify: impl Fn(&str, &str) -> bool,
) -> Result<U, AuthError> {
    if username.is_empty() || password.is_empty() {
        return Err(AuthError::MissingCredentials);
    }
    let started = Instant::now();
    throttle
        .check(username, addr, started)
        .map_err(|retry_after| AuthError::Throttled { retry_after })?;
    let user = find()?;
    let hash = user.as_ref().and_then(&hash_of);
    let matches = verify(hash.unwrap_or(DUMMY_HASH), password);
    match user {
        Some(user) if matches && hash_of(&user).is_some() && may_log_in(&user) => {
            throttle.record_success(username, addr);
            Ok(user)
        }
        _ => {
            throttle.record_failure(username, addr, started);
            Err(AuthError::BadCredentials)
        }
    }
}

impl AuthSettings {
    /// The login throttle's policy of these settings.
    pub fn throttle_policy(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            max_delay: self.login_max_delay,
            ..ThrottlePolicy::new(
                self.login_max_failures,
                self.login_max_failures_per_address,
                self.login_window,
            )
        }
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    pub token: String,
    pub claims: Claims,
    pub principal: Arc<Principal>,
}

struct Cached {
    principal: Arc<Principal>,
    claims: Arc<Claims>,
    loaded: Instant,
}

/// Cached principals kept before expired ones are swept.
const CACHE_SWEEP_AT: usize = 4096;

/// Logs users in and out and turns tokens into principals.
pub struct Authenticator {
    store: Store,
    tokens: TokenService,
    throttle: LoginThrottle,
    cache_ttl: Duration,
    /// Principals by token, trusted for `cache_ttl`. Keyed by the whole token: the same
    /// string was verified when it was cached, so a hit skips verification (not expiry).
    cache: RwLock<HashMap<String, Cached>>,
}

fn principal_of(user: UserRecord) -> Principal {
    Principal {
        user_id: user.id,
        username: user.username,
        role: user.role,
        permissions: user.permissions,
        rule: crate::AccessRule::Permissions,
    }
}

impl Authenticator {
    pub fn new(store: Store, settings: &AuthSettings) -> Result<Self, AuthError> {
        Ok(Authenticator {
            store,
            tokens: TokenService::new(
                &settings.secrets,
                settings.token_ttl,
                settings.session_max_age,
            )?,
            throttle: LoginThrottle::new(settings.throttle_policy()),
            cache_ttl: settings.user_cache_ttl,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// The token service (lifetime, issuing).
    pub fn tokens(&self) -> &TokenService {
        &self.tokens
    }

    /// Checks a username and password (one scrypt derivation whatever the outcome) and issues
    /// a token. Unknown user, wrong password and a disallowed role all give `BadCredentials`.
    /// `Throttled` when `username` from `addr` may not try now: asked before a login waits
    /// for a derivation slot, so a blocked client takes no place in the queue. (The login
    /// itself asks again.)
    pub fn check_throttle(&self, username: &str, addr: Option<IpAddr>) -> Result<(), AuthError> {
        self.throttle
            .check(username, addr, Instant::now())
            .map_err(|retry_after| AuthError::Throttled { retry_after })
    }

    pub fn login(
        &self,
        username: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<LoggedIn, AuthError> {
        let user = checked_login(
            &self.throttle,
            username,
            password,
            addr,
            || self.store.find_user(username),
            |u| u.password_hash.as_deref(),
            |u| u.role != DISALLOWED_ROLE,
            |hash, password| {
                if let Err(e) = check_hash(hash) {
                    // It matches nothing (and costs one normal derivation, like any failure).
                    tracing::warn!(user = %username, problem = %e, "stored password hash refused");
                }
                verify_password(password, hash)
            },
        )?;
        let now = now_micros();
        self.store.record_login(user.id, now)?;
        let (token, claims) = self.tokens.issue(&user.username, user.id, now)?;
        Ok(LoggedIn {
            token,
            claims,
            principal: Arc::new(principal_of(user)),
        })
    }

    /// The CPU-only part of authenticating a token: the cache, else verification of the
    /// token. `Ok(Some)` on a hit; `Ok(None)` when the database must be read ([`Self::load`]).
    pub fn authenticate_cached(
        &self,
        token: &str,
    ) -> Result<(Option<Arc<Principal>>, Arc<Claims>), AuthError> {
        if !self.cache_ttl.is_zero() {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(token) {
                let fresh = hit.loaded.elapsed() < self.cache_ttl;
                if fresh && hit.claims.exp > chrono::Utc::now().timestamp() {
                    return Ok((Some(hit.principal.clone()), hit.claims.clone()));
                }
            }
        }
        Ok((None, Arc::new(self.tokens.verify(token)?)))
    }

    /// Loads the principal of `token`, whose verified claims are `claims`, from the database
    /// (session revocation, user and its id, role, permissions) and caches it: the session
    /// must not be revoked, and its user must exist (the same account: same id) with a role
    /// that may log in. Loaded users are trusted for `user_cache_ttl`.
    pub fn load(&self, token: &str, claims: &Arc<Claims>) -> Result<Arc<Principal>, AuthError> {
        if self.store.is_session_revoked(&claims.sid)? {
            return Err(AuthError::Unauthorized);
        }
        let user = self
            .store
            .find_user(&claims.sub)?
            .ok_or(AuthError::Unauthorized)?;
        // A user removed and added again under the same name is another account.
        if user.id != claims.uid || user.role == DISALLOWED_ROLE {
            return Err(AuthError::Unauthorized);
        }
        let principal = Arc::new(principal_of(user));
        if !self.cache_ttl.is_zero() {
            let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_SWEEP_AT {
                let ttl = self.cache_ttl;
                cache.retain(|_, c| c.loaded.elapsed() < ttl);
            }
            cache.insert(
                token.to_owned(),
                Cached {
                    principal: principal.clone(),
                    claims: claims.clone(),
                    loaded: Instant::now(),
                },
            );
        }
        Ok(principal)
    }

    /// Revokes the token's whole session (every token refreshed from the same login): from
    /// now on its tokens are refused, by this replica at once, by every other one once its
    /// cache entries, if any, expire (`auth.user_cache_ttl`).
    pub fn logout(&self, claims: &Claims) -> Result<(), AuthError> {
        let session_end = chrono::DateTime::from_timestamp(self.tokens.session_end(claims.sst), 0)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        self.store.revoke_session(&claims.sid, session_end)?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, cached| cached.claims.sid != claims.sid);
        Ok(())
    }

    /// The session's next token when `claims` has passed half its lifetime and the new one
    /// would live longer (no token outlives its session's `auth.session_max_age`).
    pub fn refresh(&self, claims: &Claims) -> Result<Option<(String, Claims)>, AuthError> {
        let now = now_micros();
        if !claims.past_half_life(now) {
            return Ok(None);
        }
        let (token, next) = self.tokens.reissue(claims, now)?;
        Ok((next.exp > claims.exp).then_some((token, next)))
    }
}
