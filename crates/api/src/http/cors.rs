//! CORS for the origins in `cors.allowed_origins`, and for no others. (Written here rather than
//! taken from actix-cors, which answers a disallowed origin with a plain-text 400; we add no
//! CORS headers instead, which is all a browser needs to refuse, and keep every answer ours.)

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use crate::state::AppState;

const METHODS: &str = "GET, POST, PUT, DELETE";
const REQUEST_HEADERS: &str =
    "Authorization, Content-Type, Prefer, If-None-Match, If-Modified-Since, Idempotency-Key";
const EXPOSED: &str =
    "Location, ETag, Last-Modified, Retry-After, Preference-Applied, Whole-Content-SHA512";

/// The request's `Origin` when it is one of the allowed origins.
fn allowed_origin(req: &ServiceRequest) -> Option<HeaderValue> {
    let origin = req.headers().get(ORIGIN)?;
    let state = req.app_data::<web::Data<AppState>>()?;
    let origin_text = origin.to_str().ok()?;
    state
        .settings
        .cors
        .allowed_origins
        .iter()
        .any(|o| o == origin_text)
        .then(|| origin.clone())
}

/// Answers preflights from allowed origins and adds CORS headers to their other answers.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let configured = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| !state.settings.cors.allowed_origins.is_empty());
    let Some(origin) = allowed_origin(&req) else {
        let mut res = next.call(req).await?;
        if configured {
            // The answer depends on Origin whenever CORS is on: a cache must not hand an
            // answer without CORS headers to an allowed origin, or the other way round.
            res.headers_mut()
                .append(VARY, HeaderValue::from_static("Origin"));
        }
        return Ok(res.map_into_left_body());
    };
    if req.method() == Method::OPTIONS && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    {
        let preflight = HttpResponse::NoContent()
            .insert_header((ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((ACCESS_CONTROL_ALLOW_METHODS, METHODS))
            .insert_header((ACCESS_CONTROL_ALLOW_HEADERS, REQUEST_HEADERS))
            .insert_header((ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"))
            .insert_header((ACCESS_CONTROL_MAX_AGE, "600"))
            .insert_header((VARY, "Origin"))
            .finish();
        return Ok(req.into_response(preflight).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    headers.append(VARY, HeaderValue::from_static("Origin"));
    Ok(res.map_into_left_body())
}
