//! curl with a cookie jar, as the README shows it, works through the hardening: it sends
//! neither `Origin` nor `Sec-Fetch-Site`, a form content type, and keeps the cookie in a file.

use std::process::Command;

use asyncstatus_persistence::Backend;
use serde_json::Value;

use crate::helpers::{TestApp, ADMIN, ADMIN_PASSWORD};

/// Runs curl with `args`; its status line code and body.
async fn curl(args: Vec<String>) -> (u16, String) {
    let out = actix_web::rt::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}"])
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .expect("curl runs (the README's examples use it)");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

async fn curl_with_a_cookie_jar_logs_in_creates_polls_and_logs_out(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let jar = std::env::temp_dir().join(format!(
        "asyncstatus-jar-{}-{}",
        std::process::id(),
        app.port
    ));
    let jar = jar.to_string_lossy().into_owned();
    let login = format!(r#"{{"u":"{ADMIN}","p":"{ADMIN_PASSWORD}"}}"#);
    let (code, _) = curl(vec![
        "-c".into(),
        jar.clone(),
        "-d".into(),
        login,
        app.api("/user/login"),
    ])
    .await;
    assert_eq!(code, 200, "login");
    let (code, body) = curl(vec![
        "-b".into(),
        jar.clone(),
        "-d".into(),
        r#"{"message":"from curl"}"#.into(),
        app.api("/async_status"),
    ])
    .await;
    assert_eq!(code, 202, "create: {body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["response"]["id"]
        .as_i64()
        .unwrap();
    let (code, body) = curl(vec!["-b".into(), jar.clone(), app.job_url(id)]).await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["response"]["message"],
        "from curl"
    );
    let (code, _) = curl(vec![
        "-b".into(),
        jar.clone(),
        "-c".into(),
        jar.clone(),
        "-X".into(),
        "POST".into(),
        app.api("/user/logout"),
    ])
    .await;
    assert_eq!(code, 200, "logout");
    let (code, _) = curl(vec!["-b".into(), jar.clone(), app.job_url(id)]).await;
    assert_eq!(code, 401, "the jar's session ended");
    let _ = std::fs::remove_file(&jar);
}

crate::both_backends!(curl_with_a_cookie_jar_logs_in_creates_polls_and_logs_out);
