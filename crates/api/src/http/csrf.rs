//! Cross-site request refusal for cookie sessions.
//!
//! A browser attaches the `access_token` cookie to requests another site makes it send (a
//! form, or `fetch` with a `text/plain` body, which needs no CORS preflight), and `SameSite=Lax`
//! does not stop every case (same-site subdomains, top-level navigations). So a
//! cookie-authenticated `POST`/`PUT`/`DELETE`, and every login (login CSRF: a victim logged in
//! to the attacker's account), is refused with 403 when
//!
//! - `Sec-Fetch-Site` is `cross-site` or `same-site` (every current browser sends it), or
//! - `Origin` is present and is neither this service's own origin (see
//!   [`client::own_origin`]) nor in `cors.allowed_origins`.
//!
//! Requests with neither header (curl, scripts, the Traffic Ops clients) and Bearer requests
//! pass: a browser cannot be made to send an `Authorization` header to another site.

use actix_web::http::header::{HeaderName, ORIGIN};
use actix_web::http::{Method, StatusCode};
use actix_web::HttpRequest;

use crate::http::client;
use crate::http::error::ApiError;
use crate::settings::Settings;

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Whether the cross-site rule applies to a request with this method.
pub fn guarded(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::DELETE)
}

/// 403 when the request comes from another site (see the module doc).
pub fn refuse_cross_site(req: &HttpRequest, settings: &Settings) -> Result<(), ApiError> {
    let headers = req.headers();
    if let Some(site) = headers.get(SEC_FETCH_SITE).and_then(|v| v.to_str().ok()) {
        let site = site.trim().to_ascii_lowercase();
        if site == "cross-site" || site == "same-site" {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-site request refused: Sec-Fetch-Site is {site}; \
                     a session cookie works only from this service's own pages"
                ),
            ));
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let text = origin.to_str().unwrap_or("(not text)");
    let canonical = client::canonical_origin(text);
    let ours = client::own_origin(req, settings);
    let allowed = canonical.as_ref().is_some_and(|origin| {
        Some(origin) == ours.as_ref() || settings.cors.allowed_origins.contains(origin)
    });
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "cross-site request refused: Origin {text} is neither this service's origin \
                 nor in cors.allowed_origins"
            ),
        ))
    }
}
