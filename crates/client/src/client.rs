//! [`Client`]: the HTTP calls of the `async_status` API, with login, retries and waiting.
//!
//! Every request authenticates with `Authorization: Bearer`: a given token, or the
//! `access_token` cookie that `POST user/login` sets (logged in on first use, and again once
//! when a request is refused with 401, since tokens expire). Transient failures (no answer,
//! 502/503/504/429) are retried with doubling back-off (0.25 s up to 5 s) for at most
//! [`ClientBuilder::retry_for`]; a `POST` that may have reached the server is not repeated
//! (it could create a second job), only one refused before it was sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use asyncstatus_domain::JobStatus;
use reqwest::blocking::Response;
use reqwest::header::{HeaderMap, HeaderValue, LOCATION, RETRY_AFTER, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{chain, Error};
use crate::events::Events;
use crate::job::{Job, Progress};

/// The longest `Prefer: wait` asked for in one request (the service's default cap).
const MAX_PREFER_WAIT: u64 = 60;
/// The poll interval when a `PENDING` answer has no `Retry-After` (Traffic Ops sends none).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// The shortest pause between two polls, whatever `Retry-After` says (`0` would spin).
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The largest answer read (a list answer is at most 8 MiB by default); a larger one is an
/// error rather than memory spent on whatever a misbehaving server sends.
const MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How the client authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// No credentials: only unauthenticated routes work.
    None,
    /// Logs in with `POST user/login` (`{"u":…,"p":…}`) and uses the `access_token` cookie.
    Password { user: String, password: String },
    /// A token from an earlier login (the `access_token` cookie's value), sent as Bearer.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Password { user, .. } => write!(f, "Password {{ user: {user:?}, .. }}"),
            Credentials::Token(_) => f.write_str("Token([REDACTED])"),
        }
    }
}

/// Sets up a [`Client`]; see [`Client::builder`].
pub struct ClientBuilder {
    url: String,
    api_version: String,
    credentials: Credentials,
    ca_cert: Option<std::path::PathBuf>,
    insecure: bool,
    retry_for: Duration,
    request_timeout: Duration,
    on_retry: Option<RetryHook>,
}

type RetryHook = Arc<dyn Fn(&Error, Duration) + Send + Sync>;

impl ClientBuilder {
    /// The API version of the paths (`/api/{version}/…`); `4.0` unless set.
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Trust the PEM certificate(s) in `path` besides the built-in roots.
    pub fn ca_cert(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_cert = Some(path.into());
        self
    }

    /// Accept any TLS certificate (for a test service with a self-signed one).
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// How long transient failures of one call are retried (default 30 s; zero: never).
    pub fn retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// The time one request may take, beyond the `Prefer: wait` it asks for (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Called before each retry with the failure and the pause before the next attempt.
    pub fn on_retry(mut self, hook: impl Fn(&Error, Duration) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let base = reqwest::Url::parse(self.url.trim())
            .map_err(|e| Error::Config(format!("the URL '{}' is not valid: {e}", self.url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Error::Config(format!(
                "the URL '{}' must be http:// or https:// and name a host, like https://to.example.net",
                self.url
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(Error::Config(
                "the URL must not hold credentials: set ASYNCSTATUS_USER and ASYNCSTATUS_PASSWORD \
                 (or ASYNCSTATUS_TOKEN) instead"
                    .into(),
            ));
        }
        if base.path().contains("/api/") || base.path().ends_with("/api") {
            return Err(Error::Config(format!(
                "the URL '{}' must be the service's base URL, without /api/… (the API version is set apart)",
                self.url
            )));
        }
        let version = self.api_version.trim();
        let well_formed = version.split_once('.').is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major
                    .bytes()
                    .chain(minor.bytes())
                    .all(|b| b.is_ascii_digit())
        });
        if !well_formed {
            return Err(Error::Config(format!(
                "the API version '{version}' is not of the form MAJOR.MINOR, like 4.0"
            )));
        }
        let mut http = reqwest::blocking::Client::builder()
            .user_agent(concat!("asyncstatus-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .danger_accept_invalid_certs(self.insecure);
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "reading the CA certificate {}: {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Config(format!(
                    "the CA certificate {}: {}",
                    path.display(),
                    chain(&e)
                ))
            })?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "the CA certificate {} holds no PEM certificate",
                    path.display()
                )));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http
            .build()
            .map_err(|e| Error::Config(format!("setting up HTTP: {}", chain(&e))))?;
        let token = match &self.credentials {
            Credentials::Token(token) => Some(token.clone()),
            _ => None,
        };
        Ok(Client {
            http,
            api: format!("{}/api/{version}", base.as_str().trim_end_matches('/')),
            credentials: Arc::new(self.credentials),
            token: Arc::new(Mutex::new(token)),
            retry_for: self.retry_for,
            request_timeout: self.request_timeout,
            on_retry: self.on_retry,
        })
    }
}

/// A client of one service. Cheap to clone; clones share the login.
#[derive(Clone)]
pub struct Client {
    http: reqwest::blocking::Client,
    /// `https://host/api/4.0`
    api: String,
    credentials: Arc<Credentials>,
    token: Arc<Mutex<Option<String>>>,
    retry_for: Duration,
    request_timeout: Duration,
    on_retry: Option<RetryHook>,
}

/// What [`Client::create`] answers: the job and its `Location`.
#[derive(Debug, Clone)]
pub struct Created {
    pub job: Job,
    /// `/api/4.0/async_status/{id}`, as the service sent it.
    pub location: String,
    /// No job was created: a `PENDING` job with the same [`NewJob::key`] runs, and this is
    /// it (the service answered 200, not 202).
    pub existing: bool,
}

/// What [`Client::create`] sends: a new job's message and lifecycle options. Only what is set
/// is sent, so a bare `NewJob` (or a message alone) also works with Traffic Ops and older
/// asyncstatus servers, which ignore the rest.
///
/// ```
/// use std::time::Duration;
/// use asyncstatus_client::NewJob;
///
/// let job = NewJob::new()
///     .message("renewing certificates")
///     .kind("acme.renew")
///     .label("cdn", "cdn1")
///     .key("acme-renew-cdn1")
///     .timeout(Duration::from_secs(600));
/// assert_eq!(job.labels.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewJob {
    pub message: Option<String>,
    /// What sort of job (1–64 of `a-z0-9._-`).
    pub kind: Option<String>,
    /// Up to 16 string pairs.
    pub labels: BTreeMap<String, String>,
    /// Single-flight key (1–200 characters): while a `PENDING` job with this key exists, no
    /// other is created and that one is answered ([`Created::existing`]).
    pub key: Option<String>,
    /// The job's deadline, from now (sent in whole seconds, rounded up).
    pub timeout: Option<Duration>,
    /// How long without an update makes the job abandoned (the service's `jobs.stale_after`
    /// when unset; sent in whole seconds, rounded up).
    pub heartbeat_timeout: Option<Duration>,
}

impl NewJob {
    pub fn new() -> NewJob {
        NewJob::default()
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Adds (or replaces) one label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = Some(timeout);
        self
    }

    /// The `POST async_status` body: only the keys that are set.
    fn body(&self) -> Value {
        let mut body = serde_json::Map::new();
        if let Some(message) = &self.message {
            body.insert("message".into(), json!(message));
        }
        if let Some(kind) = &self.kind {
            body.insert("kind".into(), json!(kind));
        }
        if !self.labels.is_empty() {
            body.insert("labels".into(), json!(self.labels));
        }
        if let Some(key) = &self.key {
            body.insert("key".into(), json!(key));
        }
        if let Some(timeout) = self.timeout {
            body.insert("timeout".into(), json!(whole_seconds_up(timeout)));
        }
        if let Some(timeout) = self.heartbeat_timeout {
            body.insert("heartbeat_timeout".into(), json!(whole_seconds_up(timeout)));
        }
        Value::Object(body)
    }
}

impl From<Option<&str>> for NewJob {
    fn from(message: Option<&str>) -> NewJob {
        NewJob {
            message: message.map(str::to_owned),
            ..NewJob::default()
        }
    }
}

impl From<&str> for NewJob {
    fn from(message: &str) -> NewJob {
        NewJob::new().message(message)
    }
}

impl From<&NewJob> for NewJob {
    fn from(job: &NewJob) -> NewJob {
        job.clone()
    }
}

/// What [`Client::update_job`] sends: `PUT async_status/{id}`'s body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    /// `PENDING` for a heartbeat, `SUCCEEDED`/`FAILED` to finish the job.
    pub status: JobStatus,
    /// `None` keeps the stored message.
    pub message: Option<String>,
    /// `None` keeps the stored progress; it must not go backwards (the service answers 400).
    pub progress: Option<Progress>,
}

impl JobUpdate {
    /// An update to `status` that keeps the message and the progress.
    pub fn new(status: JobStatus) -> JobUpdate {
        JobUpdate {
            status,
            message: None,
            progress: None,
        }
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// Seconds, rounded up (a zero duration stays 0, which the service refuses).
fn whole_seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// One answer of `GET async_status/{id}`, with what it says about asking again.
#[derive(Debug, Clone)]
pub struct Polled {
    pub job: Job,
    /// `Retry-After`: the suggested pause before the next poll (present on `PENDING` jobs).
    pub retry_after: Option<Duration>,
    /// The service held the answer (`Preference-Applied: wait=N` with N > 0).
    pub held: bool,
}

/// How [`Client::wait`] ended.
#[derive(Debug, Clone)]
pub enum WaitOutcome {
    /// The job is `SUCCEEDED` or `FAILED`.
    Finished(Job),
    /// The timeout passed; the job as last seen (`PENDING`).
    TimedOut(Job),
}

/// Filters of [`Client::list`]; only those set are sent (Traffic Ops and older asyncstatus
/// servers know `status` and `limit` only).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<JobStatus>,
    /// At most this many jobs (the service caps it at `jobs.max_page`).
    pub limit: Option<u32>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs created by this user.
    pub created_by: Option<String>,
    /// Only jobs carrying every one of these labels (`label=key:value`).
    pub labels: Vec<(String, String)>,
}

/// One request to send, and how it may be retried.
struct Call<'a> {
    method: Method,
    url: &'a str,
    body: Option<&'a Value>,
    headers: Vec<(&'static str, String)>,
    /// For the whole request, answer included.
    timeout: Duration,
    /// May be sent again after a failure that may have reached the server.
    idempotent: bool,
    /// How long transient failures are retried.
    retry_for: Duration,
}

impl<'a> Call<'a> {
    fn body(mut self, body: &'a Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// An answer read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    response: T,
}

impl Client {
    /// A builder for the service at `url` (its base URL, like `https://to.example.net`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            api_version: "4.0".into(),
            credentials: Credentials::None,
            ca_cert: None,
            insecure: false,
            retry_for: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            on_retry: None,
        }
    }

    /// `https://host/api/4.0`: the base of every path.
    pub fn api_url(&self) -> &str {
        &self.api
    }

    /// The token in use, logging in first if needed (to hand to another process).
    pub fn token(&self) -> Result<Option<String>, Error> {
        self.current_token()
    }

    /// Logs in with user and password; the token is kept for the next requests and returned.
    pub fn login(&self, user: &str, password: &str) -> Result<String, Error> {
        let url = format!("{}/user/login", self.api);
        let body = json!({"u": user, "p": password});
        let answer = self.send(self.call(Method::POST, &url).body(&body))?;
        let token = answer
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|cookie| {
                let value = cookie.strip_prefix("access_token=")?;
                let value = value.split(';').next().unwrap_or_default().trim();
                (!value.is_empty()).then(|| value.to_owned())
            })
            .ok_or_else(|| Error::InvalidResponse {
                method: "POST",
                url,
                detail: "the login answer set no access_token cookie".into(),
            })?;
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        Ok(token)
    }

    /// `POST user/logout`: revokes the session of the token in use (every token refreshed
    /// from its login); the client forgets it.
    pub fn logout(&self) -> Result<(), Error> {
        let url = format!("{}/user/logout", self.api);
        self.send(self.call(Method::POST, &url))?;
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }

    /// `GET async_status/{id}`.
    pub fn get(&self, id: i64) -> Result<Job, Error> {
        Ok(self.poll(id, None)?.job)
    }

    /// `GET async_status/{id}`, asking the service to hold the answer for up to `wait` while the
    /// job is `PENDING` (`Prefer: wait`); with the answer's hints about asking again.
    pub fn poll(&self, id: i64, wait: Option<Duration>) -> Result<Polled, Error> {
        let url = format!("{}/async_status/{id}", self.api);
        let mut call = self.call(Method::GET, &url);
        if let Some(wait) = wait {
            let secs = wait.as_secs().min(MAX_PREFER_WAIT);
            call.headers.push(("prefer", format!("wait={secs}")));
            call.timeout += Duration::from_secs(secs);
        }
        let answer = self.send(call)?;
        let job: Envelope<Job> = parse("GET", &url, &answer)?;
        let held = answer
            .headers
            .get("preference-applied")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("wait="))
            .and_then(|secs| secs.trim().parse::<u64>().ok())
            .is_some_and(|secs| secs > 0);
        Ok(Polled {
            job: job.response,
            retry_after: retry_after(&answer.headers),
            held,
        })
    }

    /// `GET async_status`, ordered by id.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, Error> {
        let url = self.filtered_url("async_status", filter, true)?;
        let answer = self.send(self.call(Method::GET, &url))?;
        Ok(parse::<Envelope<Vec<Job>>>("GET", &url, &answer)?.response)
    }

    /// `GET async_status/events`: the stream of changes to the jobs that `filter` selects
    /// (its `limit` is not used), as they happen, from every replica. See [`Events`] for
    /// when it ends. Opening it is tried once (with a login again on 401), not retried.
    pub fn events(&self, filter: &ListFilter) -> Result<Events, Error> {
        let url = self.filtered_url("async_status/events", filter, false)?;
        let mut logged_in_again = false;
        loop {
            // No request timeout: the stream has no end; each read still times out after
            // the client's 30 s (reqwest's blocking default), twice the keep-alive interval.
            let mut request = self
                .http
                .get(&url)
                .header(reqwest::header::ACCEPT, "text/event-stream");
            if let Some(token) = self.current_token()? {
                request = request.bearer_auth(token);
            }
            let response = request.send().map_err(|e| request_error("GET", &url, &e))?;
            let status = response.status();
            if status.is_success() {
                return Ok(Events::new(Box::new(response), url));
            }
            if status == StatusCode::UNAUTHORIZED
                && !logged_in_again
                && matches!(*self.credentials, Credentials::Password { .. })
            {
                logged_in_again = true;
                *self.token.lock().unwrap_or_else(PoisonError::into_inner) = None;
                continue;
            }
            return match read_whole(response) {
                Ok(Ok(answer)) => Err(api_error("GET", &url, &answer)),
                Ok(Err(detail)) => Err(Error::InvalidResponse {
                    method: "GET",
                    url,
                    detail,
                }),
                Err(e) => Err(request_error("GET", &url, &e)),
            };
        }
    }

    /// `{api}/{path}?…` with the filters of `filter` that are set.
    fn filtered_url(
        &self,
        path: &str,
        filter: &ListFilter,
        with_limit: bool,
    ) -> Result<String, Error> {
        let mut url = reqwest::Url::parse(&format!("{}/{path}", self.api))
            .map_err(|e| Error::Config(format!("the URL of {path}: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(status) = filter.status {
                query.append_pair("status", status.as_str());
            }
            if let Some(limit) = filter.limit.filter(|_| with_limit) {
                query.append_pair("limit", &limit.to_string());
            }
            if let Some(kind) = &filter.kind {
                query.append_pair("kind", kind);
            }
            if let Some(user) = &filter.created_by {
                query.append_pair("created_by", user);
            }
            for (key, value) in &filter.labels {
                query.append_pair("label", &format!("{key}:{value}"));
            }
        }
        let mut url = url.to_string();
        if url.ends_with('?') {
            url.pop();
        }
        Ok(url)
    }

    /// `POST async_status`: a new `PENDING` job — or, when [`NewJob::key`] names a `PENDING`
    /// job, that one ([`Created::existing`]). Takes a [`NewJob`], a message (`&str`) or an
    /// `Option<&str>`.
    ///
    /// A `POST` that may have reached the service is not sent again, with or without a key:
    /// without one it could create a second job, and with one the second answer would be the
    /// first's job as "already runs" (200), which cannot be told from someone else's.
    pub fn create(&self, job: impl Into<NewJob>) -> Result<Created, Error> {
        let job: NewJob = job.into();
        let url = format!("{}/async_status", self.api);
        let body = job.body();
        let call = self.call(Method::POST, &url).body(&body);
        let answer = self.send(call)?;
        let job = parse::<Envelope<Job>>("POST", &url, &answer)?.response;
        let location = answer
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let path = reqwest::Url::parse(&self.api)
                    .map(|u| u.path().to_owned())
                    .unwrap_or_default();
                format!("{path}/async_status/{}", job.id)
            });
        Ok(Created {
            job,
            location,
            existing: answer.status == StatusCode::OK,
        })
    }

    /// `PUT async_status/{id}`: a heartbeat (`PENDING`; `message` `None` keeps the stored one)
    /// or the finish (`SUCCEEDED`/`FAILED`). A finished job answers 409.
    pub fn update(&self, id: i64, status: JobStatus, message: Option<&str>) -> Result<Job, Error> {
        self.update_within(id, status, message, self.retry_for)
    }

    /// [`Client::update`], retrying transient failures for `retry_for` instead of the client's.
    pub fn update_within(
        &self,
        id: i64,
        status: JobStatus,
        message: Option<&str>,
        retry_for: Duration,
    ) -> Result<Job, Error> {
        let update = JobUpdate {
            status,
            message: message.map(str::to_owned),
            progress: None,
        };
        self.update_job_within(id, &update, retry_for)
    }

    /// `PUT async_status/{id}` with a message and progress. The answer is the job as stored,
    /// so a heartbeat's answer tells whether someone asked to cancel it
    /// ([`Job::cancel_requested`]).
    pub fn update_job(&self, id: i64, update: &JobUpdate) -> Result<Job, Error> {
        self.update_job_within(id, update, self.retry_for)
    }

    /// [`Client::update_job`], retrying transient failures for `retry_for`.
    pub fn update_job_within(
        &self,
        id: i64,
        update: &JobUpdate,
        retry_for: Duration,
    ) -> Result<Job, Error> {
        let url = format!("{}/async_status/{id}", self.api);
        let mut body = json!({ "status": update.status.as_str() });
        if let Some(message) = &update.message {
            body["message"] = json!(message);
        }
        if let Some(progress) = update.progress {
            body["progress"] = json!(progress);
        }
        let mut call = self.call(Method::PUT, &url).body(&body);
        call.retry_for = retry_for;
        let answer = self.send(call)?;
        Ok(parse::<Envelope<Job>>("PUT", &url, &answer)?.response)
    }

    /// `POST async_status/{id}/cancel`: asks the job's producer to stop (`cancel_requested`
    /// becomes true, with `reason` and the user); with `force` the service finishes the job
    /// as `FAILED` at once (`cancelled by <user>: <reason>`). The job as it is now. A finished
    /// job answers 409, a missing one 404.
    ///
    /// A plain request is retried like an idempotent call (asking twice asks once); a forced
    /// one only when it surely was not sent (a second one would answer 409).
    pub fn cancel(&self, id: i64, reason: Option<&str>, force: bool) -> Result<Job, Error> {
        let url = format!("{}/async_status/{id}/cancel", self.api);
        let mut body = json!({});
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        if force {
            body["force"] = json!(true);
        }
        let mut call = self.call(Method::POST, &url).body(&body);
        call.idempotent = !force;
        let answer = self.send(call)?;
        Ok(parse::<Envelope<Job>>("POST", &url, &answer)?.response)
    }

    /// Waits until the job is finished or `timeout` passes. Asks the service to hold each
    /// answer (`Prefer: wait`, up to 60 s); a service that does not (Traffic Ops, or
    /// `jobs.max_wait = 0s`) is polled as its `Retry-After` says (5 s without one).
    pub fn wait(&self, id: i64, timeout: Duration) -> Result<WaitOutcome, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let asked = Duration::from_secs(remaining.as_secs().min(MAX_PREFER_WAIT));
            let started = Instant::now();
            let polled = self.poll(id, (!asked.is_zero()).then_some(asked))?;
            if polled.job.status.is_final() {
                return Ok(WaitOutcome::Finished(polled.job));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(WaitOutcome::TimedOut(polled.job));
            }
            // A held answer that came back early (the service is stopping) is not a reason to
            // ask again at once: that would spin.
            if !polled.held || started.elapsed() < asked / 2 {
                let pause = polled
                    .retry_after
                    .unwrap_or(DEFAULT_POLL_INTERVAL)
                    .max(MIN_POLL_INTERVAL);
                std::thread::sleep(pause.min(remaining));
            }
        }
    }

    fn current_token(&self) -> Result<Option<String>, Error> {
        if let Some(token) = self
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(Some(token));
        }
        match &*self.credentials {
            Credentials::Password { user, password } => self.login(user, password).map(Some),
            _ => Ok(None),
        }
    }

    /// A call of `method` on `url` with the client's timeout and retry budget; retried on
    /// any transient failure unless it is a `POST`.
    fn call<'a>(&self, method: Method, url: &'a str) -> Call<'a> {
        Call {
            idempotent: method != Method::POST,
            method,
            url,
            body: None,
            headers: Vec::new(),
            timeout: self.request_timeout,
            retry_for: self.retry_for,
        }
    }

    /// Sends `call`: authenticates, retries transient failures, and turns error answers into
    /// [`Error::Api`]. Idempotent calls are retried on any transient failure, others only
    /// when the request surely was not sent.
    fn send(&self, call: Call<'_>) -> Result<Answer, Error> {
        let Call {
            method,
            url,
            body,
            headers,
            timeout,
            idempotent,
            retry_for,
        } = call;
        let name = method_name(&method);
        let is_login = url.ends_with("/user/login");
        let deadline = Instant::now() + retry_for;
        let mut backoff = FIRST_BACKOFF;
        let mut logged_in_again = false;
        loop {
            let token = if is_login {
                None
            } else {
                self.current_token()?
            };
            let mut request = self.http.request(method.clone(), url).timeout(timeout);
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            for (name, value) in &headers {
                if let Ok(value) = HeaderValue::from_str(value) {
                    request = request.header(*name, value);
                }
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let failure = match request.send().and_then(read_whole) {
                Ok(Err(detail)) => {
                    return Err(Error::InvalidResponse {
                        method: name,
                        url: url.to_owned(),
                        detail,
                    })
                }
                Ok(Ok(answer)) if answer.status.is_success() => return Ok(answer),
                Ok(Ok(answer))
                    if answer.status == StatusCode::UNAUTHORIZED
                        && !is_login
                        && !logged_in_again
                        && matches!(*self.credentials, Credentials::Password { .. }) =>
                {
                    // The token expired or was revoked: log in again, once.
                    logged_in_again = true;
                    *self.token.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    continue;
                }
                Ok(Ok(answer)) => {
                    let error = api_error(name, url, &answer);
                    if !(error.is_transient() && idempotent) {
                        return Err(error);
                    }
                    error
                }
                Err(e) => {
                    let error = request_error(name, url, &e);
                    // A connection that was never made surely sent nothing.
                    let not_sent = e.is_connect();
                    if matches!(error, Error::Tls { .. }) || !(idempotent || not_sent) {
                        return Err(error);
                    }
                    error
                }
            };
            if Instant::now() + backoff > deadline {
                return Err(failure);
            }
            if let Some(hook) = &self.on_retry {
                hook(&failure, backoff);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// The answer with its body, or `Ok(Err(detail))` when the body is larger than
/// [`MAX_BODY_BYTES`].
fn read_whole(response: Response) -> Result<Result<Answer, String>, reqwest::Error> {
    use std::io::Read;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    let mut limited = response.take(MAX_BODY_BYTES + 1);
    if let Err(e) = limited.read_to_end(&mut body) {
        // reqwest's own error is inside the io::Error; the answer is incomplete either way.
        return Ok(Err(format!("reading the answer: {}", chain(&e))));
    }
    if body.len() as u64 > MAX_BODY_BYTES {
        return Ok(Err(format!(
            "the answer is larger than {} MiB",
            MAX_BODY_BYTES / 1024 / 1024
        )));
    }
    Ok(Ok(Answer {
        status,
        headers,
        body,
    }))
}

/// A request that got no answer: a refused TLS certificate, or the service unreachable.
fn request_error(method: &'static str, url: &str, error: &reqwest::Error) -> Error {
    let detail = chain(error);
    if detail.contains("invalid peer certificate") {
        Error::Tls {
            method,
            url: url.to_owned(),
            detail,
        }
    } else {
        Error::Unreachable {
            method,
            url: url.to_owned(),
            detail,
        }
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

fn parse<T: serde::de::DeserializeOwned>(
    method: &'static str,
    url: &str,
    answer: &Answer,
) -> Result<T, Error> {
    serde_json::from_slice(&answer.body).map_err(|e| Error::InvalidResponse {
        method,
        url: url.to_owned(),
        detail: format!("{e} in {}", snippet(&answer.body)),
    })
}

/// The error alerts' text of an error answer, else the start of its body.
fn api_error(method: &'static str, url: &str, answer: &Answer) -> Error {
    #[derive(Deserialize)]
    struct Alert {
        #[serde(default)]
        level: String,
        #[serde(default)]
        text: String,
    }
    #[derive(Deserialize)]
    struct Alerts {
        alerts: Vec<Alert>,
    }
    let text = match serde_json::from_slice::<Alerts>(&answer.body) {
        Ok(Alerts { alerts }) if !alerts.is_empty() => {
            let errors: Vec<&str> = alerts
                .iter()
                .filter(|a| a.level == "error")
                .map(|a| a.text.as_str())
                .collect();
            if errors.is_empty() {
                alerts
                    .iter()
                    .map(|a| a.text.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            } else {
                errors.join("; ")
            }
        }
        _ if answer.body.is_empty() => answer
            .status
            .canonical_reason()
            .unwrap_or("no body")
            .to_owned(),
        _ => snippet(&answer.body),
    };
    Error::Api {
        method,
        url: url.to_owned(),
        status: answer.status.as_u16(),
        text: printable(&text),
    }
}

/// `text` without control characters (a server's text must not drive the user's terminal).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn snippet(body: &[u8]) -> String {
    let text = printable(&String::from_utf8_lossy(body));
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "an empty body".into(),
        None => text.to_owned(),
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the API).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(url: &str, version: &str) -> Result<Client, Error> {
        Client::builder(url).api_version(version).build()
    }

    #[test]
    fn base_urls_and_versions_are_checked() {
        assert_eq!(
            build("https://to.example.net/", "4.0").unwrap().api_url(),
            "https://to.example.net/api/4.0"
        );
        assert_eq!(
            build("http://127.0.0.1:8080/prefix", "5.0")
                .unwrap()
                .api_url(),
            "http://127.0.0.1:8080/prefix/api/5.0"
        );
        for (url, version) in [
            ("to.example.net", "4.0"),
            ("ftp://to.example.net", "4.0"),
            ("https://to.example.net/api/4.0", "4.0"),
            ("https://admin:secret@to.example.net", "4.0"),
            ("https://to.example.net", "4"),
            ("https://to.example.net", "v4.0"),
            ("https://to.example.net", "4.0/../x"),
        ] {
            assert!(
                matches!(build(url, version), Err(Error::Config(_))),
                "{url} {version} accepted"
            );
        }
    }

    #[test]
    fn a_new_job_sends_only_what_is_set() {
        assert_eq!(NewJob::from(None).body(), json!({}));
        assert_eq!(NewJob::from("hi").body(), json!({"message": "hi"}));
        let job = NewJob::new()
            .message("renewing")
            .kind("acme.renew")
            .label("cdn", "cdn1")
            .label("xmlId", "demo1")
            .key("k1")
            .timeout(Duration::from_millis(1500))
            .heartbeat_timeout(Duration::from_secs(60));
        assert_eq!(
            job.body(),
            json!({"message": "renewing", "kind": "acme.renew",
                   "labels": {"cdn": "cdn1", "xmlId": "demo1"}, "key": "k1",
                   "timeout": 2, "heartbeat_timeout": 60})
        );
    }

    #[test]
    fn error_answers_carry_the_alert_text() {
        let answer = Answer {
            status: StatusCode::CONFLICT,
            headers: HeaderMap::new(),
            body: br#"{"alerts":[{"text":"async status is already SUCCEEDED and can no longer be changed","level":"error"}]}"#.to_vec(),
        };
        let error = api_error("PUT", "http://h/api/4.0/async_status/1", &answer);
        assert_eq!(
            error.to_string(),
            "PUT http://h/api/4.0/async_status/1: 409: async status is already SUCCEEDED and can no longer be changed"
        );
        assert!(!error.is_transient());

        let answer = Answer {
            status: StatusCode::BAD_GATEWAY,
            headers: HeaderMap::new(),
            body: b"<html>\x1b[2Jproxy error</html>".to_vec(),
        };
        let error = api_error("GET", "http://h/x", &answer);
        assert_eq!(
            error.to_string(),
            "GET http://h/x: 502: <html> [2Jproxy error</html>"
        );
        assert!(error.is_transient());
    }
}
