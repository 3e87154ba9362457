//! The OpenAPI document, generated from the code: served at `GET /api/openapi.json`, printed
//! by `asyncstatus-api openapi`, written to `docs/openapi.json` by `make openapi`. A test fails
//! when the committed file differs from what this module generates.
//!
//! What is generated, and from what:
//! - the operations (`paths`): the `#[utoipa::path]` annotations on the handlers (`jobs.rs`,
//!   `users.rs`, `ops.rs`), listed in `ApiDoc`; an operation's summary and description are
//!   its handler's doc comment (the first line, then the rest; a long description is one
//!   `#[doc = "..."]` with `\` line continuations, so that it stays one line of the document);
//! - `#/components/schemas`: `ToSchema` derived on the real types where they have the shape
//!   sent or read (`response.rs`: `Level`, `Alert`, `Summary`, `JobJson`; `users.rs`:
//!   `LoginBody`, `CurrentUser`; `jobs.rs`: `CreateBody`, `UpdateBody`), and on mirrors in
//!   `schemas` for the rest (the domain's `JobStatus`, the generic envelope's variants, the
//!   `json!` answers of `ops.rs`), each saying why;
//! - `#/components/responses`, `parameters` and `headers`: `error_responses!`,
//!   `shared_parameters` and `shared_headers` below; the handlers name them
//!   (`response = JobNotFound`, response sets such as [`SessionErrors`], `params(JobPath)`,
//!   `headers(("ETag" = ETag))`);
//! - the frame (`info`, `servers`, `tags`, `security`, the security schemes): `Frame`.
//!
//! An annotation's `body = JobEnvelope` and `("ETag" = ETag)` are names, which utoipa writes
//! as references without asking the compiler; the conformance tests check that every
//! reference of the document resolves.
//!
//! The one hand-written part is prose: `info.description`, in `openapi_description.md`.
//!
//! utoipa 4's model has no `components.parameters` or `components.headers`, no reference to
//! either, no `required` on a header, no `links` on a response and no `not` in a schema, so
//! `finish` adds those to the serialized document: each parameter the handlers list becomes
//! a reference to the shared parameter it is (a path parameter moves to its path item), each
//! header an annotation names by a shared header (`"ETag" = ETag`, written by utoipa as a
//! schema reference) becomes a reference to it, every JSON answer gets
//! `Whole-Content-SHA512` (as [`response::json_with`](super::response::json_with) sends it),
//! and `createJob` gets its links.
//!
//! Why utoipa 4 and not 5: utoipa 4 emits OpenAPI 3.0.3, the version the conformance tests
//! (`tests/api/openapi.rs`, which turn 3.0's `nullable` into JSON Schema) and schemathesis
//! (`make fuzz`, whose 3.1 support is experimental) read today; utoipa 5 emits 3.1 only.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, Header, HeaderBuilder, InfoBuilder, KnownFormat, LicenseBuilder, ObjectBuilder,
    OpenApi as Document, Ref, RefOr, Required, Response, ResponseBuilder, Schema, SchemaFormat,
    SchemaType, SecurityRequirement, ServerBuilder, Tag,
};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToResponse};

use crate::http::{events, jobs, ops, users, API_VERSIONS};
use schemas::*;

/// The document: operations, schemas and shared answers as utoipa makes them.
#[derive(OpenApi)]
#[openapi(
    paths(
        ops::ping,
        users::login,
        users::logout,
        users::current,
        jobs::list,
        jobs::create,
        jobs::get,
        jobs::update,
        jobs::delete,
        jobs::cancel,
        events::events,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
    ),
    components(
        schemas(
            Level,
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
            LoginBody,
            CreateBody,
            UpdateBody,
            CancelBody,
            ProgressBody,
            Progress,
            Pong,
            Health,
            Ready,
            OpenApiDocument,
        ),
        responses(
            BadRequest,
            Unauthorized,
            CrossSite,
            Forbidden,
            JobNotFound,
            NoSuchPath,
            MethodNotAllowed,
            Conflict,
            PayloadTooLarge,
            TooManyRequests,
            NotAcceptable,
            InternalError,
            VersionNotImplemented,
            Unavailable,
            RequestTimeout,
        )
    ),
    modifiers(&Frame)
)]
struct ApiDoc;

/// The document as JSON, pretty-printed, ending with a newline: what `docs/openapi.json` holds.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
        finish(&mut document);
        let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
        text.push('\n');
        text
    })
}

/// The frame of the document: info, servers, tags, security.
struct Frame;

impl Modify for Frame {
    fn modify(&self, openapi: &mut Document) {
        openapi.info = InfoBuilder::new()
            .title("asyncstatus")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(include_str!("openapi_description.md")))
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

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::String)
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Integer)
}

fn int64() -> ObjectBuilder {
    integer().format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

fn one_of(values: &[&str]) -> ObjectBuilder {
    string().enum_values(Some(values.iter().copied()))
}

/// A parameter; those in the path are required, the others not.
fn parameter(
    name: &str,
    place: ParameterIn,
    description: &str,
    schema: impl Into<RefOr<Schema>>,
) -> ParameterBuilder {
    let required = if matches!(place, ParameterIn::Path) {
        Required::True
    } else {
        Required::False
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(required)
        .description(Some(description))
        .schema(Some(schema))
}

/// The parameters the operations take, each `#/components/parameters/<key>`.
fn shared_parameters() -> Vec<(&'static str, Parameter)> {
    use ParameterIn::{Header, Path, Query};
    vec![
        (
            "Version",
            parameter(
                "version",
                Path,
                "The API version; all three serve the same handlers. Any other value answers 501.",
                one_of(&API_VERSIONS),
            ),
        ),
        (
            "JobId",
            parameter(
                "id",
                Path,
                "The job's id, parsed as Go's `strconv.Atoi` parses it: an optional sign and \
                 decimal digits, leading zeros allowed (`007`, `+1`), within a signed 64-bit \
                 integer. Anything else answers 400.",
                int64(),
            ),
        ),
        (
            "Prefer",
            parameter(
                "Prefer",
                Header,
                "RFC 7240. `wait=<seconds>` holds the answer until the job is finished, a \
                 cancel is requested during the wait, or the wait (capped by `jobs.max_wait`) \
                 ends. A `wait` that is not a whole number of seconds, or two different \
                 `wait`s, answer 400; other preferences are ignored.",
                string(),
            )
            .example(Some(json!("wait=30"))),
        ),
        (
            "Idempotency-Key",
            parameter(
                "Idempotency-Key",
                Header,
                "The single-flight key, as the body's `key`: 1 to 200 visible ASCII \
                 characters. With a `key` in the body too, the two must be equal (400).",
                string().min_length(Some(1)).max_length(Some(200)),
            ),
        ),
        (
            "If-None-Match",
            parameter(
                "If-None-Match",
                Header,
                "Entity tags (or `*`) of copies the client holds; 304 when one matches the \
                 job's current `ETag` (weak comparison). Takes precedence over \
                 `If-Modified-Since`.",
                string(),
            ),
        ),
        (
            "If-Modified-Since",
            parameter(
                "If-Modified-Since",
                Header,
                "An HTTP date; 304 when the job has not changed since that second. An \
                 unparsable date is ignored.",
                string(),
            )
            .example(Some(json!("Thu, 18 Feb 2021 17:13:56 GMT"))),
        ),
        (
            "StatusFilter",
            parameter(
                "status",
                Query,
                "Only jobs with this status (exact case).",
                Ref::from_schema_name("JobStatus"),
            ),
        ),
        (
            "IdFilter",
            parameter(
                "id",
                Query,
                "Only the job with this id (parsed like the path id).",
                int64(),
            ),
        ),
        (
            "OrderBy",
            parameter(
                "orderby",
                Query,
                "The column to order by (default `id`); ties are broken by `id` in the same \
                 direction. With `end_time`, unfinished jobs come last in both directions. \
                 `last_updated` changes with every heartbeat, so a job may move between pages \
                 while they are read.",
                one_of(&["id", "start_time", "end_time", "last_updated"])
                    .default(Some(json!("id"))),
            ),
        ),
        (
            "SortOrder",
            parameter(
                "sortOrder",
                Query,
                "The direction (default `asc`).",
                one_of(&["asc", "desc"]).default(Some(json!("asc"))),
            ),
        ),
        (
            // Also `not: {enum: [0]}`, added by `finish`.
            "Limit",
            parameter(
                "limit",
                Query,
                "At most this many jobs, and at most `jobs.max_page` (default 1000; more \
                 answers 400 naming it). `-1` or no `limit`: `jobs.max_page` jobs, with an \
                 `info` alert when there are more. `0` answers 400.",
                int64().minimum(Some(-1.0)),
            ),
        ),
        (
            "Offset",
            parameter(
                "offset",
                Query,
                "Jobs to skip before the first returned; needs a positive `limit` (400 \
                 without one).",
                int64().minimum(Some(0.0)),
            ),
        ),
        (
            "Page",
            parameter(
                "page",
                Query,
                "The page of `limit` jobs, from 1; needs a positive `limit` (400 without \
                 one); ignored when `offset` is given. 400 when `(page - 1) × limit` exceeds \
                 64 bits.",
                int64().minimum(Some(1.0)),
            ),
        ),
        (
            "Cursor",
            parameter(
                "cursor",
                Query,
                "Keyset paging: the `summary.next` of an earlier answer; the page starts after \
                 that answer's last job, at the same cost at any depth. It carries the query's \
                 `status`, `id`, `orderby` and `sortOrder`, which may be repeated (400 when \
                 they differ) or left out; 400 with `offset` or `page`, and for a value this \
                 service did not give. The other filters (`kind`, `created_by`, `label`, \
                 `newerThan`, `olderThan`) are not in it: give them again with it.",
                string()
                    .max_length(Some(200))
                    .pattern(Some("^[A-Za-z0-9_-]+$")),
            ),
        ),
        (
            "KindFilter",
            parameter(
                "kind",
                Query,
                "Only jobs of this kind (1–64 of `a-z0-9._-`). This and the other filters \
                 below are served by an index; `summary.count` then counts the matching jobs \
                 (O(matches)), and a page in another order than `id` sorts them.",
                string().pattern(Some("^[a-z0-9._-]{1,64}$")),
            ),
        ),
        (
            "CreatedByFilter",
            parameter(
                "created_by",
                Query,
                "Only jobs created by this username.",
                string().min_length(Some(1)).max_length(Some(128)),
            ),
        ),
        (
            "LabelFilter",
            parameter(
                "label",
                Query,
                "`key:value`: only jobs with this label. May be given up to 16 times; every \
                 one must match.",
                string().pattern(Some("^[A-Za-z0-9._/-]{1,64}:")),
            )
            .example(Some(json!("cdn:cdn1"))),
        ),
        (
            "NewerThan",
            parameter(
                "newerThan",
                Query,
                "Only jobs started after this RFC 3339 time.",
                string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            ),
        ),
        (
            "OlderThan",
            parameter(
                "olderThan",
                Query,
                "Only jobs started before this RFC 3339 time.",
                string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            ),
        ),
    ]
    .into_iter()
    .map(|(key, parameter)| (key, parameter.build()))
    .collect()
}

/// The shared parameters of these keys, in this order.
fn parameters(keys: &[&str]) -> Vec<Parameter> {
    let mut all = shared_parameters();
    keys.iter()
        .filter_map(|key| {
            let at = all.iter().position(|(k, _)| k == key)?;
            Some(all.swap_remove(at).1)
        })
        .collect()
}

/// Groups of shared parameters, for the handlers' `params(...)`.
macro_rules! parameter_groups {
    ($($(#[$doc:meta])* $group:ident = [$($key:literal),*];)*) => {$(
        $(#[$doc])*
        pub struct $group;

        impl IntoParams for $group {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                parameters(&[$($key),*])
            }
        }
    )*};
}

parameter_groups! {
    /// `{version}`.
    VersionPath = ["Version"];
    /// `{version}` and the job's `{id}`.
    JobPath = ["Version", "JobId"];
    /// `{version}` and the single-flight header of `createJob`.
    CreateParams = ["Version", "Idempotency-Key"];
    /// The long poll and the conditional request of `getJob`.
    JobConditions = ["Prefer", "If-None-Match", "If-Modified-Since"];
    /// The filters, order and paging of `listJobs`.
    ListFilters = ["StatusFilter", "IdFilter", "KindFilter", "CreatedByFilter", "LabelFilter", "NewerThan", "OlderThan", "OrderBy", "SortOrder", "Limit", "Offset", "Page", "Cursor"];
    /// The filters of `jobEvents`: the list's, without order and paging.
    EventFilters = ["StatusFilter", "IdFilter", "KindFilter", "CreatedByFilter", "LabelFilter", "NewerThan", "OlderThan"];
}

/// A header.
fn header(description: &str, schema: impl Into<RefOr<Schema>>) -> Header {
    HeaderBuilder::new()
        .description(Some(description))
        .schema(schema)
        .build()
}

/// The response headers the answers share, each `#/components/headers/<key>`, and whether it
/// is always sent. A handler names one by its key without the hyphens (`("Set-Cookie" =
/// SetCookieLogin)`).
fn shared_headers() -> Vec<(&'static str, bool, Header)> {
    let seconds = || integer().minimum(Some(1.0));
    let location = format!(
        "^/api/({})/async_status/[0-9]+$",
        API_VERSIONS.map(|v| v.replace('.', "\\.")).join("|")
    );
    vec![
        (
            "Whole-Content-SHA512",
            true,
            header(
                "Standard base64 of the SHA-512 of the uncompressed body.",
                string().pattern(Some("^[A-Za-z0-9+/]{86}==$")),
            ),
        ),
        (
            "Location",
            true,
            header(
                "Where to poll the job: `/api/{version}/async_status/{id}`, with the version \
                 the request used.",
                string().pattern(Some(location)),
            ),
        ),
        (
            "Retry-After-Pending",
            false,
            header(
                "Sent while the job is `PENDING`: the suggested wait before polling again, \
                 `jobs.poll_hint` in whole seconds (at least 1).",
                seconds(),
            ),
        ),
        (
            "Retry-After-Created",
            true,
            header(
                "The suggested wait before polling the new (`PENDING`) job: `jobs.poll_hint` \
                 in whole seconds (at least 1).",
                seconds(),
            ),
        ),
        (
            "Retry-After-Required",
            true,
            header("Seconds to wait before trying again.", seconds()),
        ),
        (
            "Retry-After-Unavailable",
            false,
            header(
                "Seconds to wait before trying again; sent when the database is unavailable.",
                seconds(),
            ),
        ),
        (
            "ETag",
            true,
            header(
                "A weak entity tag of the job's current state, `W/\"<id>-<version>\"`; send it \
                 back in `If-None-Match`.",
                string().pattern(Some("^W/\"[^\"]+\"$")),
            ),
        ),
        (
            "Last-Modified",
            true,
            header(
                "When the job last changed (an HTTP date, whole seconds); send it back in \
                 `If-Modified-Since`.",
                string(),
            ),
        ),
        (
            "Preference-Applied",
            false,
            header(
                "Sent when the request's `Prefer: wait=<seconds>` was honoured: `wait=<seconds \
                 actually allowed>` (capped by `jobs.max_wait`).",
                string().pattern(Some("^wait=[0-9]+$")),
            ),
        ),
        (
            "Set-Cookie-Login",
            true,
            header(
                "The session: `access_token=<JWT>; HttpOnly; SameSite=Lax; Path=/; \
                 Max-Age=<auth.token_ttl seconds>; Expires=<date>`, plus `; Secure` when \
                 `auth.cookie_secure` is set or TLS is on.",
                string().pattern(Some("^access_token=[^;]+;")),
            ),
        ),
        (
            "Set-Cookie-Logout",
            true,
            header(
                "The cleared session cookie: `access_token=; ... Max-Age=0; Expires=Thu, 01 \
                 Jan 1970 00:00:00 GMT`.",
                string().pattern(Some("^access_token=;")),
            ),
        ),
        (
            "Set-Cookie-Refresh",
            false,
            header(
                "Sliding session: a request authenticated by the `access_token` cookie past \
                 half its token's lifetime gets a fresh cookie of the full lifetime. Never \
                 sent to Bearer requests.",
                string().pattern(Some("^access_token=[^;]+;")),
            ),
        ),
        (
            "Allow",
            true,
            header(
                "The methods the path serves, e.g. `GET, PUT, DELETE`.",
                string().pattern(Some("^[A-Z]+(, [A-Z]+)*$")),
            ),
        ),
    ]
}

/// A header of [`shared_headers`] named as a handler's annotation names it (see [`finish`]).
fn shared_header(key: &str) -> Header {
    HeaderBuilder::new()
        .schema(Ref::from_schema_name(key.replace('-', "")))
        .build()
}

/// An error answer: an [`ErrorEnvelope`], with these extra shared headers.
fn error_response(description: &str, headers: &[(&str, &str)]) -> Response {
    headers
        .iter()
        .fold(
            ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Ref::from_schema_name("ErrorEnvelope"))
                    .build(),
            ),
            |response, (name, key)| response.header(*name, shared_header(key)),
        )
        .build()
}

/// The error answers several operations share, each `#/components/responses/<name>`.
macro_rules! error_responses {
    ($($name:ident $([$($header:literal = $key:literal),*])? : $description:expr;)*) => {$(
        #[doc = concat!("`#/components/responses/", stringify!($name), "`.")]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let headers: &[(&str, &str)] = &[$($(($header, $key)),*)?];
                (stringify!($name), error_response($description, headers).into())
            }
        }
    )*};
}

error_responses! {
    BadRequest: "The request cannot be used: a malformed path parameter, query parameter, header \
        or body. The alert names the problem, e.g. `getting integer parameters: parameter 'id' \
        not an integer`, `request body is not valid JSON: <cause>`, `request body must be a JSON \
        object`, `'<field>' must be a string`.";
    Unauthorized: "No usable token: missing, malformed, tampered with, expired, revoked, or \
        signed with another secret or algorithm. The alert is `unauthorized, please log in.`";
    CrossSite: "A request from another site with a session cookie (every login counts): \
        `Sec-Fetch-Site` is `cross-site` or `same-site`, or `Origin` is neither this service's \
        own origin nor in `cors.allowed_origins`. The alert begins `cross-site request \
        refused:`.";
    Forbidden: "The user's role lacks a permission the route needs: the alert is `missing \
        required Permissions: <PERMISSION>[, <PERMISSION>...]`. Or (`POST`, `PUT`, `DELETE`) a \
        request from another site with a session cookie: the alert begins `cross-site request \
        refused:` (see the `CrossSite` answer).";
    JobNotFound: "A well-formed id with no job (0 and negative ids included). The alert is \
        `async status not found`.";
    NoSuchPath: "No route has this path (answered for any path no operation of this document \
        describes). The alert is `The requested path '<path>' does not exist.`";
    MethodNotAllowed ["Allow" = "Allow"]: "The path exists but does not serve this method (HEAD \
        and OPTIONS included). Every path of this document answers so to the methods it does \
        not list. The alert is `method <METHOD> is not allowed here; allowed: <methods>`.";
    Conflict: "The job is already finished and can no longer change. The alert is `async status \
        is already <SUCCEEDED|FAILED> and can no longer be changed`.";
    PayloadTooLarge: "The body is larger than `server.max_body_bytes` (default 1 MiB). The alert \
        is `request body is larger than the limit of <n> bytes`.";
    TooManyRequests ["Retry-After" = "Retry-After-Required"]: "Too many failed logins for this \
        username or client address within `auth.login_window`. The alert is `too many failed \
        login attempts; try again in <seconds> seconds`.";
    NotAcceptable: "The request's `Accept-Encoding` refuses every encoding the server can send \
        (gzip and identity), e.g. `identity;q=0`. The alert is `Accept-Encoding refuses every \
        encoding this server can send (gzip, identity)`.";
    InternalError: "An unexpected failure; the cause is logged, never sent. The alert is \
        `Internal Server Error`.";
    VersionNotImplemented: "The path names an API version this server does not serve (any \
        `/api/<x>/...` other than 4.0, 4.1 and 5.0). The alert is `The requested api version is \
        not implemented by this server. If you are using a newer client with an older server, \
        you will need to use an older client version or upgrade your server.`";
    Unavailable ["Retry-After" = "Retry-After-Required"]: "The database is unreachable, or no \
        pooled connection was free within `database.checkout_timeout`. The alert is `the \
        database is unavailable; try again shortly`. The service recovers by itself when the \
        database returns.";
    RequestTimeout: "The body did not arrive within `server.body_timeout` (default 10 s). The \
        alert is `the request body did not arrive within server.body_timeout (<duration>)`; the \
        connection is closed.";
}

/// Sets of shared error answers, for the handlers' `responses(...)`.
macro_rules! response_sets {
    ($($(#[$doc:meta])* $set:ident = [$($status:literal: $response:ident),*];)*) => {$(
        $(#[$doc])*
        pub struct $set;

        impl IntoResponses for $set {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$((
                    $status.to_owned(),
                    Ref::from_response_name(<$response as ToResponse>::response().0).into(),
                )),*])
            }
        }
    )*};
}

response_sets! {
    /// What any authenticated request under `/api/{version}` may answer.
    SessionErrors = [
        "401": Unauthorized, "406": NotAcceptable, "500": InternalError,
        "501": VersionNotImplemented, "503": Unavailable
    ];
    /// A job route's bad input and missing permission.
    JobErrors = ["400": BadRequest, "403": Forbidden];
    /// A request body too slow or too large.
    BodyErrors = ["408": RequestTimeout, "413": PayloadTooLarge];
}

/// What utoipa 4 cannot express (see the module doc), added to the serialized document.
fn finish(document: &mut Value) {
    let parameters: Vec<(&str, Value)> = shared_parameters()
        .into_iter()
        .map(|(key, p)| (key, serde_json::to_value(p).unwrap_or_default()))
        .collect();
    let headers: Map<String, Value> = shared_headers()
        .into_iter()
        .map(|(key, required, h)| {
            let mut header = serde_json::to_value(h).unwrap_or_default();
            header["required"] = Value::Bool(required);
            (key.to_owned(), header)
        })
        .collect();
    let header_keys: Vec<&str> = headers.keys().map(String::as_str).collect();
    let Some(document) = document.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(paths)) = document.get_mut("paths") {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            refer_to_parameters(item, &parameters);
            for operation in item.values_mut().filter_map(Value::as_object_mut) {
                for response in responses(operation.get_mut("responses")) {
                    refer_to_headers(response, &header_keys);
                }
            }
        }
        if let Some(created) = paths
            .get_mut("/api/{version}/async_status")
            .and_then(|item| item.pointer_mut("/post/responses/202"))
        {
            created["links"] = job_links();
        }
    }
    if let Some(Value::Object(components)) = document.get_mut("components") {
        for response in responses(components.get_mut("responses")) {
            refer_to_headers(response, &header_keys);
        }
        let mut parameters: Map<String, Value> = parameters
            .into_iter()
            .map(|(key, p)| (key.to_owned(), p))
            .collect();
        if let Some(schema) = parameters.get_mut("Limit").map(|p| &mut p["schema"]) {
            schema["not"] = json!({"enum": [0]});
        }
        components.insert("parameters".into(), Value::Object(parameters));
        components.insert("headers".into(), Value::Object(headers));
        if let Some(Value::Object(schemas)) = components.get_mut("schemas") {
            for schema in schemas.values_mut() {
                nullable_inline(schema);
            }
        }
    }
}

/// utoipa writes a nullable inline object as `{"allOf": [<object>], "nullable": true}`, which
/// OpenAPI 3.0 reads as not nullable (`nullable` applies only beside a `type`): the object
/// itself is made `nullable`, in every schema's properties.
fn nullable_inline(schema: &mut Value) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    for property in properties.values_mut() {
        let Some(map) = property.as_object() else {
            continue;
        };
        let inline = match map
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            Some([only]) if only.get("type").is_some() => only.clone(),
            _ => continue,
        };
        if map.len() == 2 && map.get("nullable") == Some(&Value::Bool(true)) {
            let mut object = inline;
            object["nullable"] = Value::Bool(true);
            *property = object;
        }
    }
}

/// The response objects (not references) of a `responses` map.
fn responses(responses: Option<&mut Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    responses
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|responses| responses.values_mut())
        .filter_map(Value::as_object_mut)
        .filter(|response| !response.contains_key("$ref"))
}

/// A path item's parameters as references to the shared ones; path parameters move from its
/// operations to it.
fn refer_to_parameters(item: &mut Map<String, Value>, shared: &[(&str, Value)]) {
    let reference = |parameter: Value| match shared.iter().find(|(_, p)| *p == parameter) {
        Some((key, _)) => json!({"$ref": format!("#/components/parameters/{key}")}),
        None => parameter,
    };
    let mut in_path: Vec<Value> = Vec::new();
    for operation in item.values_mut().filter_map(Value::as_object_mut) {
        let Some(Value::Array(list)) = operation.remove("parameters") else {
            continue;
        };
        let (path, other): (Vec<Value>, Vec<Value>) =
            list.into_iter().partition(|p| p["in"] == "path");
        for parameter in path.into_iter().map(reference) {
            if !in_path.contains(&parameter) {
                in_path.push(parameter);
            }
        }
        if !other.is_empty() {
            let other = other.into_iter().map(reference).collect();
            operation.insert("parameters".into(), Value::Array(other));
        }
    }
    if !in_path.is_empty() {
        item.insert("parameters".into(), Value::Array(in_path));
    }
}

/// A response's headers named by a shared one's key (of `keys`) as references to it, and
/// `Whole-Content-SHA512` on a JSON answer.
fn refer_to_headers(response: &mut Map<String, Value>, keys: &[&str]) {
    let json = response
        .get("content")
        .is_some_and(|content| content.get("application/json").is_some());
    let headers = response
        .entry("headers")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(headers) = headers.as_object_mut() else {
        return;
    };
    if json {
        let digest = json!({"$ref": "#/components/headers/Whole-Content-SHA512"});
        headers.insert("Whole-Content-SHA512".into(), digest);
    }
    for header in headers.values_mut() {
        let named = header.pointer("/schema/$ref").and_then(Value::as_str);
        let key = keys
            .iter()
            .find(|key| named == Some(&format!("#/components/schemas/{}", key.replace('-', ""))));
        if let Some(key) = key {
            *header = json!({"$ref": format!("#/components/headers/{key}")});
        }
    }
    if headers.is_empty() {
        response.remove("headers");
    }
}

/// The links of a created job to the operations on it.
fn job_links() -> Value {
    let links = [
        ("GetJob", "getJob", "Poll the job."),
        (
            "UpdateJob",
            "updateJob",
            "Report progress on the job, or finish it.",
        ),
        ("DeleteJob", "deleteJob", "Delete the job."),
    ];
    let parameters =
        json!({"version": "$request.path.version", "id": "$response.body#/response/id"});
    links
        .into_iter()
        .map(|(name, operation, description)| {
            let link = json!({"operationId": operation, "parameters": parameters, "description": description});
            (name.to_owned(), link)
        })
        .collect::<Map<String, Value>>()
        .into()
}

/// The schema types with no real type of their own to derive from: mirrors, read by utoipa
/// for their shape and by no code. The conformance tests validate the real answers against
/// the schemas made from them, so a mirror that drifts from what is sent fails a test.
mod schemas {
    #![allow(dead_code)]

    use serde::Serialize;
    use serde_json::Value;
    use utoipa::openapi::{ArrayBuilder, Ref, RefOr, Schema};
    use utoipa::ToSchema;

    pub(super) use crate::http::jobs::{CancelBody, CreateBody, ProgressBody, UpdateBody};
    pub(super) use crate::http::response::{Alert, JobJson as Job, Level, Progress, Summary};
    pub(super) use crate::http::users::{CurrentUser, LoginBody};

    // Mirror: `asyncstatus_domain::JobStatus` (the domain crate does not depend on utoipa).
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub(super) enum JobStatus {
        Pending,
        Succeeded,
        Failed,
    }

    /// One alert at least: `"alerts":[...]`.
    // Mirror: `Envelope::alerts` is an `Option<Vec<Alert>>`, never an empty one.
    #[derive(Default, Serialize)]
    pub(super) struct Alerts;

    impl<'s> ToSchema<'s> for Alerts {
        fn schema() -> (&'s str, RefOr<Schema>) {
            let array = ArrayBuilder::new()
                .items(RefOr::Ref(Ref::from_schema_name("Alert")))
                .min_items(Some(1));
            ("Alerts", Schema::Array(array.build()).into())
        }
    }

    // Mirror: the one level an error alert has (`ApiError` always sends `Level::Error`).
    #[derive(Serialize, ToSchema)]
    pub(super) enum ErrorLevel {
        #[serde(rename = "error")]
        Error,
    }

    // Mirror: an `Alert` of `ErrorLevel`.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct ErrorAlert {
        #[schema(inline)]
        level: ErrorLevel,
        text: String,
    }

    /// An answer with nothing to return but alerts.
    // Mirror, like the envelopes below: one generic `Envelope` of optional parts, where each
    // answer's schema says which parts it has.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct AlertsEnvelope {
        alerts: Alerts,
    }

    /// Every error: `{"alerts":[{"text":"<message>","level":"error"}]}`.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct ErrorEnvelope {
        #[schema(min_items = 1)]
        alerts: Vec<ErrorAlert>,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct JobEnvelope {
        response: Job<'static>,
        #[serde(default)]
        alerts: Alerts,
    }

    /// A job that was just created or changed, with a success alert.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct JobChangedEnvelope {
        alerts: Alerts,
        response: Job<'static>,
    }

    // Mirror: the list answer is put together from ready JSON (`jobs::list_body`).
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct JobListEnvelope {
        response: Vec<Job<'static>>,
        summary: Summary,
        #[serde(default)]
        alerts: Alerts,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct CurrentUserEnvelope {
        response: CurrentUser,
    }

    // Mirror, like `Health` and `Ready`: `ops.rs` answers a `json!` value, `"pong"` the only
    // value of `ping`.
    #[derive(Serialize, ToSchema)]
    pub(super) enum PongValue {
        #[serde(rename = "pong")]
        Pong,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Pong {
        #[schema(inline)]
        ping: PongValue,
    }

    // `"ok"`, the one answer of `/healthz`.
    #[derive(Serialize, ToSchema)]
    pub(super) enum HealthValue {
        #[serde(rename = "ok")]
        Ok,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Health {
        #[schema(inline)]
        status: HealthValue,
    }

    // `"ready"`, the answer of `/readyz` when the service is ready.
    #[derive(Serialize, ToSchema)]
    pub(super) enum ReadyValue {
        #[serde(rename = "ready")]
        Ready,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Ready {
        #[schema(inline)]
        status: ReadyValue,
    }

    /// This document.
    // Mirror: the document is served as text.
    #[derive(Serialize, ToSchema)]
    pub(super) struct OpenApiDocument {
        openapi: String,
        #[schema(value_type = Object)]
        info: Value,
        #[schema(value_type = Object)]
        paths: Value,
    }
}
