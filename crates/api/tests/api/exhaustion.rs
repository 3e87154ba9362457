//! One client must not exhaust the service: long-poll waiters and queued logins end with their
//! connection, waiters are capped, metric labels are bounded, slow bodies and headers are cut.
//!
//! The file-descriptor tests count `/proc/PID/fd` of a spawned `serve` binary (not of the test
//! process), so the client's own sockets and other tests do not blur the figure.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::Backend;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{
    assert_alert_contains, get_with_header, parked, TestApp, ADMIN, ADMIN_PASSWORD,
};

/// `serve` as a child process whose soft open-file limit starts at `files`; its origin
/// (`http://127.0.0.1:PORT`) and port.
struct Child {
    child: crate::helpers::Reaped,
    base: String,
    port: u16,
}

fn serve_with_files(db_url: &str, files: u32, env: &[(&str, &str)]) -> Child {
    let mut child = Command::new("bash")
        .args([
            "-c",
            &format!("ulimit -Sn {files} && exec \"$0\" serve"),
            env!("CARGO_BIN_EXE_asyncstatus-api"),
        ])
        .env(
            "ASYNCSTATUS_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
        )
        .env_remove("ASYNCSTATUS_ENV")
        .env("ASYNCSTATUS__DATABASE__URL", db_url)
        .env("ASYNCSTATUS__DATABASE__POOL_SIZE", "4")
        .env("ASYNCSTATUS__SERVER__PORT", "0")
        .env("ASYNCSTATUS__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD)
        // These floods all come from one test address; the per-client cap has its own tests.
        .env("ASYNCSTATUS__SERVER__MAX_CONNECTIONS_PER_CLIENT", "4096")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    std::thread::spawn(move || stdout.for_each(drop));
    // The banner names the API's URL, http://127.0.0.1:PORT/api/…: keep the origin.
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap();
    let origin_end = url[7..].find('/').map_or(url.len(), |i| i + 7);
    let base = url[..origin_end].to_owned();
    let port = base.rsplit(':').next().unwrap().parse().unwrap();
    Child {
        child: crate::helpers::Reaped(child),
        base,
        port,
    }
}

/// Open file descriptors of process `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// How many of the connections from `127.0.0.1` at `ports` to the service's `port` process
/// `pid` still holds open: the sockets of `/proc/<pid>/net/tcp` between those addresses whose
/// inode is one of the process's descriptors. Exact, where counting every socket of the process
/// would count its database connections and keep-alive clients too, which come and go.
fn connections_held(pid: u32, port: u16, ports: &std::collections::HashSet<u16>) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .collect();
    // Addresses as the kernel writes them: "0100007F:1F90" is 127.0.0.1:8080.
    let loopback_port = |address: &str| {
        let (ip, hex) = address.split_once(':').unwrap();
        (ip == "0100007F").then(|| u16::from_str_radix(hex, 16).unwrap())
    };
    // The kernel writes the table in pieces while other tests' connections come and go, so
    // one reading may show a socket twice or miss one: the distinct inodes of two readings.
    let mut held = std::collections::HashSet::new();
    for _ in 0..2 {
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if loopback_port(fields[1]) == Some(port)
                && loopback_port(fields[2]).is_some_and(|p| ports.contains(&p))
                && inodes.contains(fields[9])
            {
                held.insert(fields[9].to_owned());
            }
        }
    }
    held.len()
}

/// The soft and hard open-file limits of process `pid` (`unlimited` as `u64::MAX`).
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .take(2)
        .map(|v| v.parse().unwrap_or(u64::MAX))
        .collect();
    (values[0], values[1])
}

/// `asyncstatus_longpoll_waiters` of the service at `base`.
async fn waiters_metric(client: &reqwest::Client, base: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("asyncstatus_longpoll_waiters "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Logs in as the admin at `base` and creates a PENDING job: the token and the job's id.
/// Logs in through `client`, whose connection stays open while the caller keeps it: a
/// connection closing while the test counts the service's fds would skew the count.
async fn admin_token_and_job(client: &reqwest::Client, base: &str) -> (String, i64) {
    let api = format!("{base}/api/4.0");
    crate::helpers::admin_login_and_job(client, &api, "held").await
}

/// A raw `Prefer: wait=60` long-poll of job `id`, sent and left open.
async fn raw_long_poll(port: u16, token: &str, id: i64) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "GET /api/4.0/async_status/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {token}\r\nPrefer: wait=60\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Waits (bounded) until `check` holds, polling every 10 ms; how long it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// [`serve_with_files`] off the async workers, with room for one user's flood of waiters.
async fn serve_for_floods(url: String, files: u32) -> Child {
    actix_web::rt::task::spawn_blocking(move || {
        serve_with_files(
            &url,
            files,
            &[("ASYNCSTATUS__JOBS__MAX_WAITERS_PER_USER", "1000")],
        )
    })
    .await
    .unwrap()
}

async fn hung_up_long_polls_release_their_fds_within_a_second(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let url = db.url_string();
    let served = serve_for_floods(url, 4096).await;
    let pid = served.child.id();
    let metrics = reqwest::Client::new();
    let (token, id) = admin_token_and_job(&metrics, &served.base).await;
    assert_eq!(waiters_metric(&metrics, &served.base).await, 0);
    const N: usize = 200;
    let mut polls = Vec::with_capacity(N);
    for _ in 0..N {
        polls.push(raw_long_poll(served.port, &token, id).await);
    }
    let ports: std::collections::HashSet<u16> = polls
        .iter()
        .map(|poll| poll.local_addr().unwrap().port())
        .collect();
    within(Duration::from_secs(20), "every waiter parked", || async {
        waiters_metric(&metrics, &served.base).await == N as u64
    })
    .await;
    let waiting = connections_held(pid, served.port, &ports);
    assert_eq!(
        waiting, N,
        "{N} waiters hold {waiting} of their connections"
    );
    drop(polls);
    let hung_up = Instant::now();
    while connections_held(pid, served.port, &ports) > 20
        && hung_up.elapsed() < Duration::from_secs(1)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (after, took) = (
        connections_held(pid, served.port, &ports),
        hung_up.elapsed(),
    );
    eprintln!("connections: {waiting} with {N} waiters, {after} {took:?} after the hang-up");
    assert!(
        after <= 20,
        "the waiters' connections are not released within 1 s: {after} of {N} still open"
    );
    within(
        Duration::from_secs(1),
        "the waiters metric back to 0",
        || async { waiters_metric(&metrics, &served.base).await == 0 },
    )
    .await;
}

async fn healthz_answers_within_a_second_during_a_flood_of_hung_up_long_polls(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let url = db.url_string();
    // A low soft limit, as on many hosts: the service raises it toward the hard limit, and
    // releases each hung-up connection, so it never runs out.
    let served = serve_for_floods(url, 256).await;
    let pid = served.child.id();
    let (soft, hard) = open_file_limits(pid);
    assert!(
        soft == hard && soft > 256,
        "the soft open-file limit is raised to the hard one: {soft} of {hard}"
    );
    let login = reqwest::Client::new();
    let (token, id) = admin_token_and_job(&login, &served.base).await;
    let before = fds(pid);
    let healthz = format!("{}/healthz", served.base);
    let check_health = || async {
        // A new connection each time, as a load balancer's probe.
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let started = Instant::now();
        let r = probe.get(&healthz).send().await;
        let took = started.elapsed();
        assert!(
            matches!(&r, Ok(r) if r.status() == StatusCode::OK),
            "/healthz during the flood: {r:?} after {took:?}"
        );
        assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
        eprintln!("/healthz answered in {took:?}");
    };
    for _wave in 0..4 {
        let flood: Vec<_> = (0..150)
            .map(|_| {
                let token = token.clone();
                actix_web::rt::spawn(async move {
                    // Sent, then hung up at once.
                    drop(raw_long_poll(served.port, &token, id).await);
                })
            })
            .collect();
        check_health().await;
        for poll in flood {
            poll.await.unwrap();
        }
        check_health().await;
    }
    within(
        Duration::from_secs(1),
        "the flood's fds released",
        || async { fds(pid) <= before + 20 },
    )
    .await;
    let metrics = reqwest::Client::new();
    within(
        Duration::from_secs(1),
        "the waiters metric back to 0",
        || async { waiters_metric(&metrics, &served.base).await == 0 },
    )
    .await;
}

/// A long-poll of `id` as `client`, waiting up to `wait` seconds: the answer and its time.
async fn long_poll(
    app: &TestApp,
    client: &reqwest::Client,
    id: i64,
    wait: u32,
) -> (reqwest::Response, Duration) {
    let started = Instant::now();
    let r = get_with_header(client, app.job_url(id), "prefer", &format!("wait={wait}")).await;
    (r, started.elapsed())
}

/// A long-poll answered at once, with the pending job, and without `Preference-Applied`.
async fn assert_answered_at_once(answer: (reqwest::Response, Duration), why: &str) {
    let (r, took) = answer;
    assert!(took < Duration::from_secs(1), "{why}: held {took:?}");
    assert_eq!(r.status(), StatusCode::OK, "{why}");
    assert!(
        r.headers().get("preference-applied").is_none(),
        "{why}: the ignored preference is not said applied"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["status"], "PENDING", "{why}");
}

async fn waiters_past_the_per_user_and_overall_caps_are_answered_at_once(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.jobs.max_waiters = 3;
        s.jobs.max_waiters_per_user = 2;
    })
    .await
    else {
        return;
    };
    app.login_admin().await;
    app.add_user("operator", "operator-password", "operations")
        .await;
    let operator = crate::helpers::cookie_client();
    let r = app
        .login_with(&operator, "operator", "operator-password")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = app.create_job("capped").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let (client, url) = (app.client.clone(), app.job_url(id));
        held.push(actix_web::rt::spawn(async move {
            client.get(url).header("prefer", "wait=30").send().await
        }));
    }
    parked(&app, 2).await;
    assert_answered_at_once(
        long_poll(&app, &app.client, id, 5).await,
        "the admin's third waiter",
    )
    .await;
    let (client, url) = (operator.clone(), app.job_url(id));
    held.push(actix_web::rt::spawn(async move {
        client.get(url).header("prefer", "wait=30").send().await
    }));
    parked(&app, 3).await;
    assert_answered_at_once(
        long_poll(&app, &operator, id, 5).await,
        "a waiter past the overall cap",
    )
    .await;
    let r = app.put_job(id, json!({"status": "SUCCEEDED"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    for waiter in held {
        let r = waiter.await.unwrap().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["preference-applied"], "wait=30");
    }
    parked(&app, 0).await;
}

async fn a_hung_up_requests_database_work_keeps_its_slot_until_it_ends(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.database.pool_size = 1).await else {
        return;
    };
    let token = app.token(ADMIN, ADMIN_PASSWORD).await;
    let guard = app.hold_connection().await;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let request = format!(
        "GET /api/4.0/async_status HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    within(Duration::from_secs(5), "the list took the slot", || async {
        app.state.db.available_permits() == 0
    })
    .await;
    drop(stream);
    // The request is gone, but its blocking work still waits for the held connection: the
    // slot stays taken, so hung-up requests cannot start more work than the pool serves.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(300) {
        assert_eq!(app.state.db.available_permits(), 0, "slot freed early");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(guard);
    within(Duration::from_secs(10), "the slot back", || async {
        app.state.db.available_permits() == 1
    })
    .await;
}

crate::both_backends!(
    a_hung_up_requests_database_work_keeps_its_slot_until_it_ends,
    hung_up_long_polls_release_their_fds_within_a_second,
    healthz_answers_within_a_second_during_a_flood_of_hung_up_long_polls,
    waiters_past_the_per_user_and_overall_caps_are_answered_at_once,
    a_login_past_the_queue_gets_503_with_retry_after,
    a_queued_login_leaves_the_queue_when_its_client_hangs_up,
);

#[actix_web::test]
async fn a_waiter_over_tls_ends_when_its_client_hangs_up() {
    let dir = std::env::temp_dir().join(format!(
        "asyncstatus-tls-waiter-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.tls_cert = Some(cert.clone());
        s.server.tls_key = Some(key.clone());
    })
    .await
    else {
        return;
    };
    let https = reqwest::Client::builder()
        .cookie_store(true)
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}/api/4.0", app.port);
    let (_, id) = crate::helpers::admin_login_and_job(&https, &base, "over TLS").await;
    let url = format!("{base}/async_status/{id}");
    let poll = actix_web::rt::spawn(async move {
        // The client gives up after 500 ms and drops its connection.
        https
            .get(url)
            .header("prefer", "wait=30")
            .timeout(Duration::from_millis(500))
            .send()
            .await
    });
    parked(&app, 1).await;
    assert!(poll.await.unwrap().is_err(), "the client gave up");
    let took = within(Duration::from_secs(1), "the TLS waiter ended", || async {
        app.state.waiters.is_empty()
    })
    .await;
    eprintln!("a TLS waiter ended {took:?} after its client hung up");
    std::fs::remove_dir_all(dir).unwrap();
}

#[actix_web::test]
async fn connections_past_server_max_connections_wait_until_one_closes() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.max_connections = 4;
        s.jobs.max_waiters = 2;
        s.jobs.max_waiters_per_user = 2;
    })
    .await
    else {
        return;
    };
    let healthz = format!("{}/healthz", app.address);
    let probe = || {
        reqwest::Client::builder()
            .timeout(Duration::from_millis(700))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
            .get(&healthz)
            .send()
    };
    assert_eq!(probe().await.unwrap().status(), StatusCode::OK);
    // Four idle connections (they have 5 s to send a request) fill the server.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(("127.0.0.1", app.port)).await.unwrap());
    }
    // Once the server has taken the four (a probe may slip in before), no fifth is served.
    let started = Instant::now();
    while probe().await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a fifth connection is still served while four are open"
        );
    }
    drop(idle);
    let r = probe().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "served once the others closed");
}

/// Holds every password-derivation slot of `app` until dropped.
async fn hold_login_slots(app: &TestApp) -> tokio::sync::OwnedSemaphorePermit {
    let slots = app.state.login_slots.semaphore().clone();
    let n = u32::try_from(slots.available_permits()).unwrap();
    slots.acquire_many_owned(n).await.unwrap()
}

/// An admin login from a task of its own; the answer's status.
fn spawn_admin_login(app: &TestApp) -> actix_web::rt::task::JoinHandle<StatusCode> {
    let (client, url) = (reqwest::Client::new(), app.api("/user/login"));
    actix_web::rt::spawn(async move {
        client
            .post(url)
            .json(&json!({"u": ADMIN, "p": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap()
            .status()
    })
}

/// Waits (bounded) until `n` logins wait for a slot.
async fn queued(app: &TestApp, n: usize) {
    within(Duration::from_secs(10), "logins queued", || async {
        app.state.login_slots.waiting() == n
    })
    .await;
}

async fn a_login_past_the_queue_gets_503_with_retry_after(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.auth.login_queue = 2).await else {
        return;
    };
    let slots = hold_login_slots(&app).await;
    let mut waiting = Vec::new();
    for _ in 0..2 {
        waiting.push(spawn_admin_login(&app));
    }
    queued(&app, 2).await;
    let started = Instant::now();
    let r = app
        .login_with(&reqwest::Client::new(), ADMIN, ADMIN_PASSWORD)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    assert_eq!(r.headers()["retry-after"], "1");
    assert_alert_contains(r, StatusCode::SERVICE_UNAVAILABLE, "auth.login_queue").await;
    drop(slots);
    for login in waiting {
        assert_eq!(
            login.await.unwrap(),
            StatusCode::OK,
            "a queued login proceeds"
        );
    }
    assert_eq!(app.state.login_slots.waiting(), 0);
}

async fn a_queued_login_leaves_the_queue_when_its_client_hangs_up(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.auth.login_queue = 1).await else {
        return;
    };
    let slots = hold_login_slots(&app).await;
    let body = json!({"u": ADMIN, "p": ADMIN_PASSWORD}).to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let request = format!(
        "POST /api/4.0/user/login HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    queued(&app, 1).await;
    drop(stream);
    let took = within(Duration::from_secs(1), "the queue emptied", || async {
        app.state.login_slots.waiting() == 0
    })
    .await;
    eprintln!("a hung-up login left the queue in {took:?}");
    // Its place is free again: the next login waits (no 503) and succeeds once a slot frees.
    let next = spawn_admin_login(&app);
    queued(&app, 1).await;
    drop(slots);
    assert_eq!(next.await.unwrap(), StatusCode::OK);
}

#[actix_web::test]
async fn metrics_labels_stay_bounded_whatever_the_methods_sent() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let scrape = || async {
        reqwest::get(format!("{}/metrics", app.address))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let mut tokens = Vec::new();
    let mut before = 0;
    // The first two (one per path) and a scrape make the series every later request reuses.
    for i in 0..502 {
        if i == 2 {
            scrape().await;
            before = scrape().await.len();
        }
        let token: String = (0..10)
            .map(|_| char::from(b'A' + rand::random::<u8>() % 26))
            .collect();
        let method = reqwest::Method::from_bytes(token.as_bytes()).unwrap();
        let path = if i % 2 == 0 {
            app.api("/async_status")
        } else {
            format!("{}/no/such/path", app.address)
        };
        let r = app.client.request(method, path).send().await.unwrap();
        assert!(r.status().is_client_error(), "{token}: {}", r.status());
        tokens.push(token);
    }
    let text = scrape().await;
    eprintln!(
        "/metrics: {before} bytes before, {} after 500 more random methods",
        text.len()
    );
    assert!(
        text.len() < before + 1024,
        "/metrics grew from {before} to {} bytes",
        text.len()
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("asyncstatus_http_requests_total{method=\"other\"")),
        "unknown methods are counted as other:\n{text}"
    );
    for token in &tokens {
        assert!(!text.contains(token.as_str()), "{token} became a label");
    }
}

/// Reads from `stream` until EOF (or reset) or `limit`: the bytes, and whether it closed.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut answer = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&answer).into(), true),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&answer).into(), false),
        }
    }
}

#[actix_web::test]
async fn a_trickled_body_gets_408_naming_the_setting_and_the_connection_closes() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.body_timeout = Duration::from_secs(1);
    })
    .await
    else {
        return;
    };
    let token = app.token(ADMIN, ADMIN_PASSWORD).await;
    let stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /api/4.0/async_status HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: 40\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = actix_web::rt::spawn(async move {
        for byte in br#"{"message":"one byte at a time........"}"# {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let closed = loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let took = started.elapsed();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    eprintln!("a trickled body: answered and closed {took:?} after the headers");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "after {took:?}: {answer:?}"
    );
    assert!(answer.contains("server.body_timeout"), "{answer}");
    assert!(answer.contains(r#""level":"error""#), "{answer}");
    assert!(closed, "the connection is closed after the 408");
    assert!(
        // The 1 s timeout, then up to actix's 1 s client_disconnect_timeout to close.
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "cut after {took:?}"
    );
}

/// Guard (actix's `client_request_timeout`, kept explicit at 5 s): request headers trickled
/// one byte every 500 ms are cut with 408 and the connection closed.
#[actix_web::test]
async fn trickled_request_headers_are_cut_after_five_seconds() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let started = Instant::now();
    let mut cut = false;
    for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa" {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let (answer, closed) = read_to_close(&mut stream, Duration::from_secs(2)).await;
    let took = started.elapsed();
    assert!(cut || closed, "still open after {took:?}: {answer:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
}

/// A TCP connection to `app` from `local` (127.0.0.0/8 is all loopback on Linux).
async fn connect_from(local: [u8; 4], port: u16) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((local, 0))).unwrap();
    socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// One client trickling the headers of a keep-alive connection's second request (which
/// actix does not time out) holds at most `server.max_connections_per_client` connections:
/// its next one is answered 503 with an alert and closed, another address is still served,
/// and a place frees up when one of its connections ends.
#[actix_web::test]
async fn one_client_holds_at_most_max_connections_per_client() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.max_connections_per_client = 3;
    })
    .await
    else {
        return;
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from([127, 0, 0, 1], app.port).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "first request served"
        );
        // The second request's head, begun and never finished.
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nX-Sl")
            .await
            .unwrap();
        held.push(stream);
    }
    let mut fourth = connect_from([127, 0, 0, 1], app.port).await;
    let (answer, closed) = read_to_close(&mut fourth, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.contains("server.max_connections_per_client")
            && answer.contains(r#""level":"error""#),
        "{answer}"
    );
    assert!(closed, "the refused connection is closed");
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let r = other
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "another address is served");
    drop(held.pop());
    within(Duration::from_secs(3), "a freed place", || async {
        let mut stream = connect_from([127, 0, 0, 1], app.port).await;
        if stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .is_err()
        {
            return false;
        }
        let (answer, _) = read_to_close(&mut stream, Duration::from_secs(1)).await;
        answer.starts_with("HTTP/1.1 200")
    })
    .await;
}

/// Every client behind a trusted proxy arrives from its address: the proxy is not capped.
#[actix_web::test]
async fn a_trusted_proxy_is_not_capped_per_client() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.max_connections_per_client = 2;
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from([127, 0, 0, 1], app.port).await);
    }
    let mut last = held.pop().unwrap();
    last.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_to_close(&mut last, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}
