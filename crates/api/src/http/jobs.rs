//! `async_status`, `async_status/{id}` and `async_status/{id}/cancel`: read, list, create
//! (single-flight by key), update, cancel, delete.

use actix_web::http::header::{LOCATION, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use std::time::Duration;

use asyncstatus_domain::job::{validate_key, validate_reason};
use asyncstatus_domain::list::parse_int;
use asyncstatus_domain::{
    validate_message, AsyncStatus, CancelRequest, JobStatus, JobUpdate, Labels, ListParams,
    ListQuery, NewJob, Permission, Progress, TransitionError,
};
use asyncstatus_persistence::{now_micros, CancelOutcome, CreateOutcome, UpdateOutcome};
use serde_json::Value;

use crate::http::conditional;
use crate::http::error::ApiError;
use crate::http::extract::{json_body, read_body, ApiVersion, Authenticated};
use crate::http::openapi::{
    BodyErrors, Conflict, CreateParams, JobConditions, JobErrors, JobNotFound, JobPath,
    ListFilters, SessionErrors, VersionPath,
};
use crate::http::response::{json, json_with, raw_json, Alert, Envelope, JobJson, Summary};
use crate::state::AppState;

const NOT_FOUND: &str = "async status not found";

/// The `id` path parameter as Traffic Ops parses it.
pub(crate) fn parse_id(raw: &str) -> Result<i64, ApiError> {
    parse_int(raw).ok_or_else(|| {
        ApiError::bad_request("getting integer parameters: parameter 'id' not an integer")
    })
}

/// The alert of a created job, naming where its status is read.
pub(crate) fn created_alert(id: i64, version: ApiVersion) -> Alert {
    Alert::success(format!(
        "Async job {id} created. See /api/{}/async_status/{id} for its status.",
        version.0
    ))
}

/// The alert of a producer's report on a job: finished as `status`, or updated.
pub(crate) fn updated_alert(id: i64, status: &str, finished: bool) -> Alert {
    Alert::success(if finished {
        format!("Async job {id} finished as {status}.")
    } else {
        format!("Async job {id} updated.")
    })
}

/// A job answer: `ETag` and `Last-Modified` always; `Retry-After` with the poll hint while
/// the job is `PENDING`.
fn job_response(
    state: &AppState,
    mut builder: actix_web::HttpResponseBuilder,
    job: &AsyncStatus,
    alert: Option<Alert>,
) -> HttpResponse {
    job_headers(state, &mut builder, job);
    let envelope = Envelope {
        alerts: alert.map(|a| vec![a]),
        response: Some(JobJson::from(job)),
        summary: None,
    };
    json_with(builder, &envelope)
}

fn job_headers(state: &AppState, builder: &mut actix_web::HttpResponseBuilder, job: &AsyncStatus) {
    builder
        .insert_header(conditional::etag(job))
        .insert_header(conditional::last_modified(job));
    if job.status == JobStatus::Pending {
        builder.insert_header((
            RETRY_AFTER,
            asyncstatus_auth::whole_seconds_up(state.settings.jobs.poll_hint),
        ));
    }
}

/// The body of `POST async_status`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = CreateJobRequest)]
pub(crate) struct CreateBody {
    /// At most 65536 bytes of UTF-8, no NUL character.
    #[schema(max_length = 65536, pattern = r"^[^\x00]*$")]
    message: Option<String>,
    /// What sort of job: 1–64 of `a-z0-9._-`.
    #[schema(pattern = r"^[a-z0-9._-]{1,64}$", example = "acme.renew")]
    kind: Option<String>,
    /// Up to 16 string pairs: keys 1–64 of `A-Za-z0-9._/-`, values at most 256 characters.
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>, example = json!({"cdn": "cdn1"}))]
    labels: Option<Labels>,
    /// Single flight: while a `PENDING` job has this key (1–200 characters, no control
    /// character), no other is created with it; the answer is that job (200). The
    /// `Idempotency-Key` header means the same.
    #[schema(min_length = 1, max_length = 200)]
    key: Option<String>,
    /// The job's deadline from now: seconds (a number) or a duration such as `"10m"`, at most
    /// `jobs.max_timeout` (default 7 days). The reaper fails the job when it passes.
    #[schema(value_type = Option<Object>, example = "2h")]
    timeout: Option<Value>,
    /// How long the job may go without an update before the reaper fails it, instead of
    /// `jobs.stale_after`: seconds or a duration string, at least 1 s, at most
    /// `jobs.max_heartbeat_timeout` (default `jobs.stale_after`); whole seconds (rounded up).
    #[schema(value_type = Option<Object>, example = 60)]
    heartbeat_timeout: Option<Value>,
}

/// `{"done": n, "total": m}` as sent.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[schema(as = ProgressRequest)]
pub(crate) struct ProgressBody {
    done: i64,
    total: i64,
}

/// The body of `POST async_status/{id}/cancel` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = CancelJobRequest)]
pub(crate) struct CancelBody {
    /// Why; shown as `cancel_reason`, at most 4096 bytes.
    #[schema(max_length = 4096)]
    reason: Option<String>,
    /// `true` finishes the job as `FAILED` at once (message `cancelled by <user>: <reason>`)
    /// instead of asking its producer. Default `false`.
    force: Option<bool>,
}

/// A duration given as seconds (a number) or as a string such as `"10m"`, checked against
/// `max`; the text names the field.
fn duration_field(
    name: &str,
    value: &Value,
    min: Duration,
    max: Duration,
    cap: &str,
) -> Result<Duration, ApiError> {
    let shape = || {
        ApiError::bad_request(format!(
            "'{name}' must be a number of seconds or a duration such as \"10m\""
        ))
    };
    let duration = match value {
        Value::Number(n) => {
            let secs = n.as_f64().ok_or_else(shape)?;
            if !secs.is_finite() || secs < 0.0 || secs > max.as_secs_f64() {
                None
            } else {
                Some(Duration::from_secs_f64(secs))
            }
        }
        Value::String(text) => Some(humantime::parse_duration(text).map_err(|_| shape())?),
        _ => return Err(shape()),
    };
    match duration {
        Some(d) if d >= min && d <= max => Ok(d),
        _ => Err(ApiError::bad_request(format!(
            "'{name}' must be at least {} and at most {} ({cap})",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ))),
    }
}

/// The new job of a create body, the `Idempotency-Key` header and the creating user.
fn new_job(
    state: &AppState,
    body: CreateBody,
    header_key: Option<String>,
    user: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<NewJob, ApiError> {
    let key = match (body.key, header_key) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request(
                "'key' and the Idempotency-Key header differ: give one, or both alike",
            ))
        }
        (a, b) => a.or(b),
    };
    let jobs = &state.settings.jobs;
    let deadline = body
        .timeout
        .map(|v| {
            duration_field(
                "timeout",
                &v,
                Duration::from_secs(1),
                jobs.max_timeout,
                "jobs.max_timeout",
            )
        })
        .transpose()?
        .map(|d| {
            chrono::TimeDelta::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| ApiError::bad_request("'timeout' is too far in the future"))
        })
        .transpose()?;
    let heartbeat_timeout = body
        .heartbeat_timeout
        .map(|v| {
            duration_field(
                "heartbeat_timeout",
                &v,
                Duration::from_secs(1),
                jobs.heartbeat_timeout_cap(),
                if jobs.max_heartbeat_timeout.is_some() {
                    "jobs.max_heartbeat_timeout"
                } else {
                    "jobs.stale_after, as jobs.max_heartbeat_timeout is not set"
                },
            )
        })
        .transpose()?
        .map(|d| {
            let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            i64::try_from(whole).unwrap_or(i64::MAX)
        });
    let job = NewJob {
        message: body.message,
        kind: body.kind,
        labels: body.labels.unwrap_or_default(),
        key,
        created_by: Some(user.to_owned()),
        deadline,
        heartbeat_timeout,
    };
    job.check()
        .map_err(|(field, e)| ApiError::bad_request(format!("'{field}': {e}")))?;
    Ok(job)
}

/// The `Idempotency-Key` header, if given.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| validate_key(k).is_ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "the Idempotency-Key header must be 1 to 200 visible ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// The body of `PUT async_status/{id}`.
// `status` is an `Option`, so that a missing one answers its own 400.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = UpdateJobRequest)]
pub(crate) struct UpdateBody {
    #[schema(value_type = JobStatus)]
    status: Option<JobStatus>,
    /// At most 65536 bytes of UTF-8, no NUL character. Absent or `null` keeps the stored message.
    #[schema(max_length = 65536, pattern = r"^[^\x00]*$")]
    message: Option<String>,
    /// `{"done": n, "total": m}`, `0 <= done <= total`, `total >= 1`; `done` may not go below
    /// the job's. Absent or `null` keeps the stored progress.
    #[schema(value_type = Option<ProgressRequest>)]
    progress: Option<ProgressBody>,
}

/// The optional `message` of a create or update body, validated.
pub(crate) fn checked_message(message: Option<String>) -> Result<Option<String>, ApiError> {
    if let Some(m) = &message {
        validate_message(m).map_err(|e| ApiError::bad_request(format!("'message': {e}")))?;
    }
    Ok(message)
}

/// The list query of a query string. `label` may repeat, so it is taken out before the other
/// parameters are read.
pub(crate) fn list_query(query_string: &str) -> Result<ListQuery, ApiError> {
    let pairs = form_urlencoded::parse(query_string.as_bytes());
    let (labels, rest): (Vec<_>, Vec<_>) = pairs.partition(|(name, _)| name == "label");
    let rest = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(rest)
        .finish();
    let params = serde_urlencoded::Deserializer::new(form_urlencoded::parse(rest.as_bytes()));
    let mut params: ListParams = serde_path_to_error::deserialize(params)?;
    params.label = labels.into_iter().map(|(_, v)| v.into_owned()).collect();
    Ok(ListQuery::try_from(params)?)
}

/// The job, read together with the other reads waiting now (see [`crate::reads`]).
async fn load(state: &web::Data<AppState>, id: i64) -> Result<AsyncStatus, ApiError> {
    state
        .db
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(NOT_FOUND))
}

/// Get a job
///
#[doc = "Permission `ASYNC-STATUS:READ`. The Traffic Ops route. With `Prefer: wait=<seconds>` \
         the answer for a `PENDING` job is held until the job finishes (by any replica) or the \
         wait ends. Past `jobs.max_waiters` (or the user's `jobs.max_waiters_per_user`) the \
         preference is ignored: the answer comes at once without `Preference-Applied`. \
         `If-None-Match` / `If-Modified-Since` answer 304 when the client's copy is current. \
         Authentication is checked before the id is parsed."]
#[utoipa::path(
    get,
    path = "/api/{version}/async_status/{id}",
    operation_id = "getJob",
    tag = "jobs",
    params(JobPath, JobConditions),
    responses(
        (
            status = 200,
            description = "The job.",
            body = JobEnvelope,
            headers(
                ("ETag" = ETag),
                ("Last-Modified" = LastModified),
                ("Retry-After" = RetryAfterPending),
                ("Preference-Applied" = PreferenceApplied),
                ("Set-Cookie" = SetCookieRefresh),
            ),
        ),
        (
            status = 304,
            description = "The client's copy is current; no body.",
            headers(
                ("ETag" = ETag),
                ("Last-Modified" = LastModified),
                ("Retry-After" = RetryAfterPending),
                ("Preference-Applied" = PreferenceApplied),
                ("Set-Cookie" = SetCookieRefresh),
            ),
        ),
        (status = 404, response = JobNotFound),
        SessionErrors,
        JobErrors,
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // The long poll (`Prefer: wait=N`, RFC 7240): a `PENDING` job's answer is held until the
    // job changes to a final status or N seconds (capped by `jobs.max_wait`) pass; the wait is
    // a parked future woken by the change feed, holding no connection and no worker. Past
    // `jobs.max_waiters` (or the user's `jobs.max_waiters_per_user`) the preference is
    // ignored: the answer comes at once. A waiter whose client hangs up is dropped with its
    // connection (see `crate::waiters`). `If-None-Match`/`If-Modified-Since` are judged on the
    // state finally answered.
    auth.require(&[Permission::ASYNC_STATUS_READ])?;
    let id = parse_id(&id)?;
    let wait = conditional::prefer_wait(&req, state.settings.jobs.max_wait)?;
    // Held until the job is final or someone asks to cancel it.
    let mut cancel_seen = None;
    let (job, wait) = conditional::read_or_wait(
        &state,
        &auth.principal,
        id,
        wait,
        || load(&state, id),
        |job: &AsyncStatus| {
            let asked = *cancel_seen.get_or_insert(job.cancel_requested) != job.cancel_requested;
            job.status.is_final() || asked
        },
    )
    .await?;
    let unchanged = conditional::not_modified(&req, &job);
    let mut builder = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    if let Some(wait) = wait {
        builder.insert_header((
            conditional::PREFERENCE_APPLIED,
            format!("wait={}", wait.as_secs()),
        ));
    }
    if unchanged {
        job_headers(&state, &mut builder, &job);
        return Ok(builder.finish());
    }
    Ok(job_response(&state, builder, &job, None))
}

/// Bytes of a list answer kept for the envelope around the jobs (alert, summary).
pub(crate) const ENVELOPE_BYTES: usize = 1024;

/// List jobs
///
#[doc = "Permission `ASYNC-STATUS:READ`. Filters, ordering and paging as Traffic Ops list \
         endpoints take them. A known parameter given twice, or with a value it cannot take, \
         answers 400 naming it; parameters with other names are ignored. One answer holds at \
         most `jobs.max_page` jobs (default 1000; a larger `limit` answers 400 naming \
         `jobs.max_page`) and at most `server.max_response_bytes` of body (default 8 MiB): a \
         list cut short by either carries an `info` alert saying so, with the `offset` and \
         `limit` to ask for the rest."]
#[utoipa::path(
    get,
    path = "/api/{version}/async_status",
    operation_id = "listJobs",
    tag = "jobs",
    params(VersionPath, ListFilters),
    responses(
        (
            status = 200,
            description = "The jobs selected, and their total count before paging \
                (`summary.count`, also when the list was cut). When the answer holds fewer jobs \
                than asked for (or, without `limit`, fewer than there are) because of \
                `jobs.max_page` or `server.max_response_bytes`, `alerts` holds one `info` alert \
                ending `Ask for the rest with offset=<n>&limit=<m>.`",
            body = JobListEnvelope,
            headers(("Set-Cookie" = SetCookieRefresh)),
        ),
        SessionErrors,
        JobErrors,
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    auth: Authenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Only the rows that fit are read (see `Store::list_jobs_within`).
    auth.require(&[Permission::ASYNC_STATUS_READ])?;
    let mut query = list_query(req.query_string())?;
    let max_page = state.settings.jobs.max_page;
    let asked = query.limit;
    if asked.is_some_and(|limit| limit > max_page) {
        return Err(ApiError::bad_request(format!(
            "query parameter 'limit' must be at most {max_page} (jobs.max_page)"
        )));
    }
    query.limit = Some(asked.unwrap_or(max_page));
    let budget = state
        .settings
        .server
        .max_response_bytes
        .saturating_sub(ENVELOPE_BYTES);
    // Read and serialized on the blocking pool; the rows are dropped before the answer is
    // put together.
    let page_query = query.clone();
    let (jobs_json, listed, count, next) = state
        .db
        .run(move |store| {
            let page = store.list_jobs_within(&page_query, budget)?;
            let (json, listed) = jobs_within(&page.jobs, budget);
            let more = page.more || listed < page.jobs.len();
            let next = listed
                .checked_sub(1)
                .and_then(|last| page.jobs.get(last))
                .filter(|_| more)
                .map(|last| page_query.cursor_after(last));
            Ok::<_, asyncstatus_persistence::StoreError>((json, listed as i64, page.total, next))
        })
        .await?;
    let rest = match asked {
        Some(limit) => limit - listed,
        None => max_page,
    };
    let bounds = format!(
        "an answer holds at most {max_page} jobs (jobs.max_page) and {} bytes \
         (server.max_response_bytes)",
        state.settings.server.max_response_bytes
    );
    let alert = match &next {
        Some(_) if listed >= asked.unwrap_or(i64::MAX) => None,
        None => None,
        Some(cursor) if query.after.is_some() => Some(Alert::info(format!(
            "The list was cut to {listed} jobs: {bounds}. Ask for the rest with \
             cursor={cursor}&limit={rest}."
        ))),
        Some(_) => {
            let offset = query.offset;
            let available = count.saturating_sub(offset).max(0);
            Some(Alert::info(format!(
                "The list was cut to {listed} of the {available} jobs from offset {offset}: \
                 {bounds}. Ask for the rest with offset={}&limit={rest}.",
                offset + listed
            )))
        }
    };
    Ok(list_body(alert, &jobs_json, Summary { count, next }))
}

/// The JSON array of `jobs`, as many as fit in `budget` bytes (at least one), and how many.
fn jobs_within(jobs: &[AsyncStatus], budget: usize) -> (Vec<u8>, usize) {
    json_array_within(jobs, budget, |job| job.id, JobJson::from)
}

/// The JSON array of the first `items` (as `to_json` writes each) that fit in `budget`
/// bytes, at least one; how many it holds.
pub(crate) fn json_array_within<'a, J, S: serde::Serialize>(
    items: &'a [J],
    budget: usize,
    id: impl Fn(&J) -> i64,
    to_json: impl Fn(&'a J) -> S,
) -> (Vec<u8>, usize) {
    let mut json = Vec::with_capacity(budget.min(64 * 1024));
    json.push(b'[');
    let mut listed = 0;
    for item in items {
        let start = json.len();
        if listed > 0 {
            json.push(b',');
        }
        if let Err(e) = serde_json::to_writer(&mut json, &to_json(item)) {
            tracing::error!(error = %e, job = id(item), "serializing a job");
            json.truncate(start);
            break;
        }
        // Escaping can make a message longer than the database measured it.
        if listed > 0 && json.len() + 1 > budget {
            json.truncate(start);
            break;
        }
        listed += 1;
    }
    json.push(b']');
    (json, listed)
}

/// `{"alerts": [...], "response": [...], "summary": {"count": N}}` around ready job JSON.
fn list_body(alert: Option<Alert>, jobs_json: &[u8], summary: Summary) -> HttpResponse {
    let alerts = alert.and_then(|a| serde_json::to_vec(&[a]).ok());
    let summary = serde_json::to_vec(&summary).unwrap_or_else(|_| b"{}".to_vec());
    let mut body = Vec::with_capacity(jobs_json.len() + ENVELOPE_BYTES);
    body.push(b'{');
    if let Some(alerts) = alerts {
        body.extend_from_slice(br#""alerts":"#);
        body.extend_from_slice(&alerts);
        body.push(b',');
    }
    body.extend_from_slice(br#""response":"#);
    body.extend_from_slice(jobs_json);
    body.extend_from_slice(br#","summary":"#);
    body.extend_from_slice(&summary);
    body.extend_from_slice(b"}\n");
    raw_json(HttpResponse::Ok(), body)
}

/// Start a job
///
#[doc = "Permission `ASYNC-STATUS:CREATE`. Creates a `PENDING` job. The body is optional: an \
         empty body is read as `{}`."]
#[utoipa::path(
    post,
    path = "/api/{version}/async_status",
    operation_id = "createJob",
    tag = "jobs",
    params(CreateParams),
    // Not `Option<CreateJobRequest>`, which utoipa 4 writes as a nullable `allOf`.
    request_body(content = ref("#/components/schemas/CreateJobRequest")),
    responses(
        (
            status = 202,
            description = "The job was created. The alert is `Async job <id> created. See \
                /api/<version>/async_status/<id> for its status.`",
            body = JobChangedEnvelope,
            headers(
                ("Location" = Location),
                ("ETag" = ETag),
                ("Last-Modified" = LastModified),
                ("Retry-After" = RetryAfterCreated),
                ("Set-Cookie" = SetCookieRefresh),
            ),
        ),
        (
            status = 200,
            description = "Single flight: a `PENDING` job with the request's key already runs; \
                nothing was created and the answer is that job, with an `info` alert `Async job \
                <id> with this key already runs; nothing was created. See \
                /api/<version>/async_status/<id> for its status.`",
            body = JobChangedEnvelope,
            headers(
                ("Location" = Location),
                ("ETag" = ETag),
                ("Last-Modified" = LastModified),
                ("Retry-After" = RetryAfterPending),
                ("Set-Cookie" = SetCookieRefresh),
            ),
        ),
        SessionErrors,
        JobErrors,
        BodyErrors,
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    version: ApiVersion,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Permission::ASYNC_STATUS_CREATE])?;
    let header_key = idempotency_key(&req)?;
    let body = read_body(&req, payload, state.settings.server.max_body_bytes).await?;
    let body = json_body::<CreateBody>(&body, true)?;
    let now = now_micros();
    let new = new_job(&state, body, header_key, &auth.principal.username, now)?;
    let outcome = state
        .db
        .run(move |store| store.create_job_with(&new, now))
        .await?;
    let (mut builder, job, alert) = match outcome {
        CreateOutcome::Created(job) => {
            let alert = created_alert(job.id, version);
            (HttpResponse::Accepted(), job, alert)
        }
        CreateOutcome::Running(job) => {
            let alert = Alert::info(format!(
                "Async job {} with this key already runs; nothing was created. See \
                 /api/{}/async_status/{} for its status.",
                job.id, version.0, job.id
            ));
            (HttpResponse::Ok(), job, alert)
        }
    };
    builder.insert_header((
        LOCATION,
        format!("/api/{}/async_status/{}", version.0, job.id),
    ));
    Ok(job_response(&state, builder, &job, Some(alert)))
}

/// Report on a job
///
#[doc = "Permission `ASYNC-STATUS:UPDATE`. `PENDING` → `PENDING` is a heartbeat (it may change \
         the message and restarts the `jobs.stale_after` clock); `PENDING` → `SUCCEEDED` or \
         `FAILED` finishes the job and the server sets `end_time`. A finished job never changes \
         again: 409. Of two producers racing to finish a job, exactly one wins."]
#[utoipa::path(
    put,
    path = "/api/{version}/async_status/{id}",
    operation_id = "updateJob",
    tag = "jobs",
    params(JobPath),
    request_body = UpdateJobRequest,
    responses(
        (
            status = 200,
            description = "The job as it now is. The alert is `Async job <id> updated.` or \
                `Async job <id> finished as <STATUS>.`",
            body = JobChangedEnvelope,
            headers(
                ("ETag" = ETag),
                ("Last-Modified" = LastModified),
                ("Retry-After" = RetryAfterPending),
                ("Set-Cookie" = SetCookieRefresh),
            ),
        ),
        (status = 404, response = JobNotFound),
        (status = 409, response = Conflict),
        SessionErrors,
        JobErrors,
        BodyErrors,
    )
)]
pub async fn update(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Permission::ASYNC_STATUS_UPDATE])?;
    let id = parse_id(&id)?;
    let body = read_body(&req, payload, state.settings.server.max_body_bytes).await?;
    let body: UpdateBody = json_body(&body, false)?;
    let update = JobUpdate {
        status: body
            .status
            .ok_or_else(|| ApiError::bad_request("'status' is required"))?,
        message: checked_message(body.message)?,
        progress: body
            .progress
            .map(|p| Progress::new(p.done, p.total))
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("'progress': {e}")))?,
    };
    let asked = update.progress;
    let outcome = state
        .db
        .run(move |store| store.update_job(id, &update, now_micros()))
        .await?;
    match outcome {
        UpdateOutcome::Updated(job) => Ok(job_response(
            &state,
            HttpResponse::Ok(),
            &job,
            Some(updated_alert(
                job.id,
                job.status.as_str(),
                job.status.is_final(),
            )),
        )),
        UpdateOutcome::NotFound => Err(ApiError::not_found(NOT_FOUND)),
        UpdateOutcome::Finished(done) => Err(ApiError::conflict(
            TransitionError::AlreadyFinished(done).to_string(),
        )),
        UpdateOutcome::ProgressBehind(stored) => Err(ApiError::bad_request(format!(
            "'progress': done {} is below the job's progress {}/{}; progress must not go back",
            asked.map_or(0, |p| p.done),
            stored.done,
            stored.total
        ))),
    }
}

/// Cancel a job
///
#[doc = "Permission `ASYNC-STATUS:CANCEL`. On a `PENDING` job: `cancel_requested` becomes \
         `true` with the reason and the user (a repeated request keeps the first's), long-polls \
         on the job wake, and the producer sees it in the answer to its next `PUT`, then \
         finishes the job as it sees fit. With `\"force\": true` the job is finished at once \
         as `FAILED`, message `cancelled by <user>: <reason>`. A finished job: 409. The body \
         is optional."]
#[utoipa::path(
    post,
    path = "/api/{version}/async_status/{id}/cancel",
    operation_id = "cancelJob",
    tag = "jobs",
    params(JobPath),
    request_body(content = ref("#/components/schemas/CancelJobRequest")),
    responses(
        (
            status = 202,
            description = "The job as it now is. The alert is `Cancel of async job <id> \
                requested.` or `Async job <id> cancelled: finished as FAILED.`",
            body = JobChangedEnvelope,
            headers(
                ("ETag" = ETag),
                ("Last-Modified" = LastModified),
                ("Retry-After" = RetryAfterPending),
                ("Set-Cookie" = SetCookieRefresh),
            ),
        ),
        (status = 404, response = JobNotFound),
        (status = 409, response = Conflict),
        SessionErrors,
        JobErrors,
        BodyErrors,
    )
)]
pub async fn cancel(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Permission::ASYNC_STATUS_CANCEL])?;
    let id = parse_id(&id)?;
    let body = read_body(&req, payload, state.settings.server.max_body_bytes).await?;
    let body: CancelBody = json_body(&body, true)?;
    if let Some(reason) = &body.reason {
        validate_reason(reason).map_err(|e| ApiError::bad_request(format!("'reason': {e}")))?;
    }
    let request = CancelRequest {
        by: auth.principal.username.clone(),
        reason: body.reason,
        force: body.force.unwrap_or(false),
    };
    let outcome = state
        .db
        .run(move |store| store.cancel_job(id, &request, now_micros()))
        .await?;
    match outcome {
        CancelOutcome::Cancelled(job) => {
            let text = if job.status.is_final() {
                format!(
                    "Async job {} cancelled: finished as {}.",
                    job.id, job.status
                )
            } else {
                format!("Cancel of async job {} requested.", job.id)
            };
            Ok(job_response(
                &state,
                HttpResponse::Accepted(),
                &job,
                Some(Alert::success(text)),
            ))
        }
        CancelOutcome::NotFound => Err(ApiError::not_found(NOT_FOUND)),
        CancelOutcome::Finished(done) => Err(ApiError::conflict(format!(
            "async status is already {done} and can no longer be cancelled"
        ))),
    }
}

/// Delete a job
///
/// Permission `ASYNC-STATUS:DELETE`. Deletes a job, pending or finished.
#[utoipa::path(
    delete,
    path = "/api/{version}/async_status/{id}",
    operation_id = "deleteJob",
    tag = "jobs",
    params(JobPath),
    responses(
        (
            status = 200,
            description = "Deleted. The alert is `Async job <id> deleted.`",
            body = AlertsEnvelope,
            headers(("Set-Cookie" = SetCookieRefresh)),
        ),
        (status = 404, response = JobNotFound),
        SessionErrors,
        JobErrors,
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Permission::ASYNC_STATUS_DELETE])?;
    let id = parse_id(&id)?;
    if state.db.run(move |store| store.delete_job(id)).await? {
        Ok(json(
            StatusCode::OK,
            &Envelope::alert(Alert::success(format!("Async job {id} deleted."))),
        ))
    } else {
        Err(ApiError::not_found(NOT_FOUND))
    }
}

#[cfg(test)]
mod tests {
    use asyncstatus_domain::{OrderBy, SortOrder};

    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<ListQuery, String> {
        let query_string = serde_urlencoded::to_string(q).map_err(|e| e.to_string())?;
        list_query(&query_string).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_list_everything_by_id() {
        assert_eq!(parse(&[]), Ok(ListQuery::default()));
        assert_eq!(parse(&[("unknown", "x")]), Ok(ListQuery::default()));
        assert_eq!(
            parse(&[("unknown", "x"), ("unknown", "y")]),
            Ok(ListQuery::default())
        );
    }

    #[test]
    fn filters_order_and_paging() {
        let q = parse(&[
            ("status", "FAILED"),
            ("id", "3"),
            ("orderby", "end_time"),
            ("sortOrder", "desc"),
            ("limit", "10"),
            ("page", "3"),
        ]);
        assert_eq!(
            q,
            Ok(ListQuery {
                status: Some(JobStatus::Failed),
                id: Some(3),
                order_by: OrderBy::EndTime,
                sort_order: SortOrder::Desc,
                limit: Some(10),
                offset: 20,
                after: None,
                ..ListQuery::default()
            })
        );
        let q = parse(&[("limit", "5"), ("offset", "7"), ("page", "9")]);
        assert_eq!(q.map(|q| q.offset), Ok(7), "offset wins over page");
        assert_eq!(parse(&[("limit", "-1")]).map(|q| q.limit), Ok(None));
        assert_eq!(parse(&[("id", "+007")]).map(|q| q.id), Ok(Some(7)));
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("status", "DONE")], "'status'"),
            (&[("id", "x")], "'id'"),
            (&[("orderby", "message")], "'orderby'"),
            (&[("sortOrder", "up")], "'sortOrder'"),
            (&[("limit", "0")], "'limit'"),
            (&[("limit", "ten")], "'limit'"),
            (&[("limit", "-2")], "'limit'"),
            (&[("limit", "5"), ("offset", "-1")], "'offset'"),
            (&[("offset", "5")], "'offset'"),
            (&[("page", "2")], "'page'"),
            (&[("limit", "5"), ("page", "0")], "'page'"),
            (&[("limit", "2"), ("page", "9223372036854775807")], "'page'"),
            (&[("id", "1"), ("id", "2")], "'id'"),
        ];
        for (params, name) in cases {
            let err = parse(params).err().unwrap_or_default();
            assert!(
                err.starts_with("400 query parameter"),
                "{params:?} gave {err:?}"
            );
            assert!(err.contains(name), "{params:?} gave {err:?}");
        }
        assert_eq!(
            parse(&[("id", "1"), ("id", "2")]).err().as_deref(),
            Some("400 query parameter 'id' must be given at most once")
        );
        assert_eq!(
            parse(&[("sortOrder", "up")]).err().as_deref(),
            Some("400 query parameter 'sortOrder' must be 'asc' or 'desc'")
        );
    }

    #[test]
    fn bodies_keep_their_texts() {
        let update = |body: &str| {
            json_body::<UpdateBody>(body.as_bytes(), false)
                .map(|b| b.status)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            update(r#"{"status":"FAILED","x":[1]}"#),
            Ok(Some(JobStatus::Failed))
        );
        for (body, text) in [
            (r#"{"status":"PENDING","status":"FAILED"}"#, "400 key 'status' is given more than once"),
            (r#"{"status":2}"#, "400 'status' must be a string"),
            (r#"{"message":{}}"#, "400 'message' must be a string"),
            (
                r#"{"status":"failed"}"#,
                "400 'status': 'failed' is not a job status; expected one of PENDING, SUCCEEDED, FAILED",
            ),
            (r#"{"status":{"PENDING":null}}"#, "400 'status' must be a string"),
            ("[]", "400 request body must be a JSON object"),
            (r#"["FAILED"]"#, "400 request body must be a JSON object"),
            ("null", "400 request body must be a JSON object"),
        ] {
            assert_eq!(update(body).err().as_deref(), Some(text), "{body}");
        }
        for body in ["", "{", r#"{"status":"FAILED"} x"#, "[[[", "u=a&p=b"] {
            let err = update(body).err().unwrap_or_default();
            assert!(
                err.starts_with("400 request body is not valid JSON: "),
                "{body}: {err}"
            );
        }
        let create = json_body::<CreateBody>(b" \n", true).map(|b| b.message);
        assert_eq!(create.map_err(|e| e.to_string()), Ok(None));
    }
}
