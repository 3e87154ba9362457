//! Operations: health and readiness, metrics, CORS, HTTPS, graceful shutdown, logs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::Backend;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::cluster::PrivateCluster;
use crate::helpers::{
    assert_alert, get_with_header, login_at, settings_for_url, TestApp, ADMIN, ADMIN_PASSWORD,
};

async fn health_and_readiness_need_no_login(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let r = reqwest::get(format!("{}{path}", app.address))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body, json!({"status": status}));
    }
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .parse()
            .ok()
    })
}

async fn metrics_count_requests_by_route_and_show_pool_jobs_and_waiters(backend: Backend) {
    let Some((app, id)) = TestApp::spawn_with_job(backend, "measured").await else {
        return;
    };
    for _ in 0..3 {
        app.get(app.job_url(id)).await;
    }
    app.get(app.api("/async_status/999999")).await;
    app.get(format!("{}/random/{id}", app.address)).await;
    let r = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    let route = r#"route="/api/4.0/async_status/{id}""#;
    assert_eq!(
        metric(
            &text,
            &format!(r#"asyncstatus_http_requests_total{{method="GET",{route},status="200"}}"#)
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &format!(r#"asyncstatus_http_requests_total{{method="GET",{route},status="404"}}"#)
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"asyncstatus_http_requests_total{method="POST",route="/api/4.0/async_status",status="202"}"#
        ),
        Some(1.0)
    );
    assert!(
        !text.contains("/random/"),
        "unmatched paths do not become labels"
    );
    assert_eq!(
        metric(
            &text,
            &format!(r#"asyncstatus_http_request_duration_seconds_count{{method="GET",{route}}}"#)
        ),
        Some(4.0)
    );
    assert_eq!(
        metric(&text, r#"asyncstatus_jobs{status="PENDING"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, r#"asyncstatus_db_pool_connections{state="size"}"#),
        Some(4.0)
    );
    assert!(metric(&text, r#"asyncstatus_db_pool_connections{state="open"}"#).unwrap() >= 1.0);
    assert_eq!(metric(&text, "asyncstatus_longpoll_waiters"), Some(0.0));
    assert_eq!(metric(&text, "asyncstatus_database_up"), Some(1.0));
}

async fn cors_headers_only_for_allowed_origins(backend: Backend) {
    const PORTAL: &str = "https://portal.example.net";
    let Some(app) =
        TestApp::spawn_with(backend, |s| s.cors.allowed_origins = vec![PORTAL.into()]).await
    else {
        return;
    };
    let http = reqwest::Client::new();
    let r = http
        .request(reqwest::Method::OPTIONS, app.api("/async_status/1"))
        .header("origin", PORTAL)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type, prefer")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["access-control-allow-origin"], PORTAL);
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PUT"));
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("Prefer"), "{allowed}");
    assert!(allowed.contains("Idempotency-Key"), "{allowed}");
    let r = get_with_header(&http, app.api("/ping"), "origin", PORTAL).await;
    assert_eq!(r.headers()["access-control-allow-origin"], PORTAL);
    assert!(r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("Location"));
    let r = get_with_header(&http, app.api("/ping"), "origin", "https://evil.example").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = http
        .request(reqwest::Method::OPTIONS, app.api("/ping"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "no preflight for others"
    );
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let Some(plain) = TestApp::spawn(backend).await else {
        return;
    };
    let r = get_with_header(&http, plain.api("/ping"), "origin", PORTAL).await;
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "none by default"
    );
}

/// A self-signed certificate for 127.0.0.1 in a temporary folder: (dir, cert, key).
pub(crate) fn self_signed() -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "asyncstatus-tls-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    (dir, c, k)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn https_serves_with_the_configured_certificate(backend: Backend) {
    let (dir, cert, key) = self_signed();
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.server.tls_cert = Some(cert.clone());
        s.server.tls_key = Some(key.clone());
    })
    .await
    else {
        return;
    };
    let base = format!("https://127.0.0.1:{}/api/4.0", app.port);
    let https = reqwest::Client::builder()
        .cookie_store(true)
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = login_at(&https, &base, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure"), "Secure with TLS: {cookie}");
    let r = https
        .get(format!("{base}/async_status/1"))
        .send()
        .await
        .unwrap();
    assert_alert(r, StatusCode::NOT_FOUND, "async status not found").await;
    assert!(
        reqwest::get(app.api("/ping")).await.is_err(),
        "no plain HTTP on the TLS port"
    );

    let job = app
        .with_store(|s| s.create_job(Some("over TLS"), asyncstatus_persistence::now_micros()))
        .await
        .unwrap();
    if let Some(stdout) = crate::python_client::run_traffic_ops_client(&app, job.id, true).await {
        assert!(stdout.contains("OK PENDING over TLS"), "{stdout}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `serve` as a child process: its port, and its stderr lines as they come.
pub struct Served {
    pub child: crate::helpers::Reaped,
    pub base: String,
    pub log: std::sync::mpsc::Receiver<String>,
}

pub fn serve(db_url: &str, env: &[(&str, &str)]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_asyncstatus-api"))
        .arg("serve")
        .env(
            "ASYNCSTATUS_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
        )
        .env_remove("ASYNCSTATUS_ENV")
        .env("ASYNCSTATUS__DATABASE__URL", db_url)
        .env("ASYNCSTATUS__SERVER__PORT", "0")
        .env("ASYNCSTATUS__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    // Keep reading, so the banner's later lines find a reader.
    std::thread::spawn(move || stdout.for_each(drop));
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let (tx, log) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Served {
        child: crate::helpers::Reaped(child),
        base,
        log,
    }
}

fn sigterm(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

async fn sigterm_answers_long_polls_and_drains_before_exiting(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let url = db.url_string();
    let mut served = actix_web::rt::task::spawn_blocking(move || serve(&url, &[]))
        .await
        .unwrap();
    let base = served.base.clone();
    let client = crate::helpers::cookie_client();
    let (_, id) = crate::helpers::admin_login_and_job(&client, &base, "in flight").await;
    let waiter = {
        let (client, url) = (client.clone(), format!("{base}/async_status/{id}"));
        actix_web::rt::spawn(
            async move { client.get(url).header("prefer", "wait=60").send().await },
        )
    };
    let metrics_url = format!("{}/metrics", base.trim_end_matches("/api/4.0"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&text, "asyncstatus_longpoll_waiters") == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the long-poll never parked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = Instant::now();
    sigterm(&served.child);
    let r = waiter
        .await
        .unwrap()
        .expect("the long-poll is answered, not cut");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "answered at once: {:?}",
        stopping.elapsed()
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["response"]["status"],
        "PENDING"
    );
    let status = actix_web::rt::task::spawn_blocking(move || {
        let status = served.child.wait().unwrap();
        let log: Vec<String> = served.log.try_iter().collect();
        (status, log)
    })
    .await
    .unwrap();
    assert!(
        status.0.success(),
        "clean exit: {:?}\n{}",
        status.0,
        status.1.join("\n")
    );
    assert!(
        status.1.iter().any(|l| l.contains("SIGTERM")),
        "{}",
        status.1.join("\n")
    );
    assert!(
        reqwest::get(format!("{base}/ping")).await.is_err(),
        "no longer accepting"
    );
    drop(db);
}

async fn logs_are_json_lines_without_secrets(backend: Backend) {
    const AUTH_SECRET: &str = "log-test-secret-0123456789abcdefghijkl";
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    // A password in the URL (the test cluster trusts all, so it is accepted and ignored).
    let (url, db_password) = match backend {
        Backend::Postgres => (
            db.url_string()
                .replacen("postgres@", "postgres:DbPassw0rdInUrl@", 1),
            Some("DbPassw0rdInUrl"),
        ),
        Backend::Sqlite => (db.url_string(), None),
    };
    let env = [
        ("ASYNCSTATUS__LOG__FORMAT", "json"),
        ("RUST_LOG", "debug"),
        ("ASYNCSTATUS__AUTH__SECRETS", AUTH_SECRET),
    ];
    let served = actix_web::rt::task::spawn_blocking(move || serve(&url, &env))
        .await
        .unwrap();
    let base = served.base.clone();
    let client = crate::helpers::cookie_client();
    let r = login_at(&client, &base, ADMIN, "WrongPassw0rdTyped").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = login_at(&client, &base, ADMIN, ADMIN_PASSWORD).await;
    let token = crate::helpers::token_of(&r).unwrap();
    let r = reqwest::Client::new()
        .get(format!("{base}/async_status/1"))
        .bearer_auth(&token)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    client
        .post(format!("{base}/user/logout"))
        .send()
        .await
        .unwrap();
    sigterm(&served.child);
    let Served { mut child, log, .. } = served;
    let lines = actix_web::rt::task::spawn_blocking(move || {
        child.wait().unwrap();
        log.iter().collect::<Vec<String>>()
    })
    .await
    .unwrap();
    assert!(lines.len() >= 4, "{lines:?}");
    let mut access = Vec::new();
    for line in &lines {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if entry["target"] == "access" {
            access.push(entry);
        }
        for secret in [
            ADMIN_PASSWORD,
            "WrongPassw0rdTyped",
            token.as_str(),
            AUTH_SECRET,
        ]
        .into_iter()
        .chain(db_password)
        {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
    }
    let traced = access
        .iter()
        .find(|e| e["request_id"] == "trace-me-42")
        .expect("the access line");
    assert_eq!(traced["method"], "GET");
    assert_eq!(traced["path"], "/api/4.0/async_status/1");
    assert_eq!(traced["status"], 404);
    assert_eq!(traced["user"], ADMIN);
    assert!(traced["duration_ms"].as_f64().is_some());
    assert!(access
        .iter()
        .any(|e| e["path"] == "/api/4.0/user/login" && e["status"] == 401));
    drop(db);
}

/// PostgreSQL stopped mid-run: 503s within the checkout timeout and /readyz 503; started
/// again: 200s within 5 s without restarting the service; writes acknowledged before are there.
#[actix_web::test]
async fn a_postgres_outage_answers_503_and_the_service_recovers_by_itself() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let url = cluster.database("outage");
    let mut settings = settings_for_url(&url);
    settings.database.checkout_timeout = Duration::from_secs(1);
    let app = TestApp::start_on(None, settings).await;
    app.login_admin().await;
    let id = app.create_job("before the outage").await;
    let r = app
        .put_job(
            id,
            json!({"status": "SUCCEEDED", "message": "acknowledged"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    cluster.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let r = app.get(app.job_url(id)).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "within the checkout timeout: {:?}",
            started.elapsed()
        );
        assert_alert(
            r,
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is unavailable; try again shortly",
        )
        .await;
    }
    let r = reqwest::get(format!("{}/readyz", app.address))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = reqwest::get(format!("{}/healthz", app.address))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the process itself is fine");

    cluster.start_again();
    let back = Instant::now();
    loop {
        let r = app.get(app.job_url(id)).await;
        if r.status() == StatusCode::OK {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["response"]["status"], "SUCCEEDED");
            assert_eq!(body["response"]["message"], "acknowledged");
            break;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not recovered after {:?}",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = reqwest::get(format!("{}/readyz", app.address))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// A PostgreSQL restart with no traffic meanwhile leaves every pooled connection dead; reads
/// move on to a fresh connection, so the first requests after it already succeed.
#[actix_web::test]
async fn reads_after_a_postgres_restart_succeed_at_once() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let url = cluster.database("restart");
    let app = TestApp::start_on(None, settings_for_url(&url)).await;
    app.login_admin().await;
    let id = app.create_job("survives the restart").await;
    // Open every connection the pool has (4 in tests): concurrent reads.
    let warm: Vec<_> = (0..16)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.job_url(id));
            actix_web::rt::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    for w in warm {
        assert_eq!(w.await.unwrap(), StatusCode::OK);
    }
    cluster.stop();
    cluster.start_again();
    for round in 0..3 {
        let r = app.get(app.job_url(id)).await;
        assert_eq!(r.status(), StatusCode::OK, "read {round} after the restart");
        let list = app.get(app.api("/async_status")).await;
        assert_eq!(
            list.status(),
            StatusCode::OK,
            "list {round} after the restart"
        );
    }
}

crate::both_backends!(
    health_and_readiness_need_no_login,
    metrics_count_requests_by_route_and_show_pool_jobs_and_waiters,
    cors_headers_only_for_allowed_origins,
    https_serves_with_the_configured_certificate,
    sigterm_answers_long_polls_and_drains_before_exiting,
    logs_are_json_lines_without_secrets,
);
