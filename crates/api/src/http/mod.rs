//! The HTTP surface: version routing (`/api/{4.0,4.1,5.0}`, 501 for any other version), 404
//! for unknown paths, 405 with `Allow`, and the middleware for Traffic Ops' headers, gzip, the
//! sliding session cookie and the access log.

pub mod client;
pub mod conditional;
pub mod cors;
pub mod csrf;
pub mod error;
pub mod events;
pub mod extract;
pub mod jobs;
pub mod openapi;
pub mod ops;
pub mod response;
pub mod traffic_ops;
pub mod users;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use actix_web::http::StatusCode;
use actix_web::middleware::{Compress, DefaultHeaders, Next};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use tracing::Instrument;

use crate::http::error::ApiError;
use crate::http::extract::{ApiVersion, RefreshedToken, RequestUser};
use crate::state::AppState;
use asyncstatus_persistence::Layout;

/// The API versions served; all run the same handlers.
pub const API_VERSIONS: [&str; 3] = ["4.0", "4.1", "5.0"];

/// `X-Server-Name: asyncstatus/<version>`.
pub const SERVER_NAME: &str = concat!("asyncstatus/", env!("CARGO_PKG_VERSION"));

/// A resource whose other methods answer 405 with `Allow`.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::method_not_allowed(req.method().as_str(), allow))
    }))
}

/// The routes of one API version.
fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/ping", "GET").route(web::get().to(ops::ping)))
        .service(resource("/user/login", "POST").route(web::post().to(users::login)))
        .service(resource("/user/logout", "POST").route(web::post().to(users::logout)))
        .service(resource("/user/current", "GET").route(web::get().to(users::current)))
        .service(
            resource("/async_status", "GET, POST")
                .route(web::get().to(jobs::list))
                .route(web::post().to(jobs::create)),
        )
        // Before `{id}`, which would take "events" for an id.
        .service(resource("/async_status/events", "GET").route(web::get().to(events::events)))
        .service(
            resource("/async_status/{id}", "GET, PUT, DELETE")
                .route(web::get().to(jobs::get))
                .route(web::put().to(jobs::update))
                .route(web::delete().to(jobs::delete)),
        )
        .service(resource("/async_status/{id}/cancel", "POST").route(web::post().to(jobs::cancel)));
}

async fn no_such_path(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::no_such_path(req.path()))
}

async fn version_not_implemented() -> Result<HttpResponse, ApiError> {
    Err(ApiError::version_not_implemented())
}

/// The routes of one API version with `database.layout = "traffic_ops"`: Traffic Ops' job
/// route, the producer API and logins on its tables; the rest of asyncstatus' surface answers
/// 501 for now.
fn traffic_ops_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/ping", "GET").route(web::get().to(ops::ping)))
        .service(resource("/user/login", "POST").route(web::post().to(traffic_ops::login)))
        .service(resource("/user/logout", "POST").route(web::post().to(traffic_ops::logout)))
        .service(resource("/user/current", "GET").route(web::get().to(traffic_ops::not_served)))
        .service(
            resource("/async_status", "GET, POST")
                .route(web::get().to(traffic_ops::list))
                .route(web::post().to(traffic_ops::create)),
        )
        .service(
            resource("/async_status/events", "GET").route(web::get().to(traffic_ops::not_served)),
        )
        .service(
            resource("/async_status/{id}", "GET, PUT, DELETE")
                .route(web::get().to(traffic_ops::get))
                .route(web::put().to(traffic_ops::update))
                .route(web::delete().to(traffic_ops::delete)),
        )
        .service(
            resource("/async_status/{id}/cancel", "POST")
                .route(web::post().to(traffic_ops::not_served)),
        );
}

/// Every route of the service, for the database layout in force; `traffic_ops_headers` adds
/// Traffic Ops' own headers to the API's answers.
pub fn configure(cfg: &mut web::ServiceConfig, layout: Layout, traffic_ops_headers: bool) {
    cfg.app_data(web::PathConfig::default().error_handler(error::path_error));
    for version in API_VERSIONS {
        let routes = match layout {
            Layout::Asyncstatus => api_routes,
            Layout::TrafficOps => traffic_ops_routes,
        };
        cfg.service(
            web::scope(&format!("/api/{version}"))
                .wrap(actix_web::middleware::Condition::new(
                    traffic_ops_headers,
                    traffic_ops_header_defaults(),
                ))
                .app_data(ApiVersion(version))
                .configure(routes)
                .default_service(web::to(no_such_path)),
        );
    }
    cfg.service(resource("/api/openapi.json", "GET").route(web::get().to(ops::openapi)))
        .service(web::scope("/api").default_service(web::to(version_not_implemented)))
        .service(resource("/healthz", "GET").route(web::get().to(ops::healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(ops::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(ops::metrics)))
        .default_service(web::to(no_such_path));
}

/// `X-Request-Id`: taken from the request when it is a short token, else made here; echoed
/// on the answer, written in the access log, and a field of the request's span (every line
/// logged while the request is handled carries it). Hand-written: tracing-actix-web makes its
/// own ids and does not take the one a proxy or client sends.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn request_id(req: &ServiceRequest) -> String {
    let given = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
    match given {
        Some(id) => id.to_owned(),
        None => format!("{:016x}", rand::random::<u64>()),
    }
}

/// Sets a refreshed session cookie (sliding session), records the request's metrics and
/// writes the access log line.
async fn session_and_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let request_id = request_id(&req);
    let client = req.app_data::<web::Data<AppState>>().and_then(|state| {
        client::client_addr(req.request(), &state.settings.server.trusted_proxies)
    });
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut res = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    let traffic_ops_api = path.starts_with("/api/")
        && res
            .request()
            .app_data::<web::Data<AppState>>()
            .is_some_and(|state| {
                state.settings.database.layout == Layout::TrafficOps
                    && state.settings.cors.allowed_origins.is_empty()
            });
    if traffic_ops_api {
        vary_accept_encoding(res.headers_mut());
    }
    let to_refresh = res
        .request()
        .extensions()
        .get::<traffic_ops::TrafficOpsRefresh>()
        .cloned();
    // Not on a 401: Traffic Ops refreshes only a session it accepted.
    if let Some(refresh) = to_refresh.filter(|_| res.status() != StatusCode::UNAUTHORIZED) {
        for cookie in traffic_ops::refresh_cookies(&refresh) {
            if let Err(e) = res.response_mut().add_cookie(&cookie) {
                tracing::warn!(error = %e, "setting a refreshed Traffic Ops cookie");
            }
        }
    }
    let refreshed = res.request().extensions().get::<RefreshedToken>().cloned();
    if let Some(RefreshedToken(token, exp)) = refreshed {
        if let Some(state) = res.request().app_data::<web::Data<AppState>>() {
            // The cookie lives as long as its token (capped by the session's end).
            let cookie = users::token_cookie(
                token,
                chrono::Duration::seconds(exp - chrono::Utc::now().timestamp()),
                state.settings.cookie_secure(),
            );
            if let Err(e) = res.response_mut().add_cookie(&cookie) {
                tracing::warn!(error = %e, "setting a refreshed session cookie");
            }
        }
    }
    let elapsed = started.elapsed();
    let route = res.request().match_pattern();
    if let Some(state) = res.request().app_data::<web::Data<AppState>>() {
        state.metrics.observe(
            route.as_deref().unwrap_or("unmatched"),
            method.as_str(),
            res.status().as_u16(),
            elapsed.as_secs_f64(),
        );
    }
    let user = res.request().extensions().get::<RequestUser>().cloned();
    if user.is_some() && !res.headers().contains_key(CACHE_CONTROL) {
        // An answer for one user: no shared cache may keep it, and the browser revalidates.
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    }
    let user = user.as_ref().map_or("", |u| u.0.username.as_str());
    let client = client.map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status = res.status().as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        user = %user,
        client = %client,
        request_id = %request_id,
    );
    Ok(res)
}

/// Adds `Vary: Accept-Encoding` when the answer's `Vary` lacks it, as Traffic Ops sends it on
/// every answer (the compression middleware adds it only to what it compresses).
fn vary_accept_encoding(headers: &mut actix_web::http::header::HeaderMap) {
    let has = headers
        .get_all(actix_web::http::header::VARY)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding"));
    if !has {
        headers.append(
            actix_web::http::header::VARY,
            HeaderValue::from_static("Accept-Encoding"),
        );
    }
}

/// The headers Traffic Ops sets on every routed answer (shared/TRAFFIC_OPS.md §6), but
/// `X-Server-Name`, which stays asyncstatus', and `Vary` ([`vary_accept_encoding`], after the
/// compression).
/// `Access-Control-Allow-Origin: *` lets no page read an answer made with its cookies:
/// browsers refuse `*` for credentialed requests.
fn traffic_ops_header_defaults() -> DefaultHeaders {
    [
        ("access-control-allow-credentials", "true"),
        (
            "access-control-allow-headers",
            "Origin, X-Requested-With, Content-Type, Accept, Set-Cookie, Cookie",
        ),
        (
            "access-control-allow-methods",
            "POST,GET,OPTIONS,PUT,DELETE",
        ),
        ("access-control-allow-origin", "*"),
        ("permissions-policy", "interest-cohort=()"),
    ]
    .into_iter()
    .fold(DefaultHeaders::new(), |headers, (name, value)| {
        headers.add((
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ))
    })
}

/// The application with its middleware; `state` is shared by every worker.
pub fn app(
    state: web::Data<AppState>,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // The last `wrap` is the outermost: the access log and metrics see every answer,
    // including those the inner middleware makes.
    let layout = state.settings.database.layout;
    // Traffic Ops' own headers on the API's answers, with database.layout = "traffic_ops" —
    // unless CORS is configured: then only the allowed origins get CORS headers.
    let traffic_ops_headers =
        layout == Layout::TrafficOps && state.settings.cors.allowed_origins.is_empty();
    actix_web::App::new()
        .app_data(state)
        .wrap(actix_web::middleware::from_fn(cors::cors))
        .wrap(Compress::default())
        .wrap(error::framework_errors())
        .wrap(
            DefaultHeaders::new()
                .add((
                    HeaderName::from_static("x-server-name"),
                    HeaderValue::from_static(SERVER_NAME),
                ))
                .add((X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"))),
        )
        .wrap(actix_web::middleware::from_fn(session_and_log))
        .configure(move |cfg| configure(cfg, layout, traffic_ops_headers))
}
