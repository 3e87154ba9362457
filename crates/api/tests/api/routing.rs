//! Version routing, unknown paths and methods, the envelope and its headers, gzip, body limits.

use std::io::Read;

use asyncstatus_persistence::Backend;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::StatusCode;
use sha2::{Digest, Sha512};

use crate::helpers::{assert_alert, get_with_header, TestApp, ADMIN, ADMIN_PASSWORD};

const NOT_IMPLEMENTED: &str = "The requested api version is not implemented by this server. If you are using a newer client with an older server, you will need to use an older client version or upgrade your server.";

async fn unknown_api_versions_answer_501(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for path in [
        "/api/9.0/ping",
        "/api/x/async_status/1",
        "/api/3.1/async_status/1",
        "/api/4.00/ping",
        "/api/",
        "/api",
    ] {
        let r = app.get(format!("{}{path}", app.address)).await;
        assert_alert(r, StatusCode::NOT_IMPLEMENTED, NOT_IMPLEMENTED).await;
    }
}

async fn every_supported_version_serves_the_same_routes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for version in ["4.0", "4.1", "5.0"] {
        let r = app.get(format!("{}/api/{version}/ping", app.address)).await;
        assert_eq!(r.status(), StatusCode::OK, "{version}");
        assert_eq!(r.text().await.unwrap(), "{\"ping\":\"pong\"}\n");
    }
}

async fn unknown_paths_answer_404_naming_the_path(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for path in [
        "/api/4.0/nope",
        "/api/5.0/async_status/1/extra",
        "/elsewhere",
    ] {
        let r = app.get(format!("{}{path}", app.address)).await;
        assert_alert(
            r,
            StatusCode::NOT_FOUND,
            &format!("The requested path '{path}' does not exist."),
        )
        .await;
    }
}

async fn a_wrong_method_answers_405_with_allow(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/ping", "GET"),
        (reqwest::Method::GET, "/user/login", "POST"),
        (
            reqwest::Method::PATCH,
            "/async_status/1",
            "GET, PUT, DELETE",
        ),
        (reqwest::Method::PUT, "/async_status", "GET, POST"),
    ] {
        let r = app
            .client
            .request(method.clone(), app.api(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(r.headers()["allow"], allow);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["alerts"][0]["level"], "error");
        assert!(body["alerts"][0]["text"]
            .as_str()
            .unwrap()
            .contains(method.as_str()));
    }
}

fn sha512_b64(bytes: &[u8]) -> String {
    STANDARD.encode(Sha512::digest(bytes))
}

async fn every_answer_carries_the_traffic_ops_headers(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    for (path, status) in [
        ("/api/4.0/ping", StatusCode::OK),
        ("/api/4.0/async_status/1", StatusCode::UNAUTHORIZED),
        ("/api/9.0/ping", StatusCode::NOT_IMPLEMENTED),
        ("/api/4.0/nope", StatusCode::NOT_FOUND),
    ] {
        let r = raw
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        let headers = r.headers().clone();
        assert_eq!(headers["content-type"], "application/json", "{path}");
        assert_eq!(
            headers["x-server-name"],
            concat!("asyncstatus/", env!("CARGO_PKG_VERSION"))
        );
        let body = r.bytes().await.unwrap();
        assert_eq!(
            body.last(),
            Some(&b'\n'),
            "{path}: body ends with a newline"
        );
        if status == StatusCode::UNAUTHORIZED {
            // Traffic Ops' bytes: an alert's `text` before its `level`.
            assert_eq!(
                &body[..],
                b"{\"alerts\":[{\"text\":\"unauthorized, please log in.\",\"level\":\"error\"}]}\n",
                "{path}"
            );
        }
        assert_eq!(
            headers["whole-content-sha512"],
            sha512_b64(&body).as_str(),
            "{path}"
        );
    }
}

async fn answers_are_gzipped_when_accepted_and_hashed_uncompressed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let r = get_with_header(&raw, app.api("/ping"), "accept-encoding", "gzip").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert!(r.headers()["vary"]
        .to_str()
        .unwrap()
        .to_lowercase()
        .contains("accept-encoding"));
    let sha = r.headers()["whole-content-sha512"]
        .to_str()
        .unwrap()
        .to_owned();
    let compressed = r.bytes().await.unwrap();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, b"{\"ping\":\"pong\"}\n");
    assert_eq!(sha, sha512_b64(&plain));

    let r = raw.get(app.api("/ping")).send().await.unwrap();
    assert!(
        r.headers().get("content-encoding").is_none(),
        "no gzip unless accepted"
    );
}

async fn request_bodies_are_json_whatever_the_content_type(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let body = format!(r#"{{"u":"{ADMIN}","p":"{ADMIN_PASSWORD}"}}"#);
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/json",
    ] {
        let r = reqwest::Client::new()
            .post(app.api("/user/login"))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{content_type}");
    }
    let r = reqwest::Client::new()
        .post(app.api("/user/login"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "no content type at all");
}

async fn bodies_over_the_limit_answer_413(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.server.max_body_bytes = 2048).await else {
        return;
    };
    let big = format!(r#"{{"u":"{ADMIN}","p":"{}"}}"#, "x".repeat(4096));
    let r = app.post_body(app.api("/user/login"), big).await;
    assert_alert(
        r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body is larger than the limit of 2048 bytes",
    )
    .await;
    app.login_admin().await;
    let r = app
        .post_json(
            app.api("/async_status"),
            &serde_json::json!({"message": "m".repeat(3000)}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn ping_needs_no_authentication(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let r = reqwest::get(app.api("/ping")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"ping": "pong"}));
}

crate::both_backends!(
    unknown_api_versions_answer_501,
    every_supported_version_serves_the_same_routes,
    unknown_paths_answer_404_naming_the_path,
    a_wrong_method_answers_405_with_allow,
    every_answer_carries_the_traffic_ops_headers,
    answers_are_gzipped_when_accepted_and_hashed_uncompressed,
    request_bodies_are_json_whatever_the_content_type,
    bodies_over_the_limit_answer_413,
    ping_needs_no_authentication,
);
