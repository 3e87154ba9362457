//! The real Python Traffic Ops client (`apache-trafficcontrol` from PyPI) works unchanged.
//! `make test` installs it in a virtualenv and sets `ASYNCSTATUS_TEST_PYTHON` to its python.

use asyncstatus_persistence::{now_micros, Backend};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN, ADMIN_PASSWORD};

/// Runs the Traffic Ops client script against `app` for `job_id` (over HTTPS with `ssl`);
/// returns its output, failing the test when the script fails. `None` without a Python.
pub async fn run_traffic_ops_client(app: &TestApp, job_id: i64, ssl: bool) -> Option<String> {
    run_traffic_ops_client_with(app, job_id, ssl, false).await
}

/// [`run_traffic_ops_client`], with `--lifecycle` when `lifecycle`.
async fn run_traffic_ops_client_with(
    app: &TestApp,
    job_id: i64,
    ssl: bool,
    lifecycle: bool,
) -> Option<String> {
    let job = job_id.to_string();
    let mut args = vec![ADMIN, ADMIN_PASSWORD, job.as_str()];
    if ssl {
        args.push("--ssl");
    }
    if lifecycle {
        args.push("--lifecycle");
    }
    run_script(app, &args).await
}

/// Runs `to_client.py PORT ARGS…` against `app`; its output, failing the test when the script
/// fails. `None` without a Python.
pub async fn run_script(app: &TestApp, args: &[&str]) -> Option<String> {
    let Ok(python) = std::env::var("ASYNCSTATUS_TEST_PYTHON") else {
        eprintln!("SKIPPED: ASYNCSTATUS_TEST_PYTHON is not set (`make test` sets it)");
        return None;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/to_client.py");
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.insert(0, app.port.to_string());
    args.insert(0, script.to_owned());
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new(python).args(args).output()
    })
    .await
    .unwrap()
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(stdout)
}

async fn the_python_traffic_ops_client_logs_in_and_polls(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let job = app
        .with_store(|s| s.create_job(Some("Async job has started."), now_micros()))
        .await
        .unwrap();
    if let Some(stdout) = run_traffic_ops_client(&app, job.id, false).await {
        assert!(
            stdout.contains("OK PENDING Async job has started."),
            "{stdout}"
        );
    }
}

async fn the_python_traffic_ops_client_reads_jobs_with_every_lifecycle_key(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let r = app
        .post_json(
            app.api("/async_status"),
            &json!({"message": "renewing", "kind": "acme.renew", "labels": {"cdn": "cdn1"},
                    "key": "renew cdn1", "timeout": "1h", "heartbeat_timeout": 60}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["response"]["id"]
        .as_i64()
        .unwrap();
    let r = app
        .put_job(
            id,
            json!({"status": "PENDING", "progress": {"done": 1, "total": 3}}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_json(
            app.api(&format!("/async_status/{id}/cancel")),
            &json!({"reason": "test"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    if let Some(stdout) = run_traffic_ops_client_with(&app, id, false, true).await {
        assert!(stdout.contains("OK PENDING renewing"), "{stdout}");
    }
}

crate::both_backends!(
    the_python_traffic_ops_client_logs_in_and_polls,
    the_python_traffic_ops_client_reads_jobs_with_every_lifecycle_key,
);
