//! The OpenAPI document, generated from the code: served at `GET /api/openapi.json`, printed
//! by `asyncstatus-api openapi`, written to `docs/openapi.json` by `make openapi`. A test fails
//! when the committed file differs from what this module generates.
//!
//! What is generated (utoipa): the document's frame (`openapi`, `info`, `servers`, `tags`,
//! `security`), the security schemes, and every schema of `#/components/schemas`, from the
//! `ToSchema` types below. The operations (`paths`) and the shared parameters, headers and
//! responses are still written by hand in `openapi_operations.json` beside this file and merged
//! in; turning them into `#[utoipa::path]` annotations on the handlers is the next step.
//!
//! Why utoipa 4 and not 5: utoipa 4 emits OpenAPI 3.0.3, the version the conformance tests
//! (`tests/api/openapi.rs`, which turn 3.0's `nullable` into JSON Schema) and schemathesis
//! (`make fuzz`, whose 3.1 support is experimental) read today; utoipa 5 emits 3.1 only.
//!
//! The schema types here mirror the types the handlers serialize (`response.rs`, `jobs.rs`,
//! `users.rs`), which borrow, are generic, or live in the domain crate (which must not depend
//! on utoipa). They are never serialized; the conformance tests validate the real answers
//! against the schemas made from them, so a mirror that drifts from its type fails a test.

use std::sync::OnceLock;

use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    InfoBuilder, LicenseBuilder, OpenApi as Document, SecurityRequirement, ServerBuilder, Tag,
};
use utoipa::{Modify, OpenApi};

use schemas::*;

/// The hand-written part: `info.description`, `paths`, and `components` `parameters`,
/// `headers` and `responses`.
const OPERATIONS: &str = include_str!("openapi_operations.json");

/// The document: the generated part with the hand-written operations merged in.
#[derive(OpenApi)]
#[openapi(
    components(schemas(
        AlertLevel,
        Alert,
        Alerts,
        ErrorAlert,
        AlertsEnvelope,
        ErrorEnvelope,
        Summary,
        JobStatus,
        Job,
        JobEnvelope,
        JobChangedEnvelope,
        JobListEnvelope,
        CurrentUser,
        CurrentUserEnvelope,
        LoginRequest,
        CreateJobRequest,
        UpdateJobRequest,
        Pong,
        Health,
        Ready,
        OpenApiDocument,
    )),
    modifiers(&Frame)
)]
struct ApiDoc;

/// The document as JSON, pretty-printed, ending with a newline: what `docs/openapi.json` holds.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let generated = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
        // Compiled in and checked by a test; a broken file would show as an empty merge.
        let operations = serde_json::from_str(OPERATIONS).unwrap_or(Value::Null);
        let mut document = generated;
        merge(&mut document, operations);
        let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
        text.push('\n');
        text
    })
}

/// Merges `from` into `into`: objects key by key, anything else replaced.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into, from) => *into = from,
    }
}

/// The frame of the document: info, servers, tags, security.
struct Frame;

impl Modify for Frame {
    fn modify(&self, openapi: &mut Document) {
        openapi.info = InfoBuilder::new()
            .title("asyncstatus")
            .version(env!("CARGO_PKG_VERSION"))
            .license(Some(
                LicenseBuilder::new()
                    .name("Apache-2.0")
                    .url(Some("https://www.apache.org/licenses/LICENSE-2.0"))
                    .build(),
            ))
            .build();
        openapi.servers = Some(vec![ServerBuilder::new()
            .url("/")
            .description(Some("This service."))
            .build()]);
        openapi.tags = Some(vec![
            tag(
                "jobs",
                "Asynchronous jobs: producers create and report on them, readers poll them.",
            ),
            tag("users", "Sessions."),
            tag("operations", "Probes, metrics and this document."),
        ]);
        openapi.security = Some(vec![
            SecurityRequirement::new("cookieAuth", Vec::<String>::new()),
            SecurityRequirement::new("bearerAuth", Vec::<String>::new()),
        ]);
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "cookieAuth",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    "access_token",
                    "The session cookie set by `user/login` (an HS256 JWT). Past half its \
                     lifetime, a request authenticated by it gets a fresh cookie (sliding \
                     session).",
                ))),
            );
            components.add_security_scheme(
                "bearerAuth",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "The same token as the `access_token` cookie, sent as \
                             `Authorization: Bearer <JWT>`.",
                        ))
                        .build(),
                ),
            );
        }
    }
}

fn tag(name: &str, description: &str) -> Tag {
    let mut tag = Tag::new(name);
    tag.description = Some(description.to_owned());
    tag
}

/// The schema types: mirrors, read by utoipa for their shape and by no code.
mod schemas {
    #![allow(dead_code)]

    use serde::Deserialize;
    use serde_json::Value;
    use utoipa::openapi::{ArrayBuilder, Ref, RefOr, Schema};
    use utoipa::ToSchema;

    // An alert's level.
    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub(super) enum AlertLevel {
        Success,
        Info,
        Warning,
        Error,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Alert {
        level: AlertLevel,
        text: String,
    }

    /// One alert at least: `"alerts":[...]`.
    #[derive(Default, Deserialize)]
    pub(super) struct Alerts;

    impl<'s> ToSchema<'s> for Alerts {
        fn schema() -> (&'s str, RefOr<Schema>) {
            let array = ArrayBuilder::new()
                .items(RefOr::Ref(Ref::from_schema_name("Alert")))
                .min_items(Some(1));
            ("Alerts", Schema::Array(array.build()).into())
        }
    }

    // The one level an error alert has.
    #[derive(Deserialize, ToSchema)]
    pub(super) enum ErrorLevel {
        #[serde(rename = "error")]
        Error,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct ErrorAlert {
        #[schema(inline)]
        level: ErrorLevel,
        text: String,
    }

    /// An answer with nothing to return but alerts.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct AlertsEnvelope {
        alerts: Alerts,
    }

    /// Every error: `{"alerts":[{"level":"error","text":"<message>"}]}`.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct ErrorEnvelope {
        #[schema(min_items = 1)]
        alerts: Vec<ErrorAlert>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Summary {
        /// The number of jobs the filters select, before `limit`, `offset` and `page`.
        #[schema(minimum = 0)]
        count: i64,
        /// Present when jobs follow this page: the `cursor` of the next page.
        #[serde(default)]
        next: String,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub(super) enum JobStatus {
        Pending,
        Succeeded,
        Failed,
    }

    /// A job as Traffic Ops shows it; all five keys are always present.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Job {
        id: i64,
        status: JobStatus,
        /// RFC 3339, UTC, microseconds: `2021-02-18T17:13:56.352261Z`.
        #[schema(format = DateTime, example = "2021-02-18T17:13:56.352261Z")]
        start_time: String,
        /// When the job finished; `null` while it is `PENDING`.
        #[schema(format = DateTime, required = true)]
        end_time: Option<String>,
        /// The producer's latest message; `null` when none was ever given.
        #[schema(required = true)]
        message: Option<String>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct JobEnvelope {
        response: Job,
        #[serde(default)]
        alerts: Alerts,
    }

    /// A job that was just created or changed, with a success alert.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct JobChangedEnvelope {
        alerts: Alerts,
        response: Job,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct JobListEnvelope {
        response: Vec<Job>,
        summary: Summary,
        #[serde(default)]
        alerts: Alerts,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct CurrentUser {
        id: i64,
        username: String,
        role: String,
        /// The role's permissions, sorted; for `admin`, every permission asyncstatus checks plus any others granted.
        permissions: Vec<String>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct CurrentUserEnvelope {
        response: CurrentUser,
    }

    #[derive(Deserialize, ToSchema)]
    pub(super) struct LoginRequest {
        /// Username.
        #[schema(min_length = 1)]
        u: String,
        /// Password.
        #[schema(min_length = 1, format = Password)]
        p: String,
    }

    #[derive(Deserialize, ToSchema)]
    pub(super) struct CreateJobRequest {
        /// At most 65536 bytes of UTF-8, no NUL character.
        #[schema(max_length = 65536, pattern = r"^[^\x00]*$")]
        message: Option<String>,
    }

    #[derive(Deserialize, ToSchema)]
    pub(super) struct UpdateJobRequest {
        status: JobStatus,
        /// At most 65536 bytes of UTF-8, no NUL character. Absent or `null` keeps the stored message.
        #[schema(max_length = 65536, pattern = r"^[^\x00]*$")]
        message: Option<String>,
    }

    // `"pong"`, the one answer of `ping`.
    #[derive(Deserialize, ToSchema)]
    pub(super) enum PongValue {
        #[serde(rename = "pong")]
        Pong,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Pong {
        #[schema(inline)]
        ping: PongValue,
    }

    // `"ok"`, the one answer of `/healthz`.
    #[derive(Deserialize, ToSchema)]
    pub(super) enum HealthValue {
        #[serde(rename = "ok")]
        Ok,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Health {
        #[schema(inline)]
        status: HealthValue,
    }

    // `"ready"`, the answer of `/readyz` when the service is ready.
    #[derive(Deserialize, ToSchema)]
    pub(super) enum ReadyValue {
        #[serde(rename = "ready")]
        Ready,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Ready {
        #[schema(inline)]
        status: ReadyValue,
    }

    /// This document.
    #[derive(Deserialize, ToSchema)]
    pub(super) struct OpenApiDocument {
        openapi: String,
        #[schema(value_type = Object)]
        info: Value,
        #[schema(value_type = Object)]
        paths: Value,
    }
}
