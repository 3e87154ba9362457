//! Faults: an exhausted pool answers 503 within the checkout timeout, never hangs, and the
//! service recovers by itself.

use std::time::{Duration, Instant};

use asyncstatus_persistence::Backend;
use reqwest::StatusCode;

use crate::helpers::{assert_alert, TestApp};

async fn an_exhausted_pool_answers_503_within_the_checkout_timeout(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.database.pool_size = 1;
        s.database.checkout_timeout = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    app.login_admin().await;
    let id = app.create_job("held").await;
    let store = app.store.clone();
    let guard = actix_web::rt::task::spawn_blocking(move || store.hold_connection())
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    let r = app
        .client
        .get(app.api(&format!("/async_status/{id}")))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
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
    drop(guard);
    let r = app
        .client
        .get(app.api(&format!("/async_status/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "recovers once a connection is free"
    );
}

crate::both_backends!(an_exhausted_pool_answers_503_within_the_checkout_timeout);
