//! The one place where errors become HTTP: every lower error (domain, store, auth, bad input)
//! maps to a status and an alert text here. The user reads a clear sentence; the log gets the
//! cause for the 5xx answers.

use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::error::PathError;
use actix_web::http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use asyncstatus_auth::AuthError;
use asyncstatus_domain::ListQueryError;
use asyncstatus_persistence::StoreError;

use super::response::{json_with, Alert, Envelope};

/// The exact Traffic Ops text for an unsupported API version.
pub const VERSION_NOT_IMPLEMENTED: &str = "The requested api version is not implemented by this server. If you are using a newer client with an older server, you will need to use an older client version or upgrade your server.";

/// An error answer: a status, the alert text the user sees, and the headers some statuses need.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    text: String,
    retry_after: Option<Duration>,
    allow: Option<&'static str>,
    /// Close the connection after this answer (`Connection: close`).
    close: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.text)
    }
}

impl ApiError {
    pub fn new(status: StatusCode, text: impl Into<String>) -> Self {
        ApiError {
            status,
            text: text.into(),
            retry_after: None,
            allow: None,
            close: false,
        }
    }
    pub fn bad_request(text: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, text)
    }
    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, text)
    }
    pub fn conflict(text: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, text)
    }
    pub fn unauthorized() -> Self {
        AuthError::Unauthorized.into()
    }
    /// 405 with `Allow`.
    pub fn method_not_allowed(method: &str, allow: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} is not allowed here; allowed: {allow}"),
        );
        e.allow = Some(allow);
        e
    }
    /// 405 with `Allow`, saying why.
    pub fn method_not_allowed_because(method: &str, allow: &'static str, why: &str) -> Self {
        let mut e = Self::method_not_allowed(method, allow);
        e.text = format!("method {method} is not allowed here: {why}; allowed: {allow}");
        e
    }
    /// 404 for a path no route serves, in Traffic Ops' words.
    pub fn no_such_path(path: &str) -> Self {
        Self::not_found(format!("The requested path '{path}' does not exist."))
    }
    /// 501 for an API version we do not serve.
    pub fn version_not_implemented() -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, VERSION_NOT_IMPLEMENTED)
    }
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }
    /// 503, logged with its cause.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(cause = %cause, "answering 503");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable; try again shortly",
        );
        e.retry_after = Some(Duration::from_secs(1));
        e
    }
    /// 503 with `Retry-After: 1` for a bounded queue that is full.
    pub fn busy(text: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, text);
        e.retry_after = Some(Duration::from_secs(1));
        e
    }
    /// 408 for a request body that did not arrive in time; the connection is closed.
    pub fn body_timeout(limit: Duration) -> Self {
        let mut e = Self::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within server.body_timeout ({})",
                humantime::format_duration(limit)
            ),
        );
        e.close = true;
        e
    }
    /// 400 for a body that is not JSON at all.
    pub fn not_json(cause: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("request body is not valid JSON: {cause}"))
    }
    /// 500, logged with its cause; the user sees no internals.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "answering 500");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict(text) => ApiError::conflict(text),
            StoreError::Unavailable(_) | StoreError::ConnectionLost(_) => ApiError::unavailable(e),
            StoreError::Query { .. } | StoreError::Corrupt(_) | StoreError::Setup(_) => {
                ApiError::internal(e)
            }
        }
    }
}

impl From<ListQueryError> for ApiError {
    fn from(e: ListQueryError) -> Self {
        ApiError::bad_request(e.0)
    }
}

/// The field serde names in its "duplicate field `name`" error.
fn duplicate_field(message: &str) -> Option<&str> {
    message.strip_prefix("duplicate field `")?.strip_suffix('`')
}

/// What serde's "invalid type: …, expected <what>" asked for, in the API's words.
fn expected_kind(message: &str) -> &str {
    match message.rsplit_once(", expected ").map(|(_, what)| what) {
        Some("a boolean") => "true or false",
        Some("i64" | "u64" | "i32" | "u32") => "an integer",
        Some(what) if what == "a map" || what.starts_with("struct ") => "an object",
        Some(what) => what,
        None => "a string",
    }
}

/// A request body serde could not read into its type.
impl From<serde_path_to_error::Error<serde_json::Error>> for ApiError {
    fn from(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let inner = e.inner();
        if inner.classify() != serde_json::error::Category::Data {
            return ApiError::not_json(inner);
        }
        let text = inner.to_string();
        let position = format!(" at line {} column {}", inner.line(), inner.column());
        let message = text.strip_suffix(&position).unwrap_or(&text);
        let field = e.path().to_string();
        ApiError::bad_request(match duplicate_field(message) {
            Some(key) => format!("key '{key}' is given more than once"),
            None if message.starts_with("invalid type") => {
                format!("'{field}' must be {}", expected_kind(message))
            }
            None => format!("'{field}': {message}"),
        })
    }
}

/// A query string serde could not read into the list parameters.
impl From<serde_path_to_error::Error<serde_urlencoded::de::Error>> for ApiError {
    fn from(e: serde_path_to_error::Error<serde_urlencoded::de::Error>) -> Self {
        let message = e.inner().to_string();
        match duplicate_field(&message) {
            Some(name) => ListQueryError::given_twice(name).into(),
            None => match ListQueryError::bad_value(&e.path().to_string()) {
                Some(bad) => bad.into(),
                None => ApiError::bad_request(format!("malformed query string: {message}")),
            },
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = match &e {
            AuthError::MissingCredentials => StatusCode::BAD_REQUEST,
            AuthError::BadCredentials | AuthError::Unauthorized | AuthError::SessionRefused(_) => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::Forbidden(_) | AuthError::PrivLevel => StatusCode::FORBIDDEN,
            AuthError::Throttled { retry_after } => {
                let mut err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string());
                err.retry_after = Some(*retry_after);
                return err;
            }
            AuthError::Store(_) => match e {
                AuthError::Store(store) => return store.into(),
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            AuthError::Issue(_) => return ApiError::internal(e),
        };
        ApiError::new(status, e.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        if let Some(wait) = self.retry_after {
            builder.insert_header((RETRY_AFTER, asyncstatus_auth::whole_seconds_up(wait)));
        }
        if let Some(allow) = self.allow {
            builder.insert_header((ALLOW, allow));
        }
        if self.close {
            builder.force_close();
        }
        json_with(builder, &Envelope::alert(Alert::error(self.text.clone())))
    }
}

/// The path extractors' errors (`web::PathConfig`).
pub fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("malformed path parameter: {err}")).into()
}

/// The one layer for errors the framework answers itself (its defaults and middleware, such
/// as the gzip middleware's 406 for an `Accept-Encoding` refusing every coding it has): each
/// becomes an alert. Our own answers are JSON already and pass as they are.
pub fn framework_errors<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(as_alert)
}

fn as_alert<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let ours = res
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if ours {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let text = match status {
        StatusCode::NOT_ACCEPTABLE => {
            "Accept-Encoding refuses every encoding this server can send (gzip, identity)"
        }
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    let (req, _) = res.into_parts();
    let answer = ApiError::new(status, text).error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, answer).map_into_right_body(),
    ))
}
