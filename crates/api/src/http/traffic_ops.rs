//! The HTTP surface of `database.layout = "traffic_ops"`: Traffic Ops' own sessions (login,
//! logout, the refreshed `mojolicious` cookie on every authenticated answer), and its jobs on
//! its table answered as Traffic Ops answers them (shared/TRAFFIC_OPS.md §2, §6) — keys without
//! a value omitted, Go's RFC 3339 times in the session's zone, `Not Found`, its 401/403 texts —
//! with asyncstatus' additions on top: the long-poll (`Prefer: wait`), an `ETag` computed from
//! the row's content with `If-None-Match`, `Retry-After` while `PENDING`, the list by id and
//! the producer API.
//!
//! The routes this layout does not serve (`user/current`, cancel, the event stream) answer 501
//! naming the layout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::cookie::{time, Cookie};
use actix_web::dev::Payload;
use actix_web::http::header::{ETag, EntityTag, AUTHORIZATION, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use asyncstatus_auth::traffic_ops_auth::{no_credential, Verified, REFRESH_SECONDS};
use asyncstatus_auth::{Credential, Principal, TrafficOpsAuthenticator};
use asyncstatus_domain::Permission;
use asyncstatus_persistence::TrafficOpsJob;

use crate::http::conditional;
use crate::http::error::ApiError;
use crate::http::extract::{app_state, json_body, RequestUser};
use crate::http::response::{json_with, Alert, Envelope};
use crate::state::AppState;

/// Traffic Ops' 404 text for a missing job.
pub const NOT_FOUND: &str = "Not Found";

/// The cookies to set on the answer of a request authenticated by a Traffic Ops session:
/// a new `mojolicious` cookie for an hour, and the access token the request carried, set
/// again as it came (Traffic Ops re-signs it with its old claims: it never slides).
#[derive(Clone)]
pub struct TrafficOpsRefresh {
    pub mojolicious: String,
    pub expires: i64,
    pub access_token: Option<String>,
}

/// A request authenticated by a Traffic Ops session. A handler that takes this answers 401
/// with Traffic Ops' text to anyone else.
pub struct TrafficOpsAuthenticated {
    pub principal: Arc<Principal>,
    pub verified: Verified,
}

impl TrafficOpsAuthenticated {
    /// 403 with Traffic Ops' text for the rule in force.
    pub fn require(&self, needed: &[Permission]) -> Result<(), ApiError> {
        self.principal.require(needed).map_err(Into::into)
    }
}

/// Traffic Ops' sessions of the application (set up in this layout only).
fn sessions(state: &AppState) -> Result<Arc<TrafficOpsAuthenticator>, ApiError> {
    state
        .traffic_ops
        .clone()
        .ok_or_else(|| ApiError::internal("Traffic Ops sessions are not set up"))
}

/// The `Authorization` header of `req`, and its cookies as `(name, value)` in header order (a
/// value in double quotes unquoted, as Go's cookie parser does).
fn session_headers(req: &HttpRequest) -> (Option<&str>, Vec<(String, String)>) {
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let cookies = req
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim().to_owned(), value.to_owned()))
        })
        .collect();
    (authorization, cookies)
}

/// The credential of `req` in Traffic Ops' order (see [`asyncstatus_auth::traffic_ops_auth`]).
fn credential(req: &HttpRequest) -> Option<Credential> {
    let (authorization, cookies) = session_headers(req);
    asyncstatus_auth::traffic_ops_auth::credential_of(
        authorization,
        cookies.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    )
}

impl FromRequest for TrafficOpsAuthenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            let auth = sessions(&state)?;
            let credential = credential(&req).ok_or_else(no_credential)?;
            // A write a browser makes with its cookies from another site is refused, as in
            // asyncstatus' own layout (Traffic Ops does not check; its cookies are SameSite
            // unset). A Bearer token is never sent by a browser on its own.
            if !matches!(credential, Credential::Bearer(_))
                && crate::http::csrf::guarded(req.method())
            {
                crate::http::csrf::refuse_cross_site(&req, &state.settings)?;
            }
            let now = Utc::now().timestamp();
            // The signatures and the cache are CPU only; a miss reads the user.
            let verified: Verified = auth.verify(&credential, now)?;
            let session = match auth.cached(verified) {
                Ok(session) => session,
                Err(verified) => {
                    let auth = auth.clone();
                    state.db.run(move |_| auth.load(verified)).await?
                }
            };
            // Traffic Ops refreshes the session before it checks permissions, so a 403 (or
            // 400, 404) carries the new cookie; a 401 does not.
            let (mojolicious, expires) = auth.cookie_for(
                &session.principal.username,
                now,
                REFRESH_SECONDS,
                &session.revoked,
            );
            let access_token = auth.resign(&session.verified);
            req.extensions_mut().insert(TrafficOpsRefresh {
                mojolicious,
                expires,
                access_token,
            });
            req.extensions_mut()
                .insert(RequestUser(session.principal.clone()));
            Ok(TrafficOpsAuthenticated {
                principal: session.principal,
                verified: session.verified,
            })
        })
    }
}

/// A cookie with Traffic Ops' attributes: `Path=/`, `Expires`, `Max-Age`, `HttpOnly` (no
/// `Secure`, `SameSite` or `Domain`, as Traffic Ops sets them).
fn session_cookie(name: &'static str, value: String, expires: i64) -> Cookie<'static> {
    let left = (expires - Utc::now().timestamp()).max(0);
    Cookie::build(name, value)
        .path("/")
        .max_age(time::Duration::seconds(left))
        .expires(
            time::OffsetDateTime::from_unix_timestamp(expires)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        )
        .http_only(true)
        .finish()
}

/// The cookies of a [`TrafficOpsRefresh`] (see [`session_cookie`]).
pub fn refresh_cookies(refresh: &TrafficOpsRefresh) -> Vec<Cookie<'static>> {
    let cookie = session_cookie;
    let mut cookies = vec![cookie(
        asyncstatus_auth::traffic_ops::cookie::NAME,
        refresh.mojolicious.clone(),
        refresh.expires,
    )];
    if let Some(token) = &refresh.access_token {
        cookies.push(cookie(
            asyncstatus_auth::traffic_ops::access_token::NAME,
            token.clone(),
            refresh.expires,
        ));
    }
    cookies
}

/// A time as Go's `time.RFC3339Nano` writes it: in the zone whose offset is `offset` seconds
/// east of UTC (`Z` for UTC, else `±hh:mm`), the fraction's trailing zeros trimmed (none when
/// it is zero) — as Traffic Ops shows a time of its database session's zone.
pub fn go_rfc3339_nano(time: DateTime<Utc>, offset: i32) -> String {
    use chrono::Offset;
    // PostgreSQL's offsets are within ±16 h; anything else is shown in UTC.
    let (zone, offset) = match chrono::FixedOffset::east_opt(offset) {
        Some(zone) => (zone, offset),
        None => (Utc.fix(), 0),
    };
    let local = time.with_timezone(&zone);
    let whole = local.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = time.timestamp_subsec_nanos();
    let fraction = if nanos == 0 {
        String::new()
    } else {
        format!(".{}", format!("{nanos:09}").trim_end_matches('0'))
    };
    // Go writes ±hh:mm, dropping an offset's seconds (chrono's `%:z` rounds them).
    let suffix = if offset == 0 {
        "Z".to_owned()
    } else {
        let (sign, abs) = if offset < 0 {
            ('-', -offset)
        } else {
            ('+', offset)
        };
        format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    };
    format!("{whole}{fraction}{suffix}")
}

/// A job as Traffic Ops' `tc.AsyncStatus` serializes: `end_time` and `message` omitted when
/// NULL.
#[derive(Serialize)]
struct JobJson<'a> {
    id: i64,
    status: &'a str,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct Answer<'a> {
    response: JobJson<'a>,
}

/// A weak entity tag of the row's content (Traffic Ops' table has no `last_updated`): the
/// id and the first 16 bytes of a SHA-512 over the status, message and times.
fn etag(job: &TrafficOpsJob) -> EntityTag {
    let mut hash = Sha512::new();
    hash.update(job.status.as_bytes());
    hash.update([0]);
    match &job.message {
        Some(m) => {
            hash.update([1]);
            hash.update(m.as_bytes());
        }
        None => hash.update([0]),
    }
    hash.update(job.start_time.timestamp_micros().to_be_bytes());
    hash.update(
        job.end_time
            .map_or(i64::MIN, |t| t.timestamp_micros())
            .to_be_bytes(),
    );
    // The body shows each time in its zone's offset.
    hash.update(job.start_offset.to_be_bytes());
    hash.update(job.end_offset.unwrap_or(i32::MIN).to_be_bytes());
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    EntityTag::new_weak(format!("{}-{hex}", job.id))
}

/// The headers of a job answer: its `ETag`, and `Retry-After` with the poll hint while it is
/// not finished.
fn job_headers(
    state: &AppState,
    builder: &mut actix_web::HttpResponseBuilder,
    job: &TrafficOpsJob,
) {
    builder.insert_header(ETag(etag(job)));
    if !job.is_final() {
        builder.insert_header((
            RETRY_AFTER,
            asyncstatus_auth::whole_seconds_up(state.settings.jobs.poll_hint),
        ));
    }
}

/// `GET /api/{version}/async_status/{id}` on Traffic Ops' table.
pub async fn get(
    state: web::Data<AppState>,
    auth: TrafficOpsAuthenticated,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Permission::ASYNC_STATUS_READ])?;
    let raw = id.as_str();
    let id = crate::http::jobs::parse_id(raw.strip_suffix(".json").unwrap_or(raw))?;
    let wait = conditional::prefer_wait(&req, state.settings.jobs.max_wait)?;
    // Woken by this replica's writes at once, by Traffic Ops' within
    // `traffic_ops.poll_interval` (see `crate::traffic_ops::poll_waited`).
    let (job, wait) = conditional::read_or_wait(
        &state,
        &auth.principal,
        id,
        wait,
        || load(&state, id),
        TrafficOpsJob::is_final,
    )
    .await?;
    let unchanged = conditional::none_match(&req, &etag(&job)).unwrap_or(false);
    let mut builder = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    job_headers(&state, &mut builder, &job);
    if let Some(wait) = wait {
        builder.insert_header((
            conditional::PREFERENCE_APPLIED,
            format!("wait={}", wait.as_secs()),
        ));
    }
    if unchanged {
        return Ok(builder.finish());
    }
    let answer = Answer {
        response: job_json(&job),
    };
    Ok(json_with(builder, &answer))
}

async fn load(state: &web::Data<AppState>, id: i64) -> Result<TrafficOpsJob, ApiError> {
    state
        .db
        .traffic_ops_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(NOT_FOUND))
}

/// `GET async_status` on Traffic Ops' table: its jobs by id (`sortOrder`, `limit` up to
/// `jobs.max_page`, `cursor` for the next page, `id`), in Traffic Ops' format. Traffic Ops'
/// table is indexed by id only, and none may be added, so what would scan it — a filter on
/// another column, another order, `offset`/`page`, the count of matches — is refused with 400
/// naming the parameter; a page is one index range of `limit` rows at any size.
pub async fn list(
    state: web::Data<AppState>,
    auth: TrafficOpsAuthenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    use asyncstatus_domain::list::{OrderBy, SortOrder};
    auth.require(&[Permission::ASYNC_STATUS_READ])?;
    let query = crate::http::jobs::list_query(req.query_string())?;
    let given =
        |name: &str| form_urlencoded::parse(req.query_string().as_bytes()).any(|(n, _)| n == name);
    if given("page") {
        return Err(not_here("page"));
    }
    let scans = [
        ("status", query.status.is_some()),
        ("orderby", query.order_by != OrderBy::Id),
        ("offset", query.offset != 0),
        ("kind", query.kind.is_some()),
        ("created_by", query.created_by.is_some()),
        ("label", !query.labels.is_empty()),
        ("newerThan", query.newer_than.is_some()),
        ("olderThan", query.older_than.is_some()),
    ];
    if let Some((name, _)) = scans.iter().find(|(_, scans)| *scans) {
        // A cursor carries its query's filters: one from asyncstatus' own list is no cursor
        // of this one.
        return Err(if given("cursor") && !given(name) {
            ApiError::bad_request(
                "query parameter 'cursor' is not a cursor of this list (one made by another \
                 database layout or another query)",
            )
        } else {
            not_here(name)
        });
    }
    let max_page = state.settings.jobs.max_page;
    let limit = query.limit.unwrap_or(max_page);
    if limit > max_page {
        return Err(ApiError::bad_request(format!(
            "query parameter 'limit' must be at most {max_page} (jobs.max_page)"
        )));
    }
    let descending = query.sort_order == SortOrder::Desc;
    let (id, after) = (query.id, query.after.map(|a| a.id));
    let jobs = state
        .db
        .run(move |store| {
            store.list_traffic_ops_jobs(id, after, descending, limit.saturating_add(1))
        })
        .await?;
    // Cut to `server.max_response_bytes` too, as asyncstatus' own list is.
    let budget = state
        .settings
        .server
        .max_response_bytes
        .saturating_sub(crate::http::jobs::ENVELOPE_BYTES);
    let page = &jobs[..jobs.len().min(usize::try_from(limit).unwrap_or(usize::MAX))];
    let (array, listed) = crate::http::jobs::json_array_within(page, budget, |j| j.id, job_json);
    let more = jobs.len() > listed;
    let next = listed
        .checked_sub(1)
        .and_then(|last| jobs.get(last))
        .filter(|_| more)
        .map(|last| query.id_cursor_after(last.id));
    let mut body = Vec::with_capacity(array.len() + 128);
    body.extend_from_slice(b"{\"response\":");
    body.extend_from_slice(&array);
    if let Some(next) = next {
        body.extend_from_slice(b",\"summary\":");
        body.extend_from_slice(
            &serde_json::to_vec(&serde_json::json!({ "next": next })).unwrap_or_default(),
        );
    }
    body.extend_from_slice(b"}\n");
    Ok(crate::http::response::raw_json(HttpResponse::Ok(), body))
}

/// 400: the list parameter `name` would scan Traffic Ops' table.
fn not_here(name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "query parameter '{name}' is not available with database.layout = \"traffic_ops\": \
         Traffic Ops' async_status table is indexed by id only (list by id, with limit, \
         sortOrder and cursor)"
    ))
}

/// The keys of asyncstatus' producer API that Traffic Ops' table has no column for: given
/// (not `null`), they are refused, naming the first.
#[derive(Default, Deserialize)]
struct NoColumn {
    kind: Option<IgnoredAny>,
    labels: Option<IgnoredAny>,
    key: Option<IgnoredAny>,
    timeout: Option<IgnoredAny>,
    heartbeat_timeout: Option<IgnoredAny>,
    progress: Option<IgnoredAny>,
}

impl NoColumn {
    fn refuse(&self) -> Result<(), ApiError> {
        let given = [
            ("kind", self.kind.is_some()),
            ("labels", self.labels.is_some()),
            ("key", self.key.is_some()),
            ("timeout", self.timeout.is_some()),
            ("heartbeat_timeout", self.heartbeat_timeout.is_some()),
            ("progress", self.progress.is_some()),
        ];
        match given.iter().find(|(_, given)| *given) {
            Some((key, _)) => Err(ApiError::bad_request(format!(
                "'{key}' cannot be stored with database.layout = \"traffic_ops\": Traffic Ops' \
                 async_status table has id, status, message, start_time and end_time only"
            ))),
            None => Ok(()),
        }
    }
}

/// The body of `POST async_status` on Traffic Ops' table.
#[derive(Default, Deserialize)]
struct CreateBody {
    message: Option<String>,
    #[serde(flatten)]
    no_column: NoColumn,
}

/// The body of `PUT async_status/{id}` on Traffic Ops' table.
#[derive(Default, Deserialize)]
struct UpdateBody {
    status: Option<asyncstatus_domain::JobStatus>,
    message: Option<String>,
    #[serde(flatten)]
    no_column: NoColumn,
}

/// The answer to a producer: the job in Traffic Ops' format, with an alert.
fn job_answer(
    state: &AppState,
    mut builder: actix_web::HttpResponseBuilder,
    job: &TrafficOpsJob,
    alert: Alert,
) -> HttpResponse {
    #[derive(Serialize)]
    struct WithAlert<'a> {
        alerts: [Alert; 1],
        response: JobJson<'a>,
    }
    job_headers(state, &mut builder, job);
    json_with(
        builder,
        &WithAlert {
            alerts: [alert],
            response: job_json(job),
        },
    )
}

fn job_json(job: &TrafficOpsJob) -> JobJson<'_> {
    JobJson {
        id: job.id,
        status: &job.status,
        start_time: go_rfc3339_nano(job.start_time, job.start_offset),
        end_time: job
            .end_time
            .map(|end| go_rfc3339_nano(end, job.end_offset.unwrap_or(job.start_offset))),
        message: job.message.as_deref(),
    }
}

/// `POST async_status` on Traffic Ops' table: a job Traffic Ops shows too, started as Traffic
/// Ops starts its own (`PENDING`, the message, `start_time` by default). 202 with `Location`.
pub async fn create(
    state: web::Data<AppState>,
    auth: TrafficOpsAuthenticated,
    version: crate::http::extract::ApiVersion,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Permission::ASYNC_STATUS_CREATE])?;
    let body = crate::http::extract::read_body(&req, payload, state.settings.server.max_body_bytes)
        .await?;
    let body: CreateBody = json_body(&body, true)?;
    body.no_column.refuse()?;
    let message = crate::http::jobs::checked_message(body.message)?;
    let job = state
        .db
        .run(move |store| store.create_traffic_ops_job(message.as_deref()))
        .await?;
    let mut builder = HttpResponse::Accepted();
    builder.insert_header((
        actix_web::http::header::LOCATION,
        format!("/api/{}/async_status/{}", version.0, job.id),
    ));
    let alert = crate::http::jobs::created_alert(job.id, version);
    Ok(job_answer(&state, builder, &job, alert))
}

/// `PUT async_status/{id}` on Traffic Ops' table: `PENDING` → `PENDING` (a new message),
/// `SUCCEEDED` or `FAILED` (`end_time` set). Unlike Traffic Ops' own writes, a finished job
/// is not changed (409), so that of two producers racing to finish it exactly one wins.
pub async fn update(
    state: web::Data<AppState>,
    auth: TrafficOpsAuthenticated,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Permission::ASYNC_STATUS_UPDATE])?;
    let id = crate::http::jobs::parse_id(&id)?;
    let body = crate::http::extract::read_body(&req, payload, state.settings.server.max_body_bytes)
        .await?;
    let body: UpdateBody = json_body(&body, false)?;
    body.no_column.refuse()?;
    let status = body
        .status
        .ok_or_else(|| ApiError::bad_request("'status' is required"))?;
    let message = crate::http::jobs::checked_message(body.message)?;
    let outcome = state
        .db
        .run(move |store| store.update_traffic_ops_job(id, status.as_str(), message.as_deref()))
        .await?;
    match outcome {
        Ok(Some(job)) => {
            let alert = crate::http::jobs::updated_alert(job.id, &job.status, job.is_final());
            Ok(job_answer(&state, HttpResponse::Ok(), &job, alert))
        }
        Ok(None) => Err(ApiError::not_found(NOT_FOUND)),
        Err(current) => Err(ApiError::conflict(match current.parse() {
            Ok(done) => asyncstatus_domain::TransitionError::AlreadyFinished(done).to_string(),
            // Traffic Ops' table holds any text.
            Err(_) => format!("async status is already {current} and can no longer be changed"),
        })),
    }
}

/// `DELETE async_status/{id}`: Traffic Ops never deletes its jobs, and neither does
/// asyncstatus in this layout.
pub async fn delete(_auth: TrafficOpsAuthenticated) -> Result<HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed_because(
        "DELETE",
        "GET, PUT",
        "Traffic Ops never deletes its jobs, and asyncstatus does not with database.layout = \"traffic_ops\"",
    ))
}

/// `POST user/login` with Traffic Ops' users: the password is checked against the user's
/// Traffic Ops hash, and the answer sets both cookies in Traffic Ops' formats (6 h), so
/// Traffic Ops accepts them for every other endpoint. Throttled and queued as asyncstatus' own
/// logins are.
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let auth = sessions(&state)?;
    let (username, password, addr, slot) =
        crate::http::users::login_request(&state, &req, payload, |user, addr| {
            auth.check_throttle(user, addr)
        })
        .await?;
    let login = crate::db::blocking(move || {
        // Held until the derivation ends, even if the client has gone.
        let _slot = slot;
        auth.login(&username, &password, addr, Utc::now().timestamp())
    })
    .await?;
    req.extensions_mut()
        .insert(RequestUser(login.principal.clone()));
    let mut builder = HttpResponse::Ok();
    builder
        .cookie(session_cookie(
            asyncstatus_auth::traffic_ops::cookie::NAME,
            login.mojolicious,
            login.expires,
        ))
        .cookie(session_cookie(
            asyncstatus_auth::traffic_ops::access_token::NAME,
            login.access_token,
            login.expires,
        ));
    Ok(json_with(
        builder,
        &Envelope::alert(Alert::success("Successfully logged in.")),
    ))
}

/// `POST user/logout`: clears both cookies (the `mojolicious` one expiring now, the
/// `access_token` emptied, as Traffic Ops does) and refuses, at asyncstatus, every session
/// credential the request presented, until it expires. Traffic Ops cannot be told: there
/// they stay valid until they expire, as after a logout at Traffic Ops itself.
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: TrafficOpsAuthenticated,
) -> Result<HttpResponse, ApiError> {
    let auth = sessions(&state)?;
    // Every credential of the request that verifies as this user's, not only the one that
    // authenticated it: a browser holds both cookies.
    let (authorization, cookies) = session_headers(&req);
    let now = Utc::now().timestamp();
    let credentials: Vec<Verified> = asyncstatus_auth::traffic_ops_auth::all_credentials_of(
        authorization,
        cookies.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    )
    .iter()
    .filter_map(|c| auth.verify(c, now).ok())
    .filter(|v| v.username == session.verified.username)
    .collect();
    state.db.run(move |_| auth.logout(&credentials)).await?;
    req.extensions_mut().remove::<TrafficOpsRefresh>();
    let expired = Cookie::build(asyncstatus_auth::traffic_ops::cookie::NAME, "")
        .path("/")
        .expires(time::OffsetDateTime::now_utc())
        .http_only(true)
        .finish();
    let mut builder = HttpResponse::Ok();
    builder.cookie(expired).cookie(session_cookie(
        asyncstatus_auth::traffic_ops::access_token::NAME,
        String::new(),
        0,
    ));
    Ok(json_with(
        builder,
        &Envelope::alert(Alert::success("You are logged out.")),
    ))
}

/// The answer of a route this layout does not serve (yet), once the session is checked, as on
/// every other route here: a client without one gets 401, as from Traffic Ops.
pub async fn not_served(
    _session: TrafficOpsAuthenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "{} {} is not served with database.layout = \"traffic_ops\" in this version (see \
             docs/traffic-ops.md)",
            req.method(),
            req.path()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_read_as_go_writes_rfc3339_nano() {
        let at = |secs, nanos| Utc.timestamp_opt(secs, nanos).unwrap();
        assert_eq!(
            go_rfc3339_nano(at(1_613_668_436, 0), 0),
            "2021-02-18T17:13:56Z"
        );
        assert_eq!(
            go_rfc3339_nano(at(1_613_668_436, 302_620_000), 0),
            "2021-02-18T17:13:56.30262Z"
        );
        assert_eq!(
            go_rfc3339_nano(at(1_613_668_436, 352_261_000), 0),
            "2021-02-18T17:13:56.352261Z"
        );
        assert_eq!(
            go_rfc3339_nano(at(1_613_668_436, 100_000_000), 0),
            "2021-02-18T17:13:56.1Z"
        );
        assert_eq!(
            go_rfc3339_nano(at(0, 1), 0),
            "1970-01-01T00:00:00.000000001Z"
        );
        // In a session of America/New_York, as Traffic Ops shows it (verified there).
        assert_eq!(
            go_rfc3339_nano(at(1_613_668_436, 302_620_000), -5 * 3600),
            "2021-02-18T12:13:56.30262-05:00"
        );
        assert_eq!(
            go_rfc3339_nano(at(1_613_668_436, 0), 5 * 3600 + 1800),
            "2021-02-18T22:43:56+05:30"
        );
        assert_eq!(go_rfc3339_nano(at(0, 0), 100_000), "1970-01-01T00:00:00Z");
        // Monrovia's mean time, -00:44:30: Go drops the seconds.
        assert_eq!(
            go_rfc3339_nano(at(0, 0), -2670),
            "1969-12-31T23:15:30-00:44"
        );
    }
}
