//! The Traffic Ops envelope and the one function that turns a value into a JSON response:
//! `Content-Type: application/json`, a trailing newline, and `Whole-Content-SHA512` of the
//! uncompressed body.

use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha512};
use utoipa::ToSchema;

use asyncstatus_domain::AsyncStatus;

/// `Whole-Content-SHA512`.
pub const WHOLE_CONTENT_SHA512: HeaderName = HeaderName::from_static("whole-content-sha512");

/// An alert's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = AlertLevel)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Success,
    Info,
    #[allow(dead_code)]
    Warning,
    Error,
}

/// One alert: `{"text": "...", "level": "..."}`, in the order Traffic Ops writes them.
#[derive(Debug, Clone, Serialize, ToSchema)]
// `deny_unknown_fields` here and below: the schema's `additionalProperties: false`.
#[serde(deny_unknown_fields)]
pub struct Alert {
    pub text: String,
    #[schema(value_type = AlertLevel)]
    pub level: Level,
}

impl Alert {
    pub fn success(text: impl Into<String>) -> Self {
        Alert {
            level: Level::Success,
            text: text.into(),
        }
    }
    pub fn info(text: impl Into<String>) -> Self {
        Alert {
            level: Level::Info,
            text: text.into(),
        }
    }
    pub fn error(text: impl Into<String>) -> Self {
        Alert {
            level: Level::Error,
            text: text.into(),
        }
    }
}

/// `summary` of list responses.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// The number of jobs the filters select, before `limit`, `offset` and `page`.
    #[schema(minimum = 0)]
    pub count: i64,
    /// Present when jobs follow this page: the `cursor` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next: Option<String>,
}

/// `{"alerts": [...], "response": ..., "summary": ...}`, each part only when present.
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<Alert>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

impl<T: Serialize> Envelope<T> {
    pub fn response(response: T) -> Self {
        Envelope {
            alerts: None,
            response: Some(response),
            summary: None,
        }
    }
}

impl Envelope<()> {
    pub fn alert(alert: Alert) -> Self {
        Envelope {
            alerts: Some(vec![alert]),
            response: None,
            summary: None,
        }
    }
}

/// RFC 3339, UTC, microseconds, `Z`: `2021-02-18T17:13:56.352261Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// How far a job has got.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Progress)]
pub struct Progress {
    /// Steps done, `0 <= done <= total`.
    #[schema(minimum = 0)]
    pub done: i64,
    /// Steps in all, at least 1.
    #[schema(minimum = 1)]
    pub total: i64,
}

/// A job: the five keys Traffic Ops shows, then the lifecycle's. asyncstatus always sends all
/// of them (`null`, `false` or `{}` when unset); the lifecycle's are not `required` here
/// because Traffic Ops' own answers lack them, and a client written against this document
/// reads both.
// In the reference page's order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Job)]
#[serde(deny_unknown_fields)]
pub struct JobJson<'a> {
    pub id: i64,
    #[schema(value_type = JobStatus)]
    pub status: &'a str,
    /// RFC 3339, UTC, microseconds: `2021-02-18T17:13:56.352261Z`.
    #[schema(format = DateTime, example = "2021-02-18T17:13:56.352261Z")]
    pub start_time: String,
    /// When the job finished; `null` while it is `PENDING`.
    #[schema(format = DateTime, required = true)]
    pub end_time: Option<String>,
    /// The producer's latest message; `null` when none was ever given.
    #[schema(required = true)]
    pub message: Option<&'a str>,
    /// What sort of job, as given at creation: 1–64 of `a-z0-9._-`.
    #[schema(required = false, example = "acme.renew")]
    pub kind: Option<&'a str>,
    /// String pairs given at creation (at most 16).
    #[schema(value_type = std::collections::BTreeMap<String, String>, example = json!({"cdn": "cdn1", "xmlId": "demo1"}))]
    #[serde(default)]
    pub labels: &'a asyncstatus_domain::Labels,
    /// The username that created the job; `null` for jobs created before this was kept.
    #[schema(required = false)]
    pub created_by: Option<&'a str>,
    /// The producer's latest progress, or `null`.
    // Inline: OpenAPI 3.0's `nullable` does not reach a `$ref`.
    #[schema(inline, required = false)]
    pub progress: Option<Progress>,
    /// When the reaper fails the job whatever its heartbeats; `null` for none.
    #[schema(format = DateTime, required = false)]
    pub deadline: Option<String>,
    /// Seconds without an update after which the job is failed, instead of
    /// `jobs.stale_after`; `null` for the default.
    #[schema(required = false)]
    pub heartbeat_timeout: Option<i64>,
    /// Whether someone asked to cancel the job (`POST async_status/{id}/cancel`).
    #[serde(default)]
    pub cancel_requested: bool,
    /// The reason given with the cancel request, or `null`.
    #[schema(required = false)]
    pub cancel_reason: Option<&'a str>,
    /// Who asked to cancel, or `null`.
    #[schema(required = false)]
    pub cancel_requested_by: Option<&'a str>,
    /// When the job last changed (creation, heartbeat, cancel request, finish).
    #[schema(format = DateTime, example = "2021-02-18T17:13:56.352261Z")]
    #[serde(default)]
    pub last_updated: String,
}

impl<'a> From<&'a AsyncStatus> for JobJson<'a> {
    fn from(job: &'a AsyncStatus) -> Self {
        JobJson {
            id: job.id,
            status: job.status.as_str(),
            start_time: timestamp(job.start_time),
            end_time: job.end_time.map(timestamp),
            message: job.message.as_deref(),
            kind: job.kind.as_deref(),
            labels: &job.labels,
            created_by: job.created_by.as_deref(),
            progress: job.progress.map(|p| Progress {
                done: p.done,
                total: p.total,
            }),
            deadline: job.deadline.map(timestamp),
            heartbeat_timeout: job.heartbeat_timeout,
            cancel_requested: job.cancel_requested,
            cancel_reason: job.cancel_reason.as_deref(),
            cancel_requested_by: job.cancel_requested_by.as_deref(),
            last_updated: timestamp(job.last_updated),
        }
    }
}

/// Serializes `body` with a trailing newline and sets the Traffic Ops headers on `builder`.
pub fn json_with(builder: HttpResponseBuilder, body: &impl Serialize) -> HttpResponse {
    let mut bytes = match serde_json::to_vec(body) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "serializing a response body");
            br#"{"alerts":[{"text":"Internal Server Error","level":"error"}]}"#.to_vec()
        }
    };
    bytes.push(b'\n');
    raw_json(builder, bytes)
}

/// A response of ready JSON `bytes` (ending in a newline) with the Traffic Ops headers.
pub fn raw_json(builder: HttpResponseBuilder, bytes: Vec<u8>) -> HttpResponse {
    let digest = sha512_b64(&bytes);
    raw_json_with_digest(builder, actix_web::web::Bytes::from(bytes), &digest)
}

/// `Whole-Content-SHA512` of `bytes`: the standard base64 of their SHA-512.
pub fn sha512_b64(bytes: &[u8]) -> String {
    STANDARD.encode(Sha512::digest(bytes))
}

/// [`raw_json`] for a body whose digest is already known.
pub fn raw_json_with_digest(
    mut builder: HttpResponseBuilder,
    body: actix_web::web::Bytes,
    digest: &str,
) -> HttpResponse {
    builder
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .insert_header((
            WHOLE_CONTENT_SHA512,
            HeaderValue::from_str(digest).unwrap_or(HeaderValue::from_static("")),
        ))
        .body(body)
}

/// [`json_with`] on a fresh builder of `status`.
pub fn json(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    json_with(HttpResponse::build(status), body)
}
