//! `GET async_status/{id}`: the Traffic Ops shape, id parsing, permissions.

use asyncstatus_persistence::{now_micros, Backend};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_alert, get_json, TestApp};

const NOT_AN_INTEGER: &str = "getting integer parameters: parameter 'id' not an integer";

/// `2021-02-18T17:13:56.352261Z`: RFC 3339, UTC, microseconds, `Z`.
pub fn is_traffic_ops_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 27
        && s.ends_with('Z')
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
        && b[10] == b'T'
        && b[19] == b'.'
        && b[20..26].iter().all(u8::is_ascii_digit)
}

async fn a_job_reads_exactly_as_traffic_ops_shows_it(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let job = app
        .with_store(|s| s.create_job(Some("Async job has started."), now_micros()))
        .await
        .unwrap();
    let r = app.get(app.api(&format!("/async_status/{}", job.id))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let start = body["response"]["start_time"].as_str().unwrap().to_owned();
    assert!(is_traffic_ops_timestamp(&start), "{start}");
    // Traffic Ops' five keys first, exactly as it writes them, then the lifecycle's with
    // their defaults.
    assert_eq!(
        text,
        format!(
            "{{\"response\":{{\"id\":{},\"status\":\"PENDING\",\"start_time\":\"{start}\",\"end_time\":null,\"message\":\"Async job has started.\",\
             \"kind\":null,\"labels\":{{}},\"created_by\":null,\"progress\":null,\"deadline\":null,\
             \"heartbeat_timeout\":null,\"cancel_requested\":false,\"cancel_reason\":null,\
             \"cancel_requested_by\":null,\"last_updated\":\"{start}\"}}}}\n",
            job.id
        )
    );
}

async fn finished_jobs_show_their_end_time_and_null_messages_stay_null(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let job = app
        .with_store(|s| s.create_job(None, now_micros()))
        .await
        .unwrap();
    let id = job.id;
    let update = asyncstatus_domain::JobUpdate {
        status: asyncstatus_domain::JobStatus::Failed,
        message: None,
        progress: None,
    };
    app.with_store(move |s| s.update_job(id, &update, now_micros()))
        .await
        .unwrap();
    let body: Value = get_json(&app.client, app.job_url(id)).await;
    let job = body["response"].as_object().unwrap();
    let keys: Vec<&str> = job.keys().map(String::as_str).collect();
    for key in ["id", "status", "start_time", "end_time", "message"] {
        assert!(keys.contains(&key), "Traffic Ops' {key}: {keys:?}");
    }
    assert_eq!(keys.len(), 15, "and the lifecycle's ten: {keys:?}");
    assert_eq!(job["status"], "FAILED");
    assert!(job["message"].is_null());
    let end = job["end_time"].as_str().unwrap();
    assert!(is_traffic_ops_timestamp(end), "{end}");
    assert!(end >= job["start_time"].as_str().unwrap());
}

async fn ids_are_parsed_as_traffic_ops_does(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let mut last = 0;
    while last < 7 {
        last = app
            .with_store(|s| s.create_job(None, now_micros()))
            .await
            .unwrap()
            .id;
    }
    for (raw, id) in [("007", 7), ("+1", 1), ("1", 1)] {
        let r = app.get(app.job_url(raw)).await;
        assert_eq!(r.status(), StatusCode::OK, "{raw}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["response"]["id"], id, "{raw}");
    }
    for raw in [
        "abc",
        "1.5",
        "1e3",
        "9223372036854775808",
        "-9223372036854775809",
        "%20",
        "0x1",
        "1%20",
    ] {
        let r = app.get(app.job_url(raw)).await;
        assert_alert(r, StatusCode::BAD_REQUEST, NOT_AN_INTEGER).await;
    }
    for raw in ["0", "-1", "9223372036854775807", "-9223372036854775808"] {
        let r = app.get(app.job_url(raw)).await;
        assert_alert(r, StatusCode::NOT_FOUND, "async status not found").await;
    }
}

async fn authentication_is_checked_before_the_id(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for raw in ["abc", "1"] {
        let r = reqwest::get(app.job_url(raw)).await.unwrap();
        assert_alert(r, StatusCode::UNAUTHORIZED, "unauthorized, please log in.").await;
    }
}

/// Reads are coalesced into shared lookups under load: each answer must still be the job that
/// was asked for, missing ones must still be 404, and a read after a write must see it.
async fn concurrent_reads_each_get_their_own_job(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(app.create_job(&format!("job number {i}")).await);
    }
    let readers: Vec<_> = (0..200)
        .map(|n| {
            let wanted = if n % 11 == 10 {
                999_000 + n
            } else {
                ids[n as usize % 10]
            };
            let (client, url) = (app.client.clone(), app.job_url(wanted));
            actix_web::rt::spawn(async move {
                let r = client.get(url).send().await.unwrap();
                (wanted, r.status(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    for reader in readers {
        let (wanted, status, body) = reader.await.unwrap();
        match ids.iter().position(|id| *id == wanted) {
            Some(i) => {
                assert_eq!(status, StatusCode::OK);
                assert_eq!(body["response"]["id"], wanted);
                assert_eq!(body["response"]["message"], format!("job number {i}"));
            }
            None => assert_eq!(status, StatusCode::NOT_FOUND, "{wanted}"),
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let url = app.job_url(id);
        let put = app
            .client
            .put(&url)
            .json(&serde_json::json!({"status": "PENDING", "message": format!("updated {i}")}));
        assert_eq!(put.send().await.unwrap().status(), StatusCode::OK);
        let body: Value = get_json(&app.client, &url).await;
        assert_eq!(
            body["response"]["message"],
            format!("updated {i}"),
            "read-your-writes"
        );
    }
}

crate::both_backends!(
    concurrent_reads_each_get_their_own_job,
    a_job_reads_exactly_as_traffic_ops_shows_it,
    finished_jobs_show_their_end_time_and_null_messages_stay_null,
    ids_are_parsed_as_traffic_ops_does,
    authentication_is_checked_before_the_id,
);
