//! Unauthenticated operations endpoints: `ping`, `/healthz`, `/readyz`.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse, ResponseError};
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::openapi::{NotAcceptable, VersionNotImplemented, VersionPath};
use crate::http::response::json as json_response;
use crate::state::AppState;

/// Ping
///
/// Answers `{"ping":"pong"}`; no authentication.
#[utoipa::path(
    get,
    path = "/api/{version}/ping",
    operation_id = "ping",
    tag = "operations",
    security(),
    params(VersionPath),
    responses(
        (status = 200, description = "The service answers.", body = Pong),
        (status = 406, response = NotAcceptable),
        (status = 501, response = VersionNotImplemented),
    )
)]
pub async fn ping() -> HttpResponse {
    json_response(StatusCode::OK, &json!({"ping": "pong"}))
}

/// Liveness
///
/// The process answers; no authentication, no database.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    security(),
    responses(
        (status = 200, description = "Alive.", body = Health),
        (status = 406, response = NotAcceptable),
    )
)]
pub async fn healthz() -> HttpResponse {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// Readiness
///
/// The database answers and no migration is pending; no authentication.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    security(),
    responses(
        (status = 200, description = "Ready.", body = Ready),
        (status = 406, response = NotAcceptable),
        (
            status = 503,
            description = "Not ready: `database migrations pending: <names>`, or the database \
                is unavailable (then with `Retry-After`).",
            body = ErrorEnvelope,
            headers(("Retry-After" = RetryAfterUnavailable)),
        ),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // Reading the migrations table also proves the database answers.
    let check = state.db.run(|store| store.pending_migrations()).await;
    match check {
        Ok(pending) if pending.is_empty() => {
            json_response(StatusCode::OK, &json!({"status": "ready"}))
        }
        Ok(pending) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database migrations pending: {}", pending.join(", ")),
        )
        .error_response(),
        Err(e) => e.error_response(),
    }
}

/// This document
///
/// The OpenAPI document of every route; no authentication.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    security(),
    responses(
        (status = 200, description = "This document.", body = OpenApiDocument),
        (status = 406, response = NotAcceptable),
    )
)]
pub async fn openapi() -> HttpResponse {
    // Generated from the code (see `crate::http::openapi`); it and its digest are made once.
    static DOCUMENT: std::sync::OnceLock<(Bytes, String)> = std::sync::OnceLock::new();
    let (body, digest) = DOCUMENT.get_or_init(|| {
        let bytes = crate::http::openapi::document().as_bytes().to_vec();
        let digest = crate::http::response::sha512_b64(&bytes);
        (Bytes::from(bytes), digest)
    });
    crate::http::response::raw_json_with_digest(HttpResponse::Ok(), body.clone(), digest)
}

/// Prometheus metrics
///
#[doc = "Prometheus text exposition format: requests by route template, method and status, a \
         latency histogram, database pool use, jobs by status, long-poll waiters. No \
         authentication: serve it on a network you trust."]
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    security(),
    responses(
        (
            status = 200,
            description = "The metrics.",
            body = String,
            content_type = "text/plain; version=0.0.4",
        ),
        (status = 406, response = NotAcceptable),
    )
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // Traffic Ops' table keeps no counts, and counting it is a scan of years of jobs.
    let jobs = match state.settings.database.layout {
        asyncstatus_persistence::Layout::Asyncstatus => state
            .db
            .run(|store| store.count_jobs_by_status())
            .await
            .ok(),
        asyncstatus_persistence::Layout::TrafficOps => None,
    };
    let text = state.metrics.render(
        state.db.store().pool_state(),
        jobs.as_deref(),
        state.waiters.len(),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
