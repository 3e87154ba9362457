//! HTTP caching and waiting on job answers: `ETag` / `Last-Modified` with `If-None-Match` /
//! `If-Modified-Since` (RFC 9110), with actix-web's typed headers, and `Prefer: wait=N`
//! (RFC 7240), parsed here since neither actix-web nor a well-kept crate reads `Prefer`.

use std::time::{Duration, SystemTime};

use actix_web::http::header::{
    ETag, EntityTag, Header, HeaderName, HttpDate, IfModifiedSince, LastModified, IF_NONE_MATCH,
};
use actix_web::HttpRequest;
use asyncstatus_domain::AsyncStatus;

use crate::http::error::ApiError;

pub const PREFER: HeaderName = HeaderName::from_static("prefer");
pub const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// A weak entity tag that changes whenever the job does: `W/"<id>-<last_updated µs>"`.
pub fn etag(job: &AsyncStatus) -> ETag {
    ETag(EntityTag::new_weak(format!(
        "{}-{}",
        job.id,
        job.last_updated.timestamp_micros()
    )))
}

/// `last_updated` as an HTTP date (whole seconds).
pub fn last_modified(job: &AsyncStatus) -> LastModified {
    let secs = u64::try_from(job.last_updated.timestamp()).unwrap_or(0);
    LastModified(HttpDate::from(
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
    ))
}

/// Whether the client's copy is current: `If-None-Match` decides when present (a listed tag,
/// weakly compared, or `*`), else `If-Modified-Since` (no change since that second). An
/// unparsable date is ignored, as RFC 9110 says.
///
/// The list is read item by item rather than with actix-web's `IfNoneMatch`, which refuses a
/// whole header over one unreadable item or a `*` among tags (`"a", *`, which clients send and
/// we answer as `*`).
pub fn not_modified(req: &HttpRequest, job: &AsyncStatus) -> bool {
    let ETag(ours) = etag(job);
    if let Some(matched) = none_match(req, &ours) {
        return matched;
    }
    match IfModifiedSince::parse(req) {
        Ok(IfModifiedSince(since)) => {
            SystemTime::from(last_modified(job).0) <= SystemTime::from(since)
        }
        Err(_) => false,
    }
}

/// A job's read for a `GET` that may long-poll (`wait`, from [`prefer_wait`]): without a
/// wait, `load` once; with one, `load` again each time the job's waiters are woken (a change
/// by this replica, the change feed, or a re-read), until `done` holds for the job read, the
/// wait passes, or the server stops. The read is registered before each load, so a change
/// between the load and the wait still wakes it. Past `jobs.max_waiters` (or the user's
/// `jobs.max_waiters_per_user`) the preference is ignored and the job read at once. The job,
/// and the wait to announce in `Preference-Applied` (`None` when it was ignored).
pub async fn read_or_wait<J, L, Fut>(
    state: &crate::state::AppState,
    user: &asyncstatus_auth::Principal,
    id: i64,
    wait: Option<Duration>,
    load: L,
    mut done: impl FnMut(&J) -> bool,
) -> Result<(J, Option<Duration>), ApiError>
where
    L: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<J, ApiError>>,
{
    let Some(time) = wait.filter(|t| !t.is_zero()) else {
        return Ok((load().await?, wait));
    };
    let Some(subscription) = state.waiters.subscribe(id, user.user_id) else {
        tracing::info!(
            user = %user.username,
            waiters = state.waiters.len(),
            "long-poll cap reached (jobs.max_waiters, jobs.max_waiters_per_user); answering at once"
        );
        return Ok((load().await?, None));
    };
    let deadline = tokio::time::Instant::now() + time;
    loop {
        let mut changed = std::pin::pin!(subscription.notify().notified());
        changed.as_mut().enable();
        let job = load().await?;
        if done(&job) || state.waiters.is_stopping() {
            return Ok((job, wait));
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return Ok((job, wait));
        }
    }
}

/// `If-None-Match` against `ours`: `None` without the header, else whether one of its items
/// is `*` or a tag weakly equal to `ours`.
pub fn none_match(req: &HttpRequest, ours: &EntityTag) -> Option<bool> {
    let mut items = req
        .headers()
        .get_all(IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .peekable();
    items.peek()?;
    Some(
        items.any(|item| {
            item == "*" || item.parse::<EntityTag>().is_ok_and(|tag| tag.weak_eq(ours))
        }),
    )
}

/// The `wait` preference, in seconds, capped at `max`; `None` without one. A `wait` that is
/// not a whole number of seconds, or two different `wait`s, are a 400: the client asked for
/// something we cannot tell how to honour.
pub fn prefer_wait(req: &HttpRequest, max: Duration) -> Result<Option<Duration>, ApiError> {
    let mut wait: Option<u64> = None;
    for value in req.headers().get_all(PREFER) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::bad_request("the Prefer header must be visible ASCII"))?;
        for preference in value.split(',') {
            let token = preference.split(';').next().unwrap_or_default();
            let Some((name, raw)) = token.split_once('=') else {
                continue;
            };
            if !name.trim().eq_ignore_ascii_case("wait") {
                continue;
            }
            let secs: u64 = raw.trim().trim_matches('"').parse().map_err(|_| {
                ApiError::bad_request("Prefer: wait must be a whole number of seconds")
            })?;
            if wait.is_some_and(|w| w != secs) {
                return Err(ApiError::bad_request(
                    "Prefer: wait is given more than once with different values",
                ));
            }
            wait = Some(secs);
        }
    }
    Ok(wait.map(|w| Duration::from_secs(w).min(max)))
}
