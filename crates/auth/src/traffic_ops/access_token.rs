//! Traffic Ops' `access_token` (`traffic_ops_golang/login/login.go`, `api/api.go`): an HS256
//! JWT signed with the same secret as the `mojolicious` cookie, whose claims are `exp` (the
//! cookie's expiry) and `mojoCookie` (the whole cookie value). No `sub`, `iat` or `jti`;
//! `iss`/`aud` only when Traffic Ops has `cdni.dcdn_id`, and it does not check them.
//!
//! Only the signature is verified: Traffic Ops does not check `exp`, so neither does this.
//! The inner cookie's `expires` decides, when the caller parses [`super::cookie`] from the
//! returned value.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The cookie's name.
pub const NAME: &str = "access_token";
/// The claim that holds the whole `mojolicious` value.
pub const MOJO_COOKIE_CLAIM: &str = "mojoCookie";

/// Why an access token is refused, or could not be made. Traffic Ops answers every refused
/// token with 401 `unauthorized, please log in.` ([`AccessTokenError::unauthorized_text`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    /// Not an HS256 JWT signed with the secret, or without a string `mojoCookie` claim.
    #[error("invalid access_token: {0}")]
    Invalid(String),
    /// Signing failed.
    #[error("signing an access_token: {0}")]
    Sign(String),
}

impl AccessTokenError {
    /// The text of Traffic Ops' 401 answer.
    pub fn unauthorized_text(&self) -> &'static str {
        super::UNAUTHORIZED_PLEASE_LOG_IN
    }
}

#[derive(Serialize)]
struct OutClaims<'a> {
    exp: i64,
    #[serde(rename = "mojoCookie")]
    mojo_cookie: &'a str,
}

#[derive(Deserialize)]
struct InClaims {
    #[serde(rename = "mojoCookie")]
    mojo_cookie: String,
}

/// The `access_token` for a `mojolicious` value that expires at `exp` (Unix seconds).
pub fn make_access_token(
    mojo_cookie: &str,
    exp: i64,
    secret: &str,
) -> Result<String, AccessTokenError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &OutClaims { exp, mojo_cookie },
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AccessTokenError::Sign(e.to_string()))
}

/// The `mojoCookie` value of a token whose HS256 signature `secret` verifies. `exp`, `nbf`,
/// `iss` and `aud` are not checked, nor required.
pub fn verify_access_token(jwt: &str, secret: &str) -> Result<String, AccessTokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<InClaims>(
        jwt,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map(|data| data.claims.mojo_cookie)
    .map_err(|e| AccessTokenError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    const SECRET: &str = "cdn.conf secrets[0] for tests";
    /// `cookie::make("admin", 1700000000, SECRET)`, a known vector of the cookie module.
    const MOJO: &str = "eyJhdXRoX2RhdGEiOiJhZG1pbiIsImV4cGlyZXMiOjE3MDAwMDAwMDAsImJ5IjoidHJhZmZpY2NvbnRyb2wtZ28tdG9jb29raWUifQ--b0663f56e8b8dc750e1bef6b2ceeccb66e9a56db";

    /// Made once with Python's standard library (b64 = unpadded urlsafe base64), with the
    /// header in the order the jsonwebtoken crate writes it:
    /// `h=b64(b'{"typ":"JWT","alg":"HS256"}'); p=b64(json.dumps({"exp":1700000000,
    /// "mojoCookie":MOJO},separators=(",",":")).encode()); h+"."+p+"."+b64(hmac.new(SECRET,
    /// (h+"."+p).encode(), hashlib.sha256).digest())`.
    const KNOWN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDAsIm1vam9Db29raWUiOiJleUpoZFhSb1gyUmhkR0VpT2lKaFpHMXBiaUlzSW1WNGNHbHlaWE1pT2pFM01EQXdNREF3TURBc0ltSjVJam9pZEhKaFptWnBZMk52Ym5SeWIyd3RaMjh0ZEc5amIyOXJhV1VpZlEtLWIwNjYzZjU2ZThiOGRjNzUwZTFiZWY2YjJjZWVjY2I2NmU5YTU2ZGIifQ.D3IEG-dCzi1xhGZBqi8ggSoequ6HwEPJDSAsxZpLFlE";
    /// As above with header `{"alg":"HS256"}` and claims `{"mojoCookie":MOJO,"exp":1,
    /// "iss":"dcdn","aud":"ucdn"}`: another library's shape, long expired, with CDNi claims.
    const KNOWN_CDNI: &str = "eyJhbGciOiJIUzI1NiJ9.eyJtb2pvQ29va2llIjoiZXlKaGRYUm9YMlJoZEdFaU9pSmhaRzFwYmlJc0ltVjRjR2x5WlhNaU9qRTNNREF3TURBd01EQXNJbUo1SWpvaWRISmhabVpwWTJOdmJuUnliMnd0WjI4dGRHOWpiMjlyYVdVaWZRLS1iMDY2M2Y1NmU4YjhkYzc1MGUxYmVmNmIyY2VlY2NiNjZlOWE1NmRiIiwiZXhwIjoxLCJpc3MiOiJkY2RuIiwiYXVkIjoidWNkbiJ9.FNYKG7-U2VD_QCn31vIzPnupDj0pamEE7a-HMHdchnI";

    #[test]
    fn a_made_token_equals_the_known_vector() {
        assert_eq!(
            make_access_token(MOJO, 1_700_000_000, SECRET).as_deref(),
            Ok(KNOWN)
        );
    }

    #[test]
    fn known_tokens_verify_to_their_cookie_whatever_their_exp() {
        assert_eq!(verify_access_token(KNOWN, SECRET).as_deref(), Ok(MOJO));
        assert_eq!(verify_access_token(KNOWN_CDNI, SECRET).as_deref(), Ok(MOJO));
    }

    #[test]
    fn the_claims_are_exp_and_mojo_cookie_only() {
        let token = make_access_token(MOJO, 42, SECRET).unwrap();
        let claims = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({ "exp": 42, MOJO_COOKIE_CLAIM: MOJO })
        );
    }

    #[test]
    fn another_secret_or_a_tampered_token_is_refused() {
        for bad in [
            verify_access_token(KNOWN, "secrets[1]"),
            verify_access_token(&KNOWN.replace(".D3IE", ".D3IF"), SECRET),
            verify_access_token("", SECRET),
            verify_access_token("not.a.jwt", SECRET),
            verify_access_token(MOJO, SECRET),
        ] {
            match bad {
                Err(e @ AccessTokenError::Invalid(_)) => {
                    assert_eq!(e.unauthorized_text(), "unauthorized, please log in.")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn only_hs256_is_accepted() {
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &OutClaims {
                exp: 1,
                mojo_cookie: MOJO,
            },
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(verify_access_token(&hs512, SECRET).is_err());
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            KNOWN.split('.').nth(1).unwrap()
        );
        assert!(verify_access_token(&unsigned, SECRET).is_err());
    }

    #[test]
    fn a_token_without_a_string_mojo_cookie_is_refused() {
        #[derive(Serialize)]
        struct Other {
            exp: i64,
            #[serde(rename = "mojoCookie")]
            mojo_cookie: i64,
        }
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let header = Header::new(Algorithm::HS256);
        let numeric = jsonwebtoken::encode(
            &header,
            &Other {
                exp: 1,
                mojo_cookie: 7,
            },
            &key,
        )
        .unwrap();
        assert!(verify_access_token(&numeric, SECRET).is_err());
        let missing =
            jsonwebtoken::encode(&header, &serde_json::json!({ "exp": 1 }), &key).unwrap();
        assert!(verify_access_token(&missing, SECRET).is_err());
    }
}
