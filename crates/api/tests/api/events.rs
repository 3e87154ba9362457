//! `GET async_status/events`: Server-Sent Events of every job change, over real HTTP.

use std::time::Duration;

use asyncstatus_persistence::Backend;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_alert, assert_alert_contains, cookie_client, parked, TestApp};

/// How long a test waits for the next bytes of a stream.
const PATIENCE: Duration = Duration::from_secs(10);

/// One frame of a stream: its `event`, its `data` (JSON) or, for a comment, its text.
#[derive(Debug, PartialEq)]
enum Frame {
    Event(String, Value),
    Comment(String),
}

/// An open event stream, read frame by frame.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// Opens the stream at `url` with `client` and reads its opening comment.
    async fn open(client: &reqwest::Client, url: &str) -> Sse {
        Sse::open_with(client.get(url)).await
    }

    /// Opens the stream that `request` asks for and reads its opening comment.
    async fn open_with(request: reqwest::RequestBuilder) -> Sse {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "a stream opens");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "private, no-store");
        let mut sse = Sse {
            response,
            buffer: String::new(),
        };
        assert_eq!(sse.frame().await, Some(Frame::Comment("connected".into())));
        sse
    }

    /// The next frame; `None` when the stream ended. Fails after [`PATIENCE`].
    async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(block.trim_end()));
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("the stream sends within the patience")
                .expect("the stream reads");
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => {
                    assert!(self.buffer.is_empty(), "a partial frame: {:?}", self.buffer);
                    return None;
                }
            }
        }
    }

    /// The next event (comments skipped): its name and data.
    async fn event(&mut self) -> (String, Value) {
        loop {
            match self.frame().await {
                Some(Frame::Event(name, data)) => return (name, data),
                Some(Frame::Comment(_)) => continue,
                None => panic!("the stream ended"),
            }
        }
    }

    /// The next event, which must be a `job` event; its job.
    async fn job(&mut self) -> Value {
        let (name, data) = self.event().await;
        assert_eq!(name, "job", "{data}");
        data
    }
}

fn parse(block: &str) -> Frame {
    let mut name = None;
    let mut data = Vec::new();
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            assert!(
                name.is_none() && data.is_empty(),
                "a comment alone: {block:?}"
            );
            return Frame::Comment(comment.trim().to_owned());
        }
        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
        match field {
            "event" => name = Some(value.to_owned()),
            "data" => data.push(value.to_owned()),
            other => panic!("unexpected field {other:?} in {block:?}"),
        }
    }
    let data = serde_json::from_str(&data.join("\n")).expect("JSON data");
    Frame::Event(name.expect("an event name"), data)
}

impl TestApp {
    /// `…/async_status/events?{query}`
    fn events_url(&self, query: &str) -> String {
        self.api(&format!("/async_status/events?{query}"))
    }

    /// The job as `GET async_status/{id}` shows it in `response`.
    async fn job_json(&self, id: i64) -> Value {
        let body: Value = self.get(self.job_url(id)).await.json().await.unwrap();
        body["response"].clone()
    }

    /// Creates a job with this body; its id.
    async fn create_with(&self, body: Value) -> i64 {
        let r = self.post_json(self.api("/async_status"), &body).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        r.json::<Value>().await.unwrap()["response"]["id"]
            .as_i64()
            .unwrap()
    }
}

async fn a_stream_sees_creation_heartbeat_cancel_finish_and_deletion(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let mut stream = Sse::open(&app.client, &app.events_url("")).await;
    let id = app
        .create_with(json!({"message": "started", "kind": "acme.renew"}))
        .await;
    let created = stream.job().await;
    assert_eq!(created, app.job_json(id).await, "exactly as GET shows it");
    assert_eq!(created["status"], "PENDING");

    let r = app.put_job(id, json!({"status": "PENDING", "message": "half way", "progress": {"done": 1, "total": 2}})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let beat = stream.job().await;
    assert_eq!(beat, app.job_json(id).await);
    assert_eq!(beat["message"], "half way");
    assert_eq!(beat["progress"], json!({"done": 1, "total": 2}));

    let r = app
        .post_json(
            app.api(&format!("/async_status/{id}/cancel")),
            &json!({"reason": "no longer needed"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let cancel = stream.job().await;
    assert_eq!(cancel["cancel_requested"], true);
    assert_eq!(cancel["cancel_reason"], "no longer needed");

    let r = app
        .put_job(id, json!({"status": "SUCCEEDED", "message": "done"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let finished = stream.job().await;
    assert_eq!(finished, app.job_json(id).await);
    assert_eq!(finished["status"], "SUCCEEDED");

    let r = app.client.delete(app.job_url(id)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(stream.event().await, ("deleted".into(), json!({"id": id})));

    // Each change was sent once (on PostgreSQL the replica hears its own changes twice).
    let other = app.create_job("another").await;
    assert_eq!(stream.job().await["id"], other, "nothing else came between");
}

async fn filters_select_what_a_stream_is_sent(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let mut by_kind = Sse::open(&app.client, &app.events_url("kind=acme.renew")).await;
    let mut by_label = Sse::open(
        &app.client,
        &app.events_url("label=cdn:cdn1&label=xmlId:demo1"),
    )
    .await;
    let mut by_status = Sse::open(&app.client, &app.events_url("status=SUCCEEDED")).await;
    let mut by_user = Sse::open(&app.client, &app.events_url("created_by=nobody")).await;

    let other = app
        .create_with(json!({"kind": "dnssec.refresh", "labels": {"cdn": "cdn1"}}))
        .await;
    let wanted = app
        .create_with(json!({"kind": "acme.renew", "labels": {"cdn": "cdn1", "xmlId": "demo1"}}))
        .await;
    assert_eq!(
        by_kind.job().await["id"],
        wanted,
        "the other kind was not sent"
    );
    assert_eq!(
        by_label.job().await["id"],
        wanted,
        "one label is not all of them"
    );

    let r = app.put_job(other, json!({"status": "FAILED"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.put_job(wanted, json!({"status": "SUCCEEDED"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let succeeded = by_status.job().await;
    assert_eq!(
        succeeded["id"], wanted,
        "neither creation nor the FAILED job was sent"
    );
    assert_eq!(succeeded["status"], "SUCCEEDED");
    let finished = by_kind.job().await;
    assert_eq!(
        (finished["id"].as_i64(), finished["status"].as_str()),
        (Some(wanted), Some("SUCCEEDED"))
    );

    // A deletion goes to every stream: the job's attributes are gone.
    let r = app.client.delete(app.job_url(other)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for stream in [&mut by_kind, &mut by_status, &mut by_user] {
        assert_eq!(
            stream.event().await,
            ("deleted".into(), json!({"id": other}))
        );
    }
    assert_eq!(by_label.job().await["status"], "SUCCEEDED");
    assert_eq!(
        by_label.event().await,
        ("deleted".into(), json!({"id": other}))
    );
}

async fn bad_filters_paging_and_missing_permissions_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let r = app.get(app.events_url("")).await;
    assert_alert(r, StatusCode::UNAUTHORIZED, "unauthorized, please log in.").await;
    app.add_user("viewer", "viewer-password-1234", "read-only")
        .await;
    let viewer = cookie_client();
    app.login_with(&viewer, "viewer", "viewer-password-1234")
        .await;
    let r = viewer.get(app.events_url("")).send().await.unwrap();
    assert_alert(
        r,
        StatusCode::FORBIDDEN,
        "missing required Permissions: ASYNC-STATUS:READ",
    )
    .await;
    app.login_admin().await;
    for (query, named) in [
        ("status=DONE", "'status'"),
        ("label=novalue", "'label'"),
        ("newerThan=yesterday", "'newerThan'"),
        ("limit=10", "'limit'"),
        ("orderby=id", "'orderby'"),
        ("page=2", "'page'"),
    ] {
        let r = app.get(app.events_url(query)).await;
        assert_alert_contains(r, StatusCode::BAD_REQUEST, named).await;
    }
    // `{id}` does not take the route: an unknown method answers for this path.
    let r = app.client.delete(app.events_url("")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET");
}

async fn streams_count_against_the_long_poll_caps_and_a_closed_one_frees_its_slot(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.jobs.max_waiters = 2;
        s.jobs.max_waiters_per_user = 1;
    })
    .await
    else {
        return;
    };
    app.login_admin().await;
    app.add_user("ops", "ops-password-12345", "operations")
        .await;
    app.add_user("ops2", "ops2-password-12345", "operations")
        .await;
    let (ops, ops2) = (cookie_client(), cookie_client());
    app.login_with(&ops, "ops", "ops-password-12345").await;
    app.login_with(&ops2, "ops2", "ops2-password-12345").await;

    let first = Sse::open(&app.client, &app.events_url("")).await;
    let r = app.get(app.events_url("")).await;
    assert_alert_contains(
        r,
        StatusCode::TOO_MANY_REQUESTS,
        "jobs.max_waiters_per_user",
    )
    .await;
    let _second = Sse::open(&ops, &app.events_url("")).await;
    let r = ops2.get(app.events_url("")).send().await.unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    assert_alert_contains(r, StatusCode::SERVICE_UNAVAILABLE, "(jobs.max_waiters)").await;
    // A stream also takes a long-poll's place: this one is answered at once.
    let id = app.create_job("polled").await;
    let r = ops2
        .get(app.job_url(id))
        .header("prefer", "wait=30")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("preference-applied").is_none());

    // The client hangs up: its slot is free as soon as the server reads the EOF.
    drop(first);
    parked(&app, 1).await;
    let _again = Sse::open(&app.client, &app.events_url("")).await;
    assert_eq!(app.state.waiters.len(), 2);
}

async fn a_silent_stream_gets_keep_alive_comments(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.jobs.event_keepalive = Duration::from_millis(100);
    })
    .await
    else {
        return;
    };
    app.login_admin().await;
    let mut stream = Sse::open(&app.client, &app.events_url("")).await;
    for _ in 0..3 {
        assert_eq!(
            stream.frame().await,
            Some(Frame::Comment("keep-alive".into()))
        );
    }
}

async fn streams_end_when_the_server_stops_and_new_ones_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let mut stream = Sse::open(&app.client, &app.events_url("")).await;
    app.state.events.stop();
    assert_eq!(
        stream.frame().await,
        Some(Frame::Comment("server stopping".into()))
    );
    assert_eq!(stream.frame().await, None, "the stream ended cleanly");
    let r = app.get(app.events_url("")).await;
    assert_alert_contains(r, StatusCode::SERVICE_UNAVAILABLE, "stopping").await;
}

/// The most bytes the kernel may buffer on one loopback connection: the largest receive and
/// send buffers (`tcp_rmem`, `tcp_wmem`).
fn socket_buffers() -> usize {
    let max = |file: &str| {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.split_whitespace().nth(2)?.parse::<usize>().ok())
            .unwrap_or(8 << 20)
    };
    max("/proc/sys/net/ipv4/tcp_rmem") + max("/proc/sys/net/ipv4/tcp_wmem")
}

async fn a_reader_that_does_not_keep_up_is_told_it_lagged_and_the_stream_ends(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let reader = cookie_client();
    app.login_with(
        &reader,
        crate::helpers::ADMIN,
        crate::helpers::ADMIN_PASSWORD,
    )
    .await;
    let mut slow = Sse::open(&reader, &app.events_url("")).await;
    // Enough big jobs to fill every buffer between the server and the reader, and then the
    // server's own backlog of 256 events: the server stops reading the reader's events once
    // its socket is full and the backlog moves on without it.
    let message = "x".repeat(60_000);
    let jobs = socket_buffers() / message.len() + 300;
    app.with_store(move |store| {
        for _ in 0..jobs {
            store
                .create_job(Some(&message), asyncstatus_persistence::now_micros())
                .unwrap();
        }
    })
    .await;
    let mut received = 0;
    let missed = loop {
        match slow.event().await {
            (name, _) if name == "job" => received += 1,
            (name, data) => {
                assert_eq!(name, "lagged", "{data}");
                break data["missed"].as_u64().unwrap();
            }
        }
    };
    assert!(
        missed > 0 && received < jobs,
        "{received} of {jobs}, {missed} missed"
    );
    assert_eq!(slow.frame().await, None, "a lagged stream ends");
    parked(&app, 0).await;
}

async fn a_stream_ends_soon_after_its_session_is_logged_out(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.jobs.event_recheck = Duration::from_millis(100);
    })
    .await
    else {
        return;
    };
    let token = app
        .token(crate::helpers::ADMIN, crate::helpers::ADMIN_PASSWORD)
        .await;
    let client = reqwest::Client::new();
    let mut stream = Sse::open_with(client.get(app.events_url("")).bearer_auth(&token)).await;
    let mut other = Sse::open_with(
        client.get(app.events_url("")).bearer_auth(
            app.token(crate::helpers::ADMIN, crate::helpers::ADMIN_PASSWORD)
                .await,
        ),
    )
    .await;
    let r = client
        .post(app.api("/user/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        stream.frame().await,
        Some(Frame::Comment("no longer authorized".into()))
    );
    assert_eq!(stream.frame().await, None);
    // Another session's stream goes on.
    app.login_admin().await;
    let id = app.create_job("still heard").await;
    assert_eq!(other.job().await["id"], id);
}

async fn many_streams_and_many_changes_cost_a_few_batched_reads(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.database.pool_size = 2).await else {
        return;
    };
    app.login_admin().await;
    let mut streams = Vec::new();
    for _ in 0..20 {
        streams.push(Sse::open(&app.client, &app.events_url("")).await);
    }
    let before = app.state.events.reads();
    let ids = app
        .with_store(|store| {
            (0..200)
                .map(|_| {
                    store
                        .create_job(Some("burst"), asyncstatus_persistence::now_micros())
                        .unwrap()
                        .id
                })
                .collect::<Vec<i64>>()
        })
        .await;
    for stream in &mut streams {
        let mut seen = Vec::new();
        while seen.len() < ids.len() {
            seen.push(stream.job().await["id"].as_i64().unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, ids, "every stream hears every change once");
    }
    let reads = app.state.events.reads() - before;
    // 200 changes × 20 streams, one at a time: not 4 000 reads, nor 200.
    assert!(reads <= 100, "{reads} reads");
    // The pool of 2 was left to the requests meanwhile.
    let r = app.get(app.job_url(ids[0])).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// The next line curl printed, within [`PATIENCE`].
async fn line(
    lines: &std::sync::Arc<std::sync::Mutex<std::sync::mpsc::Receiver<String>>>,
) -> String {
    let lines = lines.clone();
    actix_web::rt::task::spawn_blocking(move || {
        lines
            .lock()
            .unwrap()
            .recv_timeout(PATIENCE)
            .expect("curl prints within the patience")
    })
    .await
    .unwrap()
}

async fn curl_follows_the_stream_as_the_readme_shows(backend: Backend) {
    use std::io::BufRead;
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let token = app
        .token(crate::helpers::ADMIN, crate::helpers::ADMIN_PASSWORD)
        .await;
    let mut curl = crate::helpers::Reaped(
        std::process::Command::new("curl")
            .args(["-s", "-N", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(app.events_url("status=PENDING"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("curl runs (the README's examples use it)"),
    );
    let stdout = curl.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if send.send(l).is_err() {
                break;
            }
        }
    });
    let lines = std::sync::Arc::new(std::sync::Mutex::new(receive));
    assert_eq!(line(&lines).await, ": connected");
    assert_eq!(line(&lines).await, "");
    let id = app.create_job("followed by curl").await;
    assert_eq!(line(&lines).await, "event: job");
    let data = line(&lines).await;
    let job: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(job, app.job_json(id).await);
}

both_backends!(
    curl_follows_the_stream_as_the_readme_shows,
    many_streams_and_many_changes_cost_a_few_batched_reads,
    a_stream_ends_soon_after_its_session_is_logged_out,
    a_reader_that_does_not_keep_up_is_told_it_lagged_and_the_stream_ends,
    a_stream_sees_creation_heartbeat_cancel_finish_and_deletion,
    filters_select_what_a_stream_is_sent,
    bad_filters_paging_and_missing_permissions_are_refused,
    streams_count_against_the_long_poll_caps_and_a_closed_one_frees_its_slot,
    a_silent_stream_gets_keep_alive_comments,
    streams_end_when_the_server_stops_and_new_ones_are_refused,
);

/// Two replicas on one PostgreSQL: a stream on B sees the jobs A creates, changes and
/// deletes (LISTEN/NOTIFY), each once.
#[actix_web::test]
async fn a_stream_on_one_postgres_replica_sees_changes_made_on_another() {
    let Some(a) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let b = a.replica(|_| {}).await;
    a.login_admin().await;
    b.login_admin().await;
    let mut on_b = Sse::open(&b.client, &b.events_url("kind=acme.renew")).await;
    let id = a
        .create_with(json!({"kind": "acme.renew", "message": "made on A"}))
        .await;
    let created = on_b.job().await;
    assert_eq!(created, b.job_json(id).await);
    assert_eq!(created["message"], "made on A");
    let r = a
        .put_job(id, json!({"status": "FAILED", "message": "failed on A"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(on_b.job().await["message"], "failed on A");
    let r = a.client.delete(a.job_url(id)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(on_b.event().await, ("deleted".into(), json!({"id": id})));
    assert_eq!(a.state.waiters.len(), 0, "A holds no stream");
}

/// SIGTERM: an open stream ends at once and the process exits without waiting for it.
#[actix_web::test]
async fn sigterm_ends_event_streams_at_once() {
    let Some(db) = asyncstatus_persistence::testing::TestDatabase::new(Backend::Sqlite) else {
        return;
    };
    let url = db.url_string();
    let mut served = actix_web::rt::task::spawn_blocking(move || crate::ops::serve(&url, &[]))
        .await
        .unwrap();
    let client = cookie_client();
    let _ = crate::helpers::admin_login_and_job(&client, &served.base, "x").await;
    let mut stream = Sse::open(&client, &format!("{}/async_status/events", served.base)).await;
    let stopping = std::time::Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(
        stream.frame().await,
        Some(Frame::Comment("server stopping".into()))
    );
    assert_eq!(stream.frame().await, None);
    let status = actix_web::rt::task::spawn_blocking(move || served.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        stopping.elapsed()
    );
}
