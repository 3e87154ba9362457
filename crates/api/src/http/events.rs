//! `GET async_status/events`: the jobs' changes as Server-Sent Events, from every replica
//! (the fan-out is [`crate::events`]; this module is one stream and its filters).
//!
//! A stream counts against the long-poll caps (`jobs.max_waiters`, overall: 503;
//! `jobs.max_waiters_per_user`: 429) until it ends. It ends when its client hangs up (the
//! connection is dropped at the client's EOF, see `startup.rs`, and with it the stream and its
//! slot), when it lags, when its token expires or stops authorizing it (re-checked every
//! `jobs.event_recheck`), and at once when the server stops.

use std::convert::Infallible;
use std::sync::Arc;

use actix_web::http::header::{ContentEncoding, CACHE_CONTROL};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use asyncstatus_domain::{AsyncStatus, ListQuery, Permission};

use crate::events::Event;
use crate::http::error::ApiError;
use crate::http::extract::Authenticated;
use crate::http::openapi::{EventFilters, JobErrors, SessionErrors, VersionPath};
use crate::state::AppState;
use crate::waiters::{CapReached, Slot};

/// The list parameters that order or page, which a stream has no use for: refused (400),
/// so that a client does not believe a stream is cut to `limit` or sorted.
const PAGING: [&str; 6] = ["orderby", "sortOrder", "limit", "offset", "page", "cursor"];

/// The filters of a stream: the list filters (`status`, `id`, `kind`, `created_by`, `label`,
/// `newerThan`, `olderThan`), parsed as `GET async_status` parses them.
fn stream_filter(query_string: &str) -> Result<ListQuery, ApiError> {
    for (name, _) in form_urlencoded::parse(query_string.as_bytes()) {
        if let Some(paging) = PAGING.iter().find(|p| **p == name) {
            return Err(ApiError::bad_request(format!(
                "query parameter '{paging}' does not apply to the event stream: it sends each \
                 change as it happens, unordered and unpaged"
            )));
        }
    }
    crate::http::jobs::list_query(query_string)
}

/// Whether `job`, as it now is, is selected by the list filters of `q` (as the list's SQL
/// selects it).
fn selects(q: &ListQuery, job: &AsyncStatus) -> bool {
    q.status.is_none_or(|s| s == job.status)
        && q.id.is_none_or(|id| id == job.id)
        && q.kind.as_ref().is_none_or(|k| job.kind.as_ref() == Some(k))
        && q.created_by
            .as_ref()
            .is_none_or(|u| job.created_by.as_ref() == Some(u))
        && q.labels
            .iter()
            .all(|(key, value)| job.labels.get(key) == Some(value))
        && q.newer_than.is_none_or(|t| job.start_time > t)
        && q.older_than.is_none_or(|t| job.start_time < t)
}

/// The periodic re-check of a stream's token: a session logged out, a user removed or a
/// permission taken away ends the stream within `jobs.event_recheck`.
struct Recheck {
    every: Interval,
    state: web::Data<AppState>,
    token: String,
}

impl Recheck {
    /// Whether the token still authenticates a user who may read jobs (the user cache first,
    /// as for any request; a miss reads the database). Any failure ends the stream.
    async fn still_allowed(&self) -> bool {
        let auth = self.state.auth.clone();
        let principal = match auth.authenticate_cached(&self.token) {
            Ok((Some(principal), _)) => principal,
            Ok((None, claims)) => {
                let token = self.token.clone();
                match self.state.db.run(move |_| auth.load(&token, &claims)).await {
                    Ok(principal) => principal,
                    Err(_) => return false,
                }
            }
            Err(_) => return false,
        };
        principal.has(&Permission::ASYNC_STATUS_READ)
    }
}

/// Waits for the next re-check; never, without one.
async fn recheck_due(recheck: &mut Option<Recheck>) {
    match recheck {
        Some(r) => {
            r.every.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// One open stream.
struct Stream {
    events: broadcast::Receiver<Arc<Event>>,
    stop: watch::Receiver<bool>,
    filter: ListQuery,
    keepalive: Interval,
    /// The token's expiry: the stream ends then (a new request needs a valid token).
    expires: Instant,
    recheck: Option<Recheck>,
    opened: bool,
    done: bool,
    _slot: Slot,
}

const OPENED: &[u8] = b": connected\n\n";
const KEEPALIVE: &[u8] = b": keep-alive\n\n";
const STOPPING: &[u8] = b": server stopping\n\n";
const REFUSED: &[u8] = b": no longer authorized\n\n";

/// `event: lagged`: changes were missed; the stream ends, the client should list again.
fn lagged(missed: Option<u64>) -> Bytes {
    let missed = missed.map_or_else(|| "null".to_owned(), |n| n.to_string());
    Bytes::from(format!("event: lagged\ndata: {{\"missed\":{missed}}}\n\n"))
}

impl Stream {
    /// The next frame to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if !self.opened {
            self.opened = true;
            return Some(Bytes::from_static(OPENED));
        }
        loop {
            let frame = tokio::select! {
                biased;
                _ = self.stop.wait_for(|stopping| *stopping) => {
                    self.done = true;
                    Bytes::from_static(STOPPING)
                }
                _ = tokio::time::sleep_until(self.expires) => return None,
                _ = recheck_due(&mut self.recheck) => {
                    let allowed = match &self.recheck {
                        Some(r) => r.still_allowed().await,
                        None => true,
                    };
                    if allowed {
                        continue;
                    }
                    self.done = true;
                    Bytes::from_static(REFUSED)
                }
                received = self.events.recv() => match received {
                    Ok(event) => match &*event {
                        Event::Job { job, frame } if selects(&self.filter, job) => frame.clone(),
                        // A deleted job's attributes are gone: every stream hears of it,
                        // unless it watches another id.
                        Event::Deleted { id, frame } if self.filter.id.is_none_or(|w| w == *id) => {
                            frame.clone()
                        }
                        Event::Job { .. } | Event::Deleted { .. } => continue,
                        Event::Lagged => {
                            self.done = true;
                            lagged(None)
                        }
                    },
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        self.done = true;
                        lagged(Some(missed))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.keepalive.tick() => Bytes::from_static(KEEPALIVE),
            };
            self.keepalive.reset();
            return Some(frame);
        }
    }
}

/// Job events
///
#[doc = "Permission `ASYNC-STATUS:READ`. Server-Sent Events (`text/event-stream`) of every \
         job's changes, made by any replica: `event: job` with the job's JSON (exactly the \
         `response` of `GET async_status/{id}`) for each creation and change, `event: deleted` \
         with `{\"id\": <id>}` for each deletion, a `: keep-alive` comment every \
         `jobs.event_keepalive` (default 15 s) of silence. The list filters select the `job` \
         events by the job as it is after the change (a job leaving the selection, such as a \
         finished job under `status=PENDING`, is not sent); `deleted` goes to every stream \
         (unless `id` names another job). Ordering and paging parameters answer 400. A stream \
         that falls more than 256 events behind, or when changes may have been missed, gets \
         `event: lagged` (`{\"missed\": <n or null>}`) and ends: reconnect, then list again. \
         There is no replay: open the stream first, then list. A stream ends when its token \
         expires or no longer authorizes it (re-checked every `jobs.event_recheck`, default 1 \
         min: logout, a removed user, a lost permission), and at once when the server stops. It counts against the long-poll caps: \
         past `jobs.max_waiters` 503, past `jobs.max_waiters_per_user` 429."]
#[utoipa::path(
    get,
    path = "/api/{version}/async_status/events",
    operation_id = "jobEvents",
    tag = "jobs",
    params(VersionPath, EventFilters),
    responses(
        (
            status = 200,
            description = "The stream: `: connected`, then events as they happen.",
            body = String,
            content_type = "text/event-stream",
        ),
        (
            status = 429,
            description = "The user holds `jobs.max_waiters_per_user` long-polls and streams \
                already. The alert names the setting.",
            body = ErrorEnvelope,
        ),
        SessionErrors,
        JobErrors,
    )
)]
pub async fn events(
    state: web::Data<AppState>,
    auth: Authenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    auth.require(&[Permission::ASYNC_STATUS_READ])?;
    let filter = stream_filter(req.query_string())?;
    if state.events.is_stopping() {
        return Err(ApiError::busy(
            "the server is stopping; reconnect to another replica",
        ));
    }
    let slot = state
        .waiters
        .hold(auth.principal.user_id)
        .map_err(|cap| match cap {
            CapReached::Total => ApiError::busy(
                "too many long-polls and event streams are open (jobs.max_waiters); try again later",
            ),
            CapReached::User => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "this user holds too many long-polls and event streams \
                 (jobs.max_waiters_per_user); close one first",
            ),
        })?;
    let (events, stop) = state.events.subscribe();
    let period = state.settings.jobs.event_keepalive;
    let mut keepalive = tokio::time::interval_at(Instant::now() + period, period);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let left = auth.claims.exp - chrono::Utc::now().timestamp();
    let expires = Instant::now() + std::time::Duration::from_secs(u64::try_from(left).unwrap_or(0));
    let recheck = crate::http::extract::token_of(&req).map(|(token, _)| {
        let every = state.settings.jobs.event_recheck;
        let mut every = tokio::time::interval_at(Instant::now() + every, every);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Recheck {
            every,
            state: state.clone(),
            token,
        }
    });
    let stream = Stream {
        events,
        stop,
        filter,
        keepalive,
        expires,
        recheck,
        opened: false,
        done: false,
        _slot: slot,
    };
    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let frame = stream.next().await?;
        Some((Ok::<_, Infallible>(frame), stream))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        // One user's view, never to be kept by a cache.
        .insert_header((CACHE_CONTROL, "private, no-store"))
        // Proxies (nginx) pass each event on at once; the gzip middleware leaves it alone.
        .insert_header(("x-accel-buffering", "no"))
        .insert_header(ContentEncoding::Identity)
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(q: &str) -> Result<ListQuery, String> {
        stream_filter(q).map_err(|e| e.to_string())
    }

    /// A stream on `hub`, opened, that would keep alive every hour and expire at `expires`.
    fn open_stream(hub: &crate::events::Events, expires: Instant) -> Stream {
        let (events, stop) = hub.subscribe();
        let hour = std::time::Duration::from_secs(3600);
        let waiters = Arc::new(crate::waiters::Waiters::default());
        Stream {
            events,
            stop,
            filter: ListQuery::default(),
            keepalive: tokio::time::interval_at(Instant::now() + hour, hour),
            expires,
            recheck: None,
            opened: true,
            done: false,
            _slot: waiters.hold(1).unwrap(),
        }
    }

    #[actix_web::test]
    async fn a_stream_that_falls_behind_is_told_it_lagged_and_ends() {
        let hub = crate::events::Events::default();
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        let mut slow = open_stream(&hub, far);
        let extra = 10;
        for id in 0..(crate::events::CHANNEL_CAPACITY as i64 + extra) {
            hub.send(Event::Deleted {
                id,
                frame: Bytes::from(format!("event: deleted\ndata: {{\"id\":{id}}}\n\n")),
            });
        }
        assert_eq!(slow.next().await, Some(lagged(Some(extra as u64))));
        assert_eq!(slow.next().await, None, "and ends");
        // Missed changes (the listener reconnected) end every stream the same way.
        let mut other = open_stream(&hub, far);
        hub.send(Event::Lagged);
        assert_eq!(other.next().await, Some(lagged(None)));
        assert_eq!(other.next().await, None);
    }

    #[actix_web::test]
    async fn a_stream_ends_when_its_token_expires() {
        let hub = crate::events::Events::default();
        let mut stream = open_stream(&hub, Instant::now());
        assert_eq!(stream.next().await, None);
    }

    #[test]
    fn paging_parameters_are_refused_and_filters_read() {
        for name in PAGING {
            let err = filter(&format!("{name}=1")).err().unwrap_or_default();
            assert!(err.starts_with(&format!("400 query parameter '{name}' does not apply")));
        }
        assert!(filter("status=DONE")
            .err()
            .unwrap_or_default()
            .contains("'status'"));
        let q = filter("kind=acme.renew&label=cdn:cdn1&label=x:y&unknown=1").unwrap();
        assert_eq!(q.kind.as_deref(), Some("acme.renew"));
        assert_eq!(q.labels.len(), 2);
    }

    #[test]
    fn the_filters_select_as_the_list_does() {
        let now = chrono::Utc::now();
        let mut job = AsyncStatus {
            id: 5,
            status: asyncstatus_domain::JobStatus::Pending,
            message: None,
            start_time: now,
            end_time: None,
            last_updated: now,
            kind: Some("acme.renew".into()),
            labels: [("cdn".to_owned(), "cdn1".to_owned())]
                .into_iter()
                .collect(),
            created_by: Some("admin".into()),
            progress: None,
            deadline: None,
            heartbeat_timeout: None,
            cancel_requested: false,
            cancel_reason: None,
            cancel_requested_by: None,
        };
        let yes = |q: &str| selects(&filter(q).unwrap(), &job);
        assert!(yes(""));
        assert!(yes(
            "status=PENDING&kind=acme.renew&label=cdn:cdn1&created_by=admin&id=5"
        ));
        assert!(!yes("status=FAILED"));
        assert!(!yes("kind=dnssec"));
        assert!(!yes("label=cdn:cdn2"));
        assert!(!yes("label=cdn:cdn1&label=x:y"));
        assert!(!yes("created_by=ops"));
        assert!(!yes("id=6"));
        let before = (now - chrono::TimeDelta::seconds(1)).to_rfc3339();
        let after = (now + chrono::TimeDelta::seconds(1)).to_rfc3339();
        let q = |name: &str, t: &str| {
            form_urlencoded::Serializer::new(String::new())
                .append_pair(name, t)
                .finish()
        };
        assert!(yes(&q("newerThan", &before)));
        assert!(!yes(&q("newerThan", &after)));
        assert!(yes(&q("olderThan", &after)));
        assert!(!yes(&q("olderThan", &before)));
        job.kind = None;
        assert!(!selects(&filter("kind=acme.renew").unwrap(), &job));
    }
}
