//! HS256 JSON Web Tokens: `sub` (username), `uid` (the user's id), `sid` and `sst` (the
//! session's id and start), `iat`, `exp`, `jti`. Signed with the first secret, accepted with
//! any (rotation). No other algorithm is accepted, `none` included.
//!
//! A login starts a session; a refreshed token keeps the session's id and start, and no token
//! of a session expires later than its start + `auth.session_max_age`.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AuthError;

/// The claims of an asyncstatus token. All seven are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// The user's id: a token of a removed user does not pass to a new user of that name.
    pub uid: i64,
    /// The session's id: shared by every token refreshed from one login, revoked at logout.
    pub sid: String,
    /// The session's start (the login), seconds since the epoch.
    pub sst: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// A unique id of this token.
    pub jti: String,
}

impl Claims {
    /// When the token expires.
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// True once more than half the token's lifetime has passed (the sliding-session rule).
    pub fn past_half_life(&self, now: DateTime<Utc>) -> bool {
        let half = self.iat + (self.exp - self.iat) / 2;
        now.timestamp() >= half
    }
}

/// Issues and verifies tokens.
pub struct TokenService {
    signing: EncodingKey,
    verifying: Vec<DecodingKey>,
    validation: Validation,
    ttl: chrono::Duration,
    session_max_age: chrono::Duration,
}

impl TokenService {
    /// `secrets` must not be empty: the first signs, all verify. Tokens live `ttl`, sessions
    /// at most `session_max_age`.
    pub fn new(
        secrets: &[String],
        ttl: std::time::Duration,
        session_max_age: std::time::Duration,
    ) -> Result<Self, AuthError> {
        let first = secrets
            .first()
            .ok_or_else(|| AuthError::Issue("at least one auth secret is required".into()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(TokenService {
            signing: EncodingKey::from_secret(first.as_bytes()),
            verifying: secrets
                .iter()
                .map(|s| DecodingKey::from_secret(s.as_bytes()))
                .collect(),
            validation,
            ttl: chrono::Duration::from_std(ttl)
                .map_err(|_| AuthError::Issue("auth.token_ttl is too long".into()))?,
            session_max_age: chrono::Duration::from_std(session_max_age)
                .map_err(|_| AuthError::Issue("auth.session_max_age is too long".into()))?,
        })
    }

    /// The token lifetime.
    pub fn ttl(&self) -> chrono::Duration {
        self.ttl
    }

    /// The first token of a new session of user `user_id` named `username`, issued `now`.
    pub fn issue(
        &self,
        username: &str,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(String, Claims), AuthError> {
        let start = now.timestamp();
        self.sign(Claims {
            sub: username.to_owned(),
            uid: user_id,
            sid: uuid::Uuid::new_v4().simple().to_string(),
            sst: start,
            iat: start,
            exp: self.expiry(start, start),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// The next token of the session of `claims`, issued `now`: same user and session, a new
    /// `jti`, and an `exp` that never passes the session's start + `auth.session_max_age`.
    pub fn reissue(
        &self,
        claims: &Claims,
        now: DateTime<Utc>,
    ) -> Result<(String, Claims), AuthError> {
        let iat = now.timestamp();
        self.sign(Claims {
            sub: claims.sub.clone(),
            uid: claims.uid,
            sid: claims.sid.clone(),
            sst: claims.sst,
            iat,
            exp: self.expiry(claims.sst, iat),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// `iat + ttl`, capped at the end of the session started at `start`.
    fn expiry(&self, start: i64, iat: i64) -> i64 {
        let by_ttl = iat.saturating_add(self.ttl.num_seconds());
        by_ttl.min(self.session_end(start))
    }

    /// When the session started at `start` ends.
    pub fn session_end(&self, start: i64) -> i64 {
        start.saturating_add(self.session_max_age.num_seconds())
    }

    fn sign(&self, claims: Claims) -> Result<(String, Claims), AuthError> {
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.signing)
            .map_err(|e| AuthError::Issue(e.to_string()))?;
        Ok((token, claims))
    }

    /// The claims of a token signed with one of our secrets, with HS256, not expired, of a
    /// session that has not passed `auth.session_max_age`.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        for key in &self.verifying {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => {
                    let claims = data.claims;
                    let now = Utc::now().timestamp();
                    if claims.sst > claims.iat || now >= self.session_end(claims.sst) {
                        return Err(AuthError::Unauthorized);
                    }
                    return Ok(claims);
                }
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    continue
                }
                Err(_) => return Err(AuthError::Unauthorized),
            }
        }
        Err(AuthError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn service(secrets: &[&str]) -> TokenService {
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        TokenService::new(
            &secrets,
            std::time::Duration::from_secs(3600),
            std::time::Duration::from_secs(3 * 3600),
        )
        .unwrap()
    }

    #[test]
    fn issued_tokens_verify() {
        let svc = service(&["one"]);
        let (token, claims) = svc.issue("admin", 1, Utc::now()).unwrap();
        assert_eq!(svc.verify(&token).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.jti.len(), 32);
    }

    #[test]
    fn rotation_signs_with_the_first_and_accepts_any() {
        let old = service(&["old"]);
        let (old_token, _) = old.issue("admin", 1, Utc::now()).unwrap();
        let rotated = service(&["new", "old"]);
        assert!(rotated.verify(&old_token).is_ok());
        let (new_token, _) = rotated.issue("admin", 1, Utc::now()).unwrap();
        assert!(service(&["new"]).verify(&new_token).is_ok());
        assert!(old.verify(&new_token).is_err());
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let svc = service(&["s"]);
        let (expired, _) = svc
            .issue("admin", 1, Utc::now() - chrono::Duration::seconds(3601))
            .unwrap();
        assert!(svc.verify(&expired).is_err(), "expired");
        let (token, _) = svc.issue("admin", 1, Utc::now()).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"sub":"root","iat":0,"exp":i64::MAX/2,"jti":"x"}).to_string(),
        );
        parts[1] = forged;
        assert!(svc.verify(&parts.join(".")).is_err(), "tampered payload");
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert!(svc.verify(&unsigned).is_err(), "alg none");
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims {
                sub: "admin".into(),
                uid: 1,
                sid: "s".into(),
                sst: Utc::now().timestamp(),
                iat: Utc::now().timestamp(),
                exp: Utc::now().timestamp() + 60,
                jti: "x".into(),
            },
            &EncodingKey::from_secret(b"s"),
        )
        .unwrap();
        assert!(svc.verify(&hs512).is_err(), "HS512 with the right secret");
        for junk in ["", "a.b.c", "not a token", "...."] {
            assert!(svc.verify(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn half_life() {
        let claims = Claims {
            sub: "a".into(),
            uid: 1,
            sid: "s".into(),
            sst: 1000,
            iat: 1000,
            exp: 2000,
            jti: "j".into(),
        };
        let at = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert!(!claims.past_half_life(at(1499)));
        assert!(claims.past_half_life(at(1500)));
    }

    #[test]
    fn a_reissued_token_keeps_its_session_and_never_outlives_it() {
        let svc = service(&["s"]);
        let start = Utc::now() - chrono::Duration::seconds(2 * 3600 + 1800);
        let (_, first) = svc.issue("admin", 7, start).unwrap();
        let (token, next) = svc.reissue(&first, Utc::now()).unwrap();
        assert_eq!(
            (next.sid.as_str(), next.sst, next.uid),
            (first.sid.as_str(), first.sst, 7)
        );
        assert_ne!(next.jti, first.jti);
        assert_eq!(
            next.exp,
            first.sst + 3 * 3600,
            "capped at the session's end"
        );
        assert_eq!(svc.verify(&token).unwrap(), next);
        let late = Claims {
            sst: Utc::now().timestamp() - 3 * 3600,
            ..first
        };
        let (token, _) = svc
            .sign(Claims {
                exp: Utc::now().timestamp() + 60,
                ..late
            })
            .unwrap();
        assert!(svc.verify(&token).is_err(), "a session past its max age");
    }
}
