//! HS256 JSON Web Tokens: `sub` (username), `iat`, `exp`, `jti`. Signed with the first secret,
//! accepted with any (rotation). No other algorithm is accepted, `none` included.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AuthError;

/// The claims of an asyncstatus token. All four are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// A unique id, used to revoke the token.
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
}

impl TokenService {
    /// `secrets` must not be empty: the first signs, all verify.
    pub fn new(secrets: &[String], ttl: std::time::Duration) -> Result<Self, AuthError> {
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
        })
    }

    /// The token lifetime.
    pub fn ttl(&self) -> chrono::Duration {
        self.ttl
    }

    /// A new token for `username`, issued `now`.
    pub fn issue(&self, username: &str, now: DateTime<Utc>) -> Result<(String, Claims), AuthError> {
        let claims = Claims {
            sub: username.to_owned(),
            iat: now.timestamp(),
            exp: (now + self.ttl).timestamp(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.signing)
            .map_err(|e| AuthError::Issue(e.to_string()))?;
        Ok((token, claims))
    }

    /// The claims of a token signed with one of our secrets, with HS256, not expired.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        for key in &self.verifying {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return Ok(data.claims),
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
        TokenService::new(&secrets, std::time::Duration::from_secs(3600)).unwrap()
    }

    #[test]
    fn issued_tokens_verify() {
        let svc = service(&["one"]);
        let (token, claims) = svc.issue("admin", Utc::now()).unwrap();
        assert_eq!(svc.verify(&token).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.jti.len(), 32);
    }

    #[test]
    fn rotation_signs_with_the_first_and_accepts_any() {
        let old = service(&["old"]);
        let (old_token, _) = old.issue("admin", Utc::now()).unwrap();
        let rotated = service(&["new", "old"]);
        assert!(rotated.verify(&old_token).is_ok());
        let (new_token, _) = rotated.issue("admin", Utc::now()).unwrap();
        assert!(service(&["new"]).verify(&new_token).is_ok());
        assert!(old.verify(&new_token).is_err());
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let svc = service(&["s"]);
        let (expired, _) = svc
            .issue("admin", Utc::now() - chrono::Duration::seconds(3601))
            .unwrap();
        assert!(svc.verify(&expired).is_err(), "expired");
        let (token, _) = svc.issue("admin", Utc::now()).unwrap();
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
            iat: 1000,
            exp: 2000,
            jti: "j".into(),
        };
        let at = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert!(!claims.past_half_life(at(1499)));
        assert!(claims.past_half_life(at(1500)));
    }
}
