//! Unauthenticated operations endpoints: `ping`, `/healthz`, `/readyz`.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse, ResponseError};
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::response::json as json_response;
use crate::state::AppState;

/// `GET /api/{v}/ping` → `{"ping":"pong"}`.
pub async fn ping() -> HttpResponse {
    json_response(StatusCode::OK, &json!({"ping": "pong"}))
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers and no migration is pending; 503 with the reason
/// otherwise.
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

/// `GET /api/openapi.json`: no auth. The document (generated from the code, see
/// [`crate::http::openapi`]) and its digest are made once.
pub async fn openapi() -> HttpResponse {
    static DOCUMENT: std::sync::OnceLock<(Bytes, String)> = std::sync::OnceLock::new();
    let (body, digest) = DOCUMENT.get_or_init(|| {
        let bytes = crate::http::openapi::document().as_bytes().to_vec();
        let digest = crate::http::response::sha512_b64(&bytes);
        (Bytes::from(bytes), digest)
    });
    crate::http::response::raw_json_with_digest(HttpResponse::Ok(), body.clone(), digest)
}

/// `GET /metrics`: Prometheus text format, no auth (serve it on a network you trust).
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let jobs = state
        .db
        .run(|store| store.count_jobs_by_status())
        .await
        .ok();
    let text = state.metrics.render(
        state.db.store().pool_state(),
        jobs.as_deref(),
        state.waiters.len(),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
