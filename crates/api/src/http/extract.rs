//! Extractors: the authenticated principal (cookie or Bearer token), the API version of the
//! route, and the request body read as JSON whatever its `Content-Type`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use asyncstatus_auth::{Claims, Principal};
use asyncstatus_domain::Permission;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The name of the session cookie (Traffic Ops').
pub const ACCESS_TOKEN: &str = "access_token";

/// A token refreshed by the sliding-session rule, set as a cookie on the way out, and when it
/// expires (seconds since the epoch).
#[derive(Clone)]
pub struct RefreshedToken(pub String, pub i64);

/// The user behind a request, noted for the access log.
#[derive(Clone)]
pub struct RequestUser(pub Arc<Principal>);

/// An authenticated request. A handler that takes this answers 401 to anyone else.
pub struct Authenticated {
    pub principal: Arc<Principal>,
    pub claims: Arc<Claims>,
}

impl Authenticated {
    /// 403 naming each permission missing.
    pub fn require(&self, needed: &[Permission]) -> Result<(), ApiError> {
        self.principal.require(needed).map_err(Into::into)
    }
}

/// The token of a request: `Authorization: Bearer …` first, else the `access_token` cookie.
/// The flag says whether it came from the cookie.
pub(crate) fn token_of(req: &HttpRequest) -> Option<(String, bool)> {
    if let Some(value) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some((scheme, token)) = value.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                return Some((token.trim().to_owned(), false));
            }
        }
    }
    req.cookie(ACCESS_TOKEN)
        .map(|c| c.value().to_owned())
        .filter(|t| !t.is_empty())
        .map(|t| (t, true))
}

pub fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state is missing"))
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let (token, via_cookie) = token_of(&req).ok_or_else(ApiError::unauthorized)?;
            if via_cookie && crate::http::csrf::guarded(req.method()) {
                crate::http::csrf::refuse_cross_site(&req, &state.settings)?;
            }
            // Verifying the token and the cache are CPU-only; only a miss reads the database.
            let (principal, claims) = match state.auth.authenticate_cached(&token)? {
                (Some(principal), claims) => (principal, claims),
                (None, claims) => {
                    let auth = state.auth.clone();
                    state
                        .db
                        .run(move |_| auth.load(&token, &claims).map(|p| (p, claims)))
                        .await?
                }
            };
            if via_cookie {
                if let Some((fresh, next)) = state.auth.refresh(&claims)? {
                    req.extensions_mut().insert(RefreshedToken(fresh, next.exp));
                }
            }
            req.extensions_mut().insert(RequestUser(principal.clone()));
            Ok(Authenticated { principal, claims })
        })
    }
}

/// The API version a route was reached by (`4.0`, `4.1`, `5.0`), set on each version scope.
#[derive(Debug, Clone, Copy)]
pub struct ApiVersion(pub &'static str);

impl FromRequest for ApiVersion {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.app_data::<ApiVersion>()
                .copied()
                .ok_or_else(|| ApiError::internal("route has no API version")),
        )
    }
}

/// Reads the whole body, refusing more than `limit` bytes with 413 (early, when
/// `Content-Length` already says so), and a body that takes longer than
/// `server.body_timeout` to arrive with 408 (the connection is then closed).
pub async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let timeout = app_state(req)?.settings.server.body_timeout;
    tokio::time::timeout(timeout, read_body_within(req, payload, limit))
        .await
        .unwrap_or_else(|_| {
            tracing::info!("request body passed server.body_timeout; answering 408");
            Err(ApiError::body_timeout(timeout))
        })
}

async fn read_body_within(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(declared) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if declared > limit as u64 {
            return Err(ApiError::payload_too_large(limit));
        }
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a body as JSON into `T`, whatever the `Content-Type` (as Traffic Ops does). It must
/// be an object (a derived struct would also take an array); the derive refuses a known key
/// given twice and ignores unknown keys. An empty body is `T::default()` when `empty_ok`.
pub fn json_body<T: DeserializeOwned + Default>(
    body: &[u8],
    empty_ok: bool,
) -> Result<T, ApiError> {
    if empty_ok && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    // Parsed whole first, as `Value`: unknown keys are skipped by the derive without
    // serde_json's nesting limit, which this keeps.
    if !serde_json::from_slice::<Value>(body)
        .map_err(ApiError::not_json)?
        .is_object()
    {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    Ok(serde_path_to_error::deserialize(
        &mut serde_json::Deserializer::from_slice(body),
    )?)
}
