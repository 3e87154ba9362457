//! Faults: an exhausted pool answers 503 within the checkout timeout, never hangs, and the
//! service recovers by itself.

use std::time::{Duration, Instant};

use asyncstatus_persistence::Backend;
use reqwest::StatusCode;

use crate::helpers::{assert_alert, get_json, TestApp};

/// Holds the pool's only connection while one GET of a job is made, then checks that a GET
/// succeeds once the connection is free. Returns the held GET's answer and how long it took.
async fn get_while_the_pool_is_held(app: &TestApp) -> (reqwest::Response, Duration) {
    app.login_admin().await;
    let id = app.create_job("held").await;
    let url = app.job_url(id);
    let guard = app.hold_connection().await;
    let started = Instant::now();
    let r = app.get(&url).await;
    let waited = started.elapsed();
    drop(guard);
    let again = app.get(&url).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "recovers once a connection is free"
    );
    (r, waited)
}

async fn an_exhausted_pool_answers_503_within_the_checkout_timeout(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.database.pool_size = 1;
        s.database.checkout_timeout = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let (r, waited) = get_while_the_pool_is_held(&app).await;
    assert_eq!(r.headers()["retry-after"], "1");
    assert_alert(
        r,
        StatusCode::SERVICE_UNAVAILABLE,
        "the database is unavailable; try again shortly",
    )
    .await;
    assert!(
        waited >= Duration::from_millis(300),
        "waited for a connection: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "no hang: {waited:?}");
}

/// SIGKILL in the middle of a burst of creates and finishes: after a restart every write that
/// was acknowledged is there, and no job is left PENDING past the reaper.
async fn acknowledged_writes_survive_a_sigkill_mid_burst(backend: Backend) {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};

    use crate::ops::serve;

    let Some(db) = asyncstatus_persistence::testing::TestDatabase::new(backend) else {
        return;
    };
    let url = db.url_string();
    let served = actix_web::rt::task::spawn_blocking(move || serve(&url, &[]))
        .await
        .unwrap();
    let base = served.base.clone();
    let login = json!({"u": crate::helpers::ADMIN, "p": crate::helpers::ADMIN_PASSWORD});
    let r = reqwest::Client::new()
        .post(format!("{base}/user/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    let token = crate::helpers::token_of(&r).unwrap();

    // id → the last status the service acknowledged for it.
    let acked: Arc<Mutex<HashMap<i64, String>>> = Arc::default();
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (acked, base, token) = (acked.clone(), base.clone(), token.clone());
            actix_web::rt::spawn(async move {
                let http = reqwest::Client::new();
                for n in 0.. {
                    let Ok(r) = http
                        .post(format!("{base}/async_status"))
                        .bearer_auth(&token)
                        .json(&json!({"message": format!("w{w} n{n}")}))
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() != StatusCode::ACCEPTED {
                        return;
                    }
                    let Ok(body) = r.json::<Value>().await else {
                        return;
                    };
                    let id = body["response"]["id"].as_i64().unwrap();
                    acked.lock().unwrap().insert(id, "PENDING".into());
                    if n % 3 == 0 {
                        continue; // leave some pending: the reaper's
                    }
                    let status = if n % 3 == 1 { "SUCCEEDED" } else { "FAILED" };
                    let Ok(r) = http
                        .put(format!("{base}/async_status/{id}"))
                        .bearer_auth(&token)
                        .json(&json!({"status": status}))
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() != StatusCode::OK {
                        return;
                    }
                    acked.lock().unwrap().insert(id, status.into());
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 150 {
        assert!(Instant::now() < deadline, "the burst is too slow");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut child = served.child;
    child.kill().unwrap(); // SIGKILL mid-burst
    child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let url = db.url_string();
    let restarted = actix_web::rt::task::spawn_blocking(move || {
        serve(&url, &[("ASYNCSTATUS__JOBS__STALE_AFTER", "1ms")])
    })
    .await
    .unwrap();
    let base = restarted.base.clone();
    let http = crate::helpers::cookie_client();
    http.post(format!("{base}/user/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    let all: Value = get_json(&http, format!("{base}/async_status")).await;
    let stored: HashMap<i64, String> = all["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_i64().unwrap(),
                j["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut child = restarted.child;
    child.kill().unwrap();
    child.wait().unwrap();
    for (id, status) in &acked {
        let now = stored
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged job {id} is gone"));
        if status == "PENDING" {
            // Its finish may have landed unacknowledged (killed before the answer went out);
            // either way it is final now: abandoned, or finished.
            assert!(
                now == "FAILED" || now == "SUCCEEDED",
                "job {id} is {now} after the restart"
            );
        } else {
            assert_eq!(now, status, "job {id}: the acknowledged finish stands");
        }
    }
    assert!(
        !stored.values().any(|s| s == "PENDING"),
        "nothing left pending past the reaper"
    );
    assert!(acked.len() >= 150);
}

async fn a_request_past_the_request_timeout_answers_503(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.database.pool_size = 1;
        s.database.checkout_timeout = Duration::from_secs(10);
        s.server.request_timeout = Duration::from_millis(300);
        s.jobs.max_wait = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let (r, waited) = get_while_the_pool_is_held(&app).await;
    assert_alert(
        r,
        StatusCode::SERVICE_UNAVAILABLE,
        "the request took longer than the server allows (server.request_timeout); try again",
    )
    .await;
    assert!(
        waited < Duration::from_secs(3),
        "answered at the deadline: {waited:?}"
    );
}

crate::both_backends!(
    a_request_past_the_request_timeout_answers_503,
    an_exhausted_pool_answers_503_within_the_checkout_timeout,
    acknowledged_writes_survive_a_sigkill_mid_burst,
);
