//! The real Python Traffic Ops client (`apache-trafficcontrol` from PyPI) works unchanged.
//! `make test` installs it in a virtualenv and sets `ASYNCSTATUS_TEST_PYTHON` to its python.

use asyncstatus_persistence::{now_micros, Backend};

use crate::helpers::{TestApp, ADMIN, ADMIN_PASSWORD};

/// Runs the Traffic Ops client script against `app` for `job_id` (over HTTPS with `ssl`);
/// returns its output, failing the test when the script fails. `None` without a Python.
pub async fn run_traffic_ops_client(app: &TestApp, job_id: i64, ssl: bool) -> Option<String> {
    let Ok(python) = std::env::var("ASYNCSTATUS_TEST_PYTHON") else {
        eprintln!("SKIPPED: ASYNCSTATUS_TEST_PYTHON is not set (`make test` sets it)");
        return None;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/to_client.py");
    let mut args = vec![
        script.to_owned(),
        app.port.to_string(),
        ADMIN.to_owned(),
        ADMIN_PASSWORD.to_owned(),
        job_id.to_string(),
    ];
    if ssl {
        args.push("--ssl".into());
    }
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

crate::both_backends!(the_python_traffic_ops_client_logs_in_and_polls);
