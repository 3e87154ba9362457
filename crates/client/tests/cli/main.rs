//! The `asyncstatus` command against the real service over HTTP: each test starts the
//! `asyncstatus-api` binary on a fresh database, on SQLite and on PostgreSQL (the
//! `postgres::` tests), and runs the command as a user or a script would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod service;
mod stand_in;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use asyncstatus_client::{JobStatus, Progress};
use asyncstatus_persistence::Backend;
use serde_json::Value;

use service::{exit_code, lines_of, wait_for_line, wait_until, Service};
use stand_in::StandIn;

/// Instantiates each `fn name(backend: Backend)` as `sqlite::name` and `postgres::name`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(asyncstatus_persistence::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(asyncstatus_persistence::Backend::Postgres) } )*
        }
    };
}

both_backends!(
    wait_exits_0_when_another_process_finishes_the_job_as_succeeded_and_1_as_failed,
    wait_exits_124_when_its_timeout_passes_and_2_on_a_4xx,
    wait_polls_a_service_that_does_not_hold_answers,
    wait_keeps_waiting_while_the_service_is_stopped_and_started_again,
    run_finishes_the_job_of_a_succeeding_command_as_succeeded,
    run_finishes_the_job_of_a_failing_command_with_its_exit_status_and_last_lines,
    run_reports_a_command_killed_by_a_signal_forwards_sigterm_and_enforces_its_timeout,
    run_keeps_the_command_running_while_the_service_is_stopped_and_started_again,
    create_sets_kind_labels_and_key_and_list_filters_by_them,
    cancel_asks_the_producer_to_stop_and_force_fails_the_job_at_once,
    run_sends_the_progress_its_command_prints_and_its_kind_labels_and_key,
    run_stops_its_command_when_the_job_is_cancelled_and_exits_125,
    the_event_stream_of_the_library_sees_the_jobs_it_selects_change,
);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `asyncstatus create --json MESSAGE`; the new job's id.
fn create(service: &Service, message: &str) -> i64 {
    let out = service
        .command()
        .args(["create", "--json", message])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["status"], "PENDING");
    let id = job["id"].as_i64().unwrap();
    assert!(
        stderr(&out).contains(&format!("/api/4.0/async_status/{id}")),
        "the Location on stderr: {}",
        stderr(&out)
    );
    id
}

/// The id in `asyncstatus: job N created: LOCATION`.
fn created_id(line: &str) -> i64 {
    line.split("async_status/")
        .nth(1)
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no job location in {line:?}"))
}

fn waiters(service: &Service) -> f64 {
    service.metric("asyncstatus_longpoll_waiters ")
}

fn wait_exits_0_when_another_process_finishes_the_job_as_succeeded_and_1_as_failed(
    backend: Backend,
) {
    let Some(service) = Service::start(backend, &[]) else {
        return;
    };
    for (outcome, code, status) in [("succeeded", 0, "SUCCEEDED"), ("failed", 1, "FAILED")] {
        let id = create(&service, "deploying");
        let location = format!("/api/4.0/async_status/{id}");
        let waiter = service
            .command()
            .args(["wait", &location, "--json", "--timeout", "1m"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut waiter = service::Reaped(waiter);
        wait_until("the waiter holds a long poll", || waiters(&service) == 1.0);
        let finished = Instant::now();
        let out = service
            .command()
            .args(["finish", &id.to_string(), outcome, "all servers done"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "finish: {}", stderr(&out));
        assert_eq!(exit_code(&mut waiter.0), Some(code), "wait for {status}");
        assert!(
            finished.elapsed() < Duration::from_secs(4),
            "woken by the change, not by polling: {:?}",
            finished.elapsed()
        );
        let mut printed = String::new();
        std::io::Read::read_to_string(waiter.0.stdout.as_mut().unwrap(), &mut printed).unwrap();
        let job: Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(job["id"], id);
        assert_eq!(job["status"], status);
        assert_eq!(job["message"], "all servers done");
        assert!(job["end_time"].is_string(), "{job}");
    }

    // A job that already finished: `wait` answers at once, as a table for people.
    let out = service.command().args(["wait", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let table = stdout(&out);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("1 ") && l.contains("SUCCEEDED")),
        "{table}"
    );
}

fn wait_exits_124_when_its_timeout_passes_and_2_on_a_4xx(backend: Backend) {
    let Some(service) = Service::start(backend, &[]) else {
        return;
    };
    let id = create(&service, "never finishes");
    let started = Instant::now();
    let out = service
        .command()
        .args(["wait", &id.to_string(), "--timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        stderr(&out).contains("timed out after 1s"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("PENDING"), "{}", stdout(&out));

    let out = service.command().args(["wait", "99999"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("404: async status not found"),
        "{}",
        stderr(&out)
    );

    let out = service
        .command()
        .env("ASYNCSTATUS_PASSWORD", "wrong-password")
        .args(["get", &id.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("401: Invalid username or password."),
        "{}",
        stderr(&out)
    );

    let out = service
        .command()
        .args(["finish", &id.to_string(), "succeeded"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = service
        .command()
        .args(["finish", &id.to_string(), "failed", "too late"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("409: async status is already SUCCEEDED and can no longer be changed"),
        "{}",
        stderr(&out)
    );

    // A token from `login` instead of a password; list with filters; `logout` revokes it.
    let out = service.command().arg("login").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    let with_token = |args: &[&str]| {
        service
            .command()
            .env_remove("ASYNCSTATUS_USER")
            .env_remove("ASYNCSTATUS_PASSWORD")
            .env("ASYNCSTATUS_TOKEN", &token)
            .args(args)
            .output()
            .unwrap()
    };
    let out = with_token(&["list", "--status", "succeeded", "--limit", "5", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let jobs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(jobs[0]["id"], id);
    let out = with_token(&["logout"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = with_token(&["get", &id.to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("401: unauthorized, please log in."),
        "{}",
        stderr(&out)
    );
}

fn wait_polls_a_service_that_does_not_hold_answers(backend: Backend) {
    let Some(service) = Service::start(
        backend,
        &[
            ("ASYNCSTATUS__JOBS__MAX_WAIT", "0s"),
            ("ASYNCSTATUS__JOBS__POLL_HINT", "1s"),
        ],
    ) else {
        return;
    };
    let id = create(&service, "polled");
    let gets = || {
        service.metric(
            r#"asyncstatus_http_requests_total{method="GET",route="/api/4.0/async_status/{id}",status="200"}"#,
        )
    };
    let mut waiter = service::Reaped(
        service
            .command()
            .args(["wait", &id.to_string(), "--timeout", "1m"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Two reads: the waiter asked, was answered at once, and asked again as Retry-After said.
    wait_until("the waiter polls twice", || gets() >= 2.0);
    assert_eq!(waiters(&service), 0.0, "no long poll is held");
    service
        .client()
        .update(id, JobStatus::Succeeded, Some("done"))
        .unwrap();
    assert_eq!(exit_code(&mut waiter.0), Some(0));
}

fn wait_keeps_waiting_while_the_service_is_stopped_and_started_again(backend: Backend) {
    let Some(mut service) = Service::start(backend, &[]) else {
        return;
    };
    let id = create(&service, "across a restart");
    let mut waiter = service::Reaped(
        service
            .command()
            .args(["wait", &id.to_string(), "--timeout", "1m", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = lines_of(waiter.0.stderr.take().unwrap());
    wait_until("the waiter holds a long poll", || waiters(&service) == 1.0);
    service.stop();
    let mut seen = Vec::new();
    wait_for_line(&err, "retrying in", &mut seen);
    service.start_again();
    service
        .client()
        .update(id, JobStatus::Succeeded, Some("done"))
        .unwrap();
    assert_eq!(exit_code(&mut waiter.0), Some(0), "{seen:#?}");
    let mut printed = String::new();
    std::io::Read::read_to_string(waiter.0.stdout.as_mut().unwrap(), &mut printed).unwrap();
    let job: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(job["status"], "SUCCEEDED");
}

fn run_finishes_the_job_of_a_succeeding_command_as_succeeded(backend: Backend) {
    let Some(service) = Service::start(backend, &[]) else {
        return;
    };
    let out = service
        .command()
        .args(["run", "--message", "backup", "--"])
        .args([
            "sh",
            "-c",
            "echo working; echo all done; echo on stderr >&2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "working\nall done\n", "stdout passed through");
    let err = stderr(&out);
    assert!(err.contains("on stderr\n"), "stderr passed through: {err}");
    let id = created_id(err.lines().next().unwrap_or_default());
    let job = service.client().get(id).unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    let message = job.message.unwrap_or_default();
    assert!(
        message == "exit 0: all done" || message == "exit 0: on stderr",
        "{message}"
    );
}

fn run_finishes_the_job_of_a_failing_command_with_its_exit_status_and_last_lines(backend: Backend) {
    let Some(service) = Service::start(backend, &[]) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("asyncstatus-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gate = dir.join(format!("gate-{backend:?}"));
    let _ = std::fs::remove_file(&gate);
    // Prints a step, then waits (bounded) for the test to have seen it as the job's message.
    let script = format!(
        "echo step one; echo warning on stderr >&2; echo step two; i=0; \
         while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; exit 3",
        gate.display()
    );
    let mut child = service::Reaped(
        service
            .command()
            .args(["run", "--heartbeat", "100ms", "--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(child.0.stderr.take().unwrap());
    let mut seen = Vec::new();
    wait_for_line(&lines, "created", &mut seen);
    let id = created_id(&seen[0]);
    let client = service.client();
    // The two streams are read apart, so either stream's line may be the last one seen.
    wait_until("a heartbeat carries the last line", || {
        matches!(
            client.get(id).unwrap().message.as_deref(),
            Some("step two" | "warning on stderr")
        )
    });
    std::fs::write(&gate, "").unwrap();
    assert_eq!(
        exit_code(&mut child.0),
        Some(3),
        "the command's exit status"
    );
    let job = client.get(id).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    let message = job.message.unwrap_or_default();
    assert!(message.starts_with("exit 3: "), "{message}");
    for line in ["step one", "warning on stderr", "step two"] {
        assert!(message.contains(line), "{message:?} lacks {line:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_reports_a_command_killed_by_a_signal_forwards_sigterm_and_enforces_its_timeout(
    backend: Backend,
) {
    let Some(service) = Service::start(backend, &[]) else {
        return;
    };
    let out = service
        .command()
        .args(["run", "--", "sh", "-c", "echo going; kill -KILL $$"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + 9), "{}", stderr(&out));
    let id = created_id(stderr(&out).lines().next().unwrap_or_default());
    let job = service.client().get(id).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.message.as_deref(),
        Some("killed by signal 9 (SIGKILL): going")
    );

    // SIGTERM to asyncstatus reaches the command, whose job records it.
    let mut child = service::Reaped(
        service
            .command()
            .args(["run", "--", "sh", "-c", "echo ready; exec sleep 30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = lines_of(child.0.stderr.take().unwrap());
    let out = lines_of(child.0.stdout.take().unwrap());
    let mut seen = Vec::new();
    wait_for_line(&err, "created", &mut seen);
    let id = created_id(&seen[0]);
    wait_for_line(&out, "ready", &mut Vec::new());
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(exit_code(&mut child.0), Some(128 + 15));
    let job = service.client().get(id).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.message.as_deref(),
        Some("killed by signal 15 (SIGTERM): ready")
    );

    // --timeout stops the command with SIGTERM and exits 124, as timeout(1) does.
    let out = service
        .command()
        .args([
            "run",
            "--timeout",
            "1s",
            "--",
            "sh",
            "-c",
            "echo long; exec sleep 30",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    let id = created_id(stderr(&out).lines().next().unwrap_or_default());
    let job = service.client().get(id).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.message.as_deref(),
        Some("timed out after 1s: killed by signal 15 (SIGTERM): long")
    );
}

fn run_keeps_the_command_running_while_the_service_is_stopped_and_started_again(backend: Backend) {
    let Some(mut service) = Service::start(backend, &[]) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("asyncstatus-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gate = dir.join(format!("gate-{backend:?}"));
    let _ = std::fs::remove_file(&gate);
    let script = format!(
        "echo started; i=0; \
         while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo finishing",
        gate.display()
    );
    let mut child = service::Reaped(
        service
            .command()
            .args(["run", "--heartbeat", "100ms", "--finish-retry-for", "1m"])
            .args(["--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = lines_of(child.0.stderr.take().unwrap());
    let out = lines_of(child.0.stdout.take().unwrap());
    let mut seen = Vec::new();
    wait_for_line(&err, "created", &mut seen);
    let id = created_id(&seen[0]);
    wait_for_line(&out, "started", &mut Vec::new());

    service.stop();
    wait_for_line(&err, &format!("heartbeat of job {id} failed"), &mut seen);
    // The command finishes while the service is down: the final update is retried.
    std::fs::write(&gate, "").unwrap();
    wait_for_line(&out, "finishing", &mut Vec::new());
    wait_for_line(&err, "retrying in", &mut seen);
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "still trying to deliver"
    );
    service.start_again();
    assert_eq!(exit_code(&mut child.0), Some(0), "{seen:#?}");
    let job = service.client().get(id).unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert_eq!(job.message.as_deref(), Some("exit 0: finishing"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `asyncstatus ARGS… --json` (exit 0); the JSON it printed and its standard error.
fn json_of(service: &Service, args: &[&str]) -> (Value, String) {
    let out = service.command().args(args).arg("--json").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    (serde_json::from_slice(&out.stdout).unwrap(), stderr(&out))
}

/// The ids of a JSON array of jobs.
fn ids(jobs: &Value) -> Vec<i64> {
    jobs.as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

fn create_sets_kind_labels_and_key_and_list_filters_by_them(backend: Backend) {
    let Some(service) = Service::start(backend, &[]) else {
        return;
    };
    let (renew, err) = json_of(
        &service,
        &[
            "create",
            "Renewing certificates",
            "--kind",
            "acme.renew",
            "--label",
            "cdn=cdn1",
            "--label",
            "xmlId=demo1",
            "--key",
            "acme-cdn1",
            "--timeout",
            "10m",
        ],
    );
    let id = renew["id"].as_i64().unwrap();
    assert!(err.contains(&format!("job {id} created")), "{err}");
    assert_eq!(renew["status"], "PENDING");
    assert_eq!(renew["kind"], "acme.renew");
    assert_eq!(
        renew["labels"],
        serde_json::json!({"cdn": "cdn1", "xmlId": "demo1"})
    );
    assert_eq!(renew["created_by"], "admin");
    assert_eq!(renew["cancel_requested"], false);
    let deadline = chrono::DateTime::parse_from_rfc3339(renew["deadline"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let in_ten_minutes = chrono::Utc::now() + chrono::Duration::minutes(10);
    assert!(
        (deadline - in_ten_minutes).num_seconds().abs() < 30,
        "{deadline}"
    );

    // The same key while the job is PENDING: that job, nothing new.
    let (again, err) = json_of(
        &service,
        &["create", "Renewing again", "--key", "acme-cdn1"],
    );
    assert_eq!(again["id"], id, "{again}");
    assert!(err.contains("already runs"), "{err}");
    assert!(
        err.contains(&format!("/api/4.0/async_status/{id}")),
        "{err}"
    );

    let (refresh, _) = json_of(
        &service,
        &[
            "create",
            "Refreshing DNSSEC keys",
            "--kind",
            "dnssec.refresh",
            "--label",
            "cdn=cdn2",
        ],
    );
    let other = refresh["id"].as_i64().unwrap();
    let plain = create(&service, "no kind, no labels");

    for (filter, expected) in [
        (&["--kind", "acme.renew"][..], vec![id]),
        (&["--kind", "dnssec.refresh"], vec![other]),
        (&["--label", "cdn=cdn2"], vec![other]),
        (&["--label", "cdn=cdn1", "--label", "xmlId=demo1"], vec![id]),
        (&["--label", "cdn=cdn1", "--label", "xmlId=other"], vec![]),
        (&["--kind", "dnssec.refresh", "--label", "cdn=cdn1"], vec![]),
        (&["--created-by", "admin"], vec![id, other, plain]),
    ] {
        let mut args = vec!["list"];
        args.extend_from_slice(filter);
        let (jobs, _) = json_of(&service, &args);
        assert_eq!(ids(&jobs), expected, "{filter:?}: {jobs}");
    }

    // For people: a KIND column, and the labels under a single job.
    let out = service
        .command()
        .args(["get", &id.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("ID       STATUS     KIND "), "{table}");
    assert!(table.contains(" acme.renew "), "{table}");
    assert!(table.contains("labels: cdn=cdn1, xmlId=demo1\n"), "{table}");
    assert!(table.contains("created by: admin\n"), "{table}");

    // Once the job is finished, the key starts a new one.
    let out = service
        .command()
        .args(["finish", &id.to_string(), "succeeded", "renewed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (next, err) = json_of(&service, &["create", "--key", "acme-cdn1"]);
    assert_ne!(next["id"], id, "{next}");
    assert!(err.contains("created"), "{err}");

    // Bad values are the service's 400s, exit 2.
    let out = service
        .command()
        .args(["create", "--kind", "Not A Kind!"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("400"), "{}", stderr(&out));
}

fn cancel_asks_the_producer_to_stop_and_force_fails_the_job_at_once(backend: Backend) {
    let Some(service) = Service::start(backend, &[]) else {
        return;
    };
    let id = create(&service, "refreshing");
    let (job, err) = json_of(
        &service,
        &["cancel", &id.to_string(), "--reason", "wrong cdn"],
    );
    assert!(err.contains("requested"), "{err}");
    assert_eq!(job["id"], id);
    assert_eq!(job["status"], "PENDING", "its producer finishes it: {job}");
    assert_eq!(job["cancel_requested"], true);
    assert_eq!(job["cancel_reason"], "wrong cdn");
    assert_eq!(job["cancel_requested_by"], "admin");
    // Its producer sees it in the answer to its next heartbeat.
    let beat = service
        .client()
        .update(id, JobStatus::Pending, Some("still going"))
        .unwrap();
    assert!(beat.cancel_requested, "{beat:?}");
    let out = service
        .command()
        .args(["get", &id.to_string()])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("cancel requested by admin: wrong cdn\n"),
        "{}",
        stdout(&out)
    );

    let forced = create(&service, "stuck");
    let out = service
        .command()
        .args([
            "cancel",
            &forced.to_string(),
            "--reason",
            "runner gone",
            "--force",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("ID "), "{table}");
    let job = service.client().get(forced).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.message.as_deref(),
        Some("cancelled by admin: runner gone")
    );
    assert!(job.end_time.is_some());

    // A finished job: 409; no such job: 404; both exit 2.
    let out = service
        .command()
        .args(["cancel", &forced.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(": 409: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("FAILED"), "{}", stderr(&out));
    let out = service
        .command()
        .args(["cancel", "99999", "--force"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(": 404: "), "{}", stderr(&out));
}

fn run_sends_the_progress_its_command_prints_and_its_kind_labels_and_key(backend: Backend) {
    let Some(service) = Service::start(backend, &[]) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("asyncstatus-progress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gate = |n: u32| dir.join(format!("gate-{backend:?}-{n}"));
    for n in 1..=2 {
        let _ = std::fs::remove_file(gate(n));
    }
    let wait_for = |n: u32| {
        format!(
            "i=0; while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
            gate(n).display()
        )
    };
    // Each step waits (bounded) for the test to have seen the one before as the job's progress.
    let script = format!(
        "echo copying; echo progress: 1/3; {}; echo progress: 2/3; {}; echo 'progress: 3/3'; echo done",
        wait_for(1),
        wait_for(2)
    );
    let mut child = service::Reaped(
        service
            .command()
            .args(["run", "--heartbeat", "100ms", "--kind", "backup"])
            .args(["--label", "host=db1", "--key", "backup-db1"])
            .args(["--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(child.0.stderr.take().unwrap());
    let mut seen = Vec::new();
    wait_for_line(&lines, "created", &mut seen);
    let id = created_id(&seen[0]);
    let client = service.client();
    let job = client.get(id).unwrap();
    assert_eq!(job.kind.as_deref(), Some("backup"));
    assert_eq!(job.labels.get("host").map(String::as_str), Some("db1"));
    for (n, done) in [(1, 1), (2, 2)] {
        wait_until(&format!("the job's progress is {done}/3"), || {
            client.get(id).unwrap().progress == Some(Progress { done, total: 3 })
        });
        if n == 1 {
            // The same key while it runs: the command is not run, exit 2.
            let marker = dir.join(format!("ran-{backend:?}"));
            let out = service
                .command()
                .args(["run", "--key", "backup-db1", "--", "touch"])
                .arg(&marker)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
            assert!(stderr(&out).contains("already runs"), "{}", stderr(&out));
            assert!(!marker.exists(), "the second command ran");
        }
        std::fs::write(gate(n), "").unwrap();
    }
    assert_eq!(exit_code(&mut child.0), Some(0), "{seen:#?}");
    let job = client.get(id).unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.progress, Some(Progress { done: 3, total: 3 }));
    assert_eq!(job.message.as_deref(), Some("exit 0: done"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_stops_its_command_when_the_job_is_cancelled_and_exits_125(backend: Backend) {
    let Some(service) = Service::start(backend, &[]) else {
        return;
    };
    let client = service.client();
    // (the command, --grace, the reason, forced, how the command ended)
    for (script, grace, reason, force, ended) in [
        (
            "echo ready; exec sleep 30",
            "10s",
            "not needed",
            false,
            "killed by signal 15 (SIGTERM): ready",
        ),
        (
            // SIGTERM is ignored (and stays ignored across exec): SIGKILL after --grace.
            "trap '' TERM; echo ready; exec sleep 30",
            "1s",
            "stuck",
            false,
            "killed by signal 9 (SIGKILL): ready",
        ),
        ("echo ready; exec sleep 30", "10s", "runner gone", true, ""),
    ] {
        let mut child = service::Reaped(
            service
                .command()
                .args(["run", "--heartbeat", "100ms", "--grace", grace])
                .args(["--", "sh", "-c", script])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let err = lines_of(child.0.stderr.take().unwrap());
        let out = lines_of(child.0.stdout.take().unwrap());
        let mut seen = Vec::new();
        wait_for_line(&err, "created", &mut seen);
        let id = created_id(&seen[0]);
        wait_for_line(&out, "ready", &mut Vec::new());
        let asked = Instant::now();
        let job = client.cancel(id, Some(reason), force).unwrap();
        assert!(job.cancel_requested, "{job:?}");
        assert_eq!(exit_code(&mut child.0), Some(125), "{script}: {seen:#?}");
        assert!(
            asked.elapsed() < Duration::from_secs(8),
            "{script}: stopped at a heartbeat: {:?}",
            asked.elapsed()
        );
        let job = client.get(id).unwrap();
        assert_eq!(job.status, JobStatus::Failed, "{job:?}");
        let expected = if force {
            format!("cancelled by admin: {reason}")
        } else {
            format!("cancelled by admin: {reason}: {ended}")
        };
        assert_eq!(job.message.as_deref(), Some(expected.as_str()), "{seen:#?}");
        let rest: Vec<String> = err.try_iter().collect();
        assert!(
            seen.iter()
                .chain(&rest)
                .any(|l| l.contains("sending SIGTERM")),
            "{seen:#?} {rest:#?}"
        );
    }
}

fn the_event_stream_of_the_library_sees_the_jobs_it_selects_change(backend: Backend) {
    use asyncstatus_client::{Event, ListFilter, NewJob};
    let Some(service) = Service::start(backend, &[]) else {
        return;
    };
    let client = service.client();
    let filter = ListFilter {
        kind: Some("backup".into()),
        ..ListFilter::default()
    };
    let events = client.events(&filter).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for event in events {
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    // Until the stream is surely open, a created job may be missed: create until one is seen.
    let mut created = Vec::new();
    let first = loop {
        let job = client
            .create(NewJob::new().message("nightly").kind("backup"))
            .unwrap()
            .job;
        created.push(job.id);
        client.create(NewJob::new().kind("other")).unwrap();
        if let Ok(event) = rx.recv_timeout(Duration::from_millis(500)) {
            break event.unwrap();
        }
        assert!(created.len() < 20, "no event for {created:?}");
    };
    let Event::Job(job) = first else {
        panic!("{first:?}")
    };
    assert!(created.contains(&job.id), "{job:?}");
    let id = *created.last().unwrap();
    client
        .update(id, JobStatus::Succeeded, Some("backed up"))
        .unwrap();
    let deadline = Instant::now() + service::DEADLINE;
    loop {
        let event = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the change's event")
            .unwrap();
        match event {
            Event::Job(job) if job.kind.as_deref() != Some("backup") => {
                panic!("an event the filter does not select: {job:?}")
            }
            Event::Job(job) if job.id == id && job.status == JobStatus::Succeeded => {
                assert_eq!(job.message.as_deref(), Some("backed up"));
                break;
            }
            _ => {}
        }
    }
}

// Against the stand-in (stand_in.rs): exactly what the client sends, and what it does with
// the lifecycle keys of the answers.

#[test]
fn create_and_list_send_the_lifecycle_options_as_the_contract_says() {
    let stand_in = StandIn::start();
    let out = stand_in
        .command()
        .args([
            "create",
            "renewing",
            "--kind",
            "acme.renew",
            "--key",
            "acme-cdn1",
        ])
        .args(["--label", "cdn=cdn1", "--label", "xmlId=demo1"])
        .args(["--timeout", "90s", "--heartbeat-timeout", "1m", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = stand_in
        .command()
        .args(["list", "--kind", "acme.renew", "--label", "cdn=cdn1"])
        .args([
            "--label",
            "xmlId=demo1",
            "--created-by",
            "admin",
            "--status",
            "pending",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table.starts_with("ID       STATUS     KIND       START_TIME"),
        "{table}"
    );
    let requests = stand_in.requests();
    let create = requests
        .iter()
        .find(|r| r.method == "POST" && r.path == "/api/4.0/async_status")
        .unwrap();
    assert_eq!(
        create.body,
        serde_json::json!({"message": "renewing", "kind": "acme.renew", "key": "acme-cdn1",
            "labels": {"cdn": "cdn1", "xmlId": "demo1"}, "timeout": 90, "heartbeat_timeout": 60})
    );
    let list = requests.iter().find(|r| r.method == "GET").unwrap();
    assert_eq!(
        list.path,
        "/api/4.0/async_status?status=PENDING&kind=acme.renew&created_by=admin\
         &label=cdn%3Acdn1&label=xmlId%3Ademo1"
    );
    // A plain create sends its message only (Traffic Ops and older servers know no more).
    let out = stand_in
        .command()
        .args(["create", "plain"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let last = stand_in.requests().pop().unwrap();
    assert_eq!(last.body, serde_json::json!({"message": "plain"}));
}

#[test]
fn run_sends_its_options_and_the_progress_its_command_prints() {
    let stand_in = StandIn::start();
    let dir = std::env::temp_dir().join(format!("asyncstatus-stand-in-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gate = dir.join("progress-gate");
    let _ = std::fs::remove_file(&gate);
    let script = format!(
        "echo progress: 1/3; i=0; while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.05; \
         i=$((i+1)); done; echo progress: 0/3; echo 'progress: 2/3'; echo done",
        gate.display()
    );
    let mut child = service::Reaped(
        stand_in
            .command()
            .args(["run", "--message", "backup", "--heartbeat", "100ms"])
            .args([
                "--kind",
                "backup",
                "--key",
                "backup-db1",
                "--label",
                "host=db1",
            ])
            .args([
                "--timeout",
                "1h",
                "--grace",
                "5s",
                "--",
                "sh",
                "-c",
                &script,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let err = lines_of(child.0.stderr.take().unwrap());
    let progress_put = |done: u64| {
        stand_in.requests().iter().any(|r| {
            r.method == "PUT"
                && r.body["status"] == "PENDING"
                && r.body["progress"] == serde_json::json!({"done": done, "total": 3})
        })
    };
    wait_until("a heartbeat carries progress 1/3", || progress_put(1));
    std::fs::write(&gate, "").unwrap();
    assert_eq!(
        exit_code(&mut child.0),
        Some(0),
        "{:?}",
        err.try_iter().collect::<Vec<_>>()
    );
    let requests = stand_in.requests();
    let create = requests
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/async_status"))
        .unwrap();
    assert_eq!(
        create.body,
        serde_json::json!({"message": "backup", "kind": "backup", "key": "backup-db1",
            "labels": {"host": "db1"}, "timeout": 3600 + 5 + 60})
    );
    assert!(!progress_put(0), "progress went backwards: {requests:#?}");
    let last = requests.iter().rfind(|r| r.method == "PUT").unwrap();
    assert_eq!(
        last.body,
        serde_json::json!({"status": "SUCCEEDED", "message": "exit 0: done",
            "progress": {"done": 2, "total": 3}})
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_stops_its_command_when_a_heartbeat_answer_shows_a_cancel_request() {
    let stand_in = StandIn::start();
    for (id, force) in [(1, false), (2, true)] {
        let mut child = service::Reaped(
            stand_in
                .command()
                .args(["run", "--heartbeat", "100ms", "--"])
                .args(["sh", "-c", "echo ready; exec sleep 30"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let err = lines_of(child.0.stderr.take().unwrap());
        let out = lines_of(child.0.stdout.take().unwrap());
        let mut seen = Vec::new();
        wait_for_line(&err, "created", &mut seen);
        assert_eq!(created_id(&seen[0]), id);
        wait_for_line(&out, "ready", &mut Vec::new());
        let mut cancel = stand_in.command();
        cancel.args(["cancel", &id.to_string(), "--reason", "not needed"]);
        if force {
            cancel.arg("--force");
        }
        let cancelled = cancel.output().unwrap();
        assert_eq!(cancelled.status.code(), Some(0), "{}", stderr(&cancelled));
        assert!(
            stdout(&cancelled).contains("cancel requested by admin: not needed"),
            "{}",
            stdout(&cancelled)
        );
        assert_eq!(exit_code(&mut child.0), Some(125), "{seen:#?}");
        let rest: Vec<String> = err.try_iter().collect();
        let job = stand_in.job(id);
        assert_eq!(job["status"], "FAILED");
        let expected = if force {
            "cancelled by admin: not needed"
        } else {
            "cancelled by admin: not needed: killed by signal 15 (SIGTERM): ready"
        };
        assert_eq!(job["message"], expected, "{rest:#?}");
        let requests = stand_in.requests();
        let cancel_request = requests
            .iter()
            .find(|r| r.path == format!("/api/4.0/async_status/{id}/cancel"))
            .unwrap();
        let mut body = serde_json::json!({"reason": "not needed"});
        if force {
            body["force"] = serde_json::json!(true);
        }
        assert_eq!(cancel_request.body, body);
    }
}

#[test]
fn the_event_stream_delivers_creates_changes_and_deletions_until_it_is_closed() {
    use asyncstatus_client::{Event, ListFilter};
    let stand_in = StandIn::start();
    let client = asyncstatus_client::Client::builder(stand_in.url())
        .credentials(asyncstatus_client::Credentials::Password {
            user: "admin".into(),
            password: "whatever".into(),
        })
        .build()
        .unwrap();
    let filter = ListFilter {
        kind: Some("backup".into()),
        labels: vec![("host".into(), "db1".into())],
        ..ListFilter::default()
    };
    let events = client.events(&filter).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for event in events {
            tx.send(event.unwrap()).unwrap();
        }
    });
    wait_until("the stream is open", || stand_in.streams() == 1);
    let created = client
        .create(
            asyncstatus_client::NewJob::new()
                .message("one")
                .kind("backup"),
        )
        .unwrap();
    let id = created.job.id;
    client
        .update(id, JobStatus::Succeeded, Some("done"))
        .unwrap();
    let out = stand_in
        .command()
        .args(["get", &id.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    reqwest::blocking::Client::new()
        .delete(format!("{}/api/4.0/async_status/{id}", stand_in.url()))
        .send()
        .unwrap();
    let next = || rx.recv_timeout(service::DEADLINE).unwrap();
    assert!(matches!(next(), Event::Job(job) if job.id == id && job.status == JobStatus::Pending));
    assert!(
        matches!(next(), Event::Job(job) if job.id == id && job.message.as_deref() == Some("done"))
    );
    assert_eq!(next(), Event::Deleted(id));
    stand_in.close_streams();
    reader.join().unwrap();
    let stream = stand_in
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/events"))
        .unwrap();
    assert_eq!(
        stream.path,
        "/api/4.0/async_status/events?kind=backup&label=host%3Adb1"
    );
}

// Without a service: what the command refuses before it asks anything.

#[test]
fn bad_input_is_a_usage_error_with_a_clear_message() {
    let bin = env!("CARGO_BIN_EXE_asyncstatus");
    for (args, says) in [
        (&["wait", "abc"][..], "not a job id"),
        (&["wait", "1", "--timeout", "soon"], "not a duration"),
        (&["wait", "1", "--timeout", "0s"], "must be more than 0"),
        (
            &["run", "--heartbeat", "1ms", "--", "true"],
            "at least 100ms",
        ),
        (&["run"], "COMMAND"),
        (&["list", "--status", "DONE"], "not a job status"),
        (&["list", "--limit", "0"], "--limit"),
        (
            &["list", "--label", "novalue"],
            "not a label like KEY=VALUE",
        ),
        (&["create", "--label", "=v"], "not a label like KEY=VALUE"),
        (&["create", "--timeout", "0s"], "must be more than 0"),
        (&["cancel", "abc"], "not a job id"),
        (&["run", "--grace", "soon", "--", "true"], "not a duration"),
        (&["finish", "1", "maybe"], "maybe"),
        (
            &["--url", "ftp://x", "get", "1"],
            "must be http:// or https://",
        ),
        (&["--url", "http://x/api/4.0", "get", "1"], "without /api/"),
        (
            &["--url", "http://x", "--api-version", "v4", "get", "1"],
            "MAJOR.MINOR",
        ),
        (
            &[
                "--url",
                "http://x",
                "--ca-cert",
                "/nonexistent.pem",
                "get",
                "1",
            ],
            "CA certificate",
        ),
        (&["get", "1"], "no service URL"),
        (&["--url", "", "get", "1"], "no service URL"),
    ] {
        let out = std::process::Command::new(bin)
            .args(args)
            .env_remove("ASYNCSTATUS_URL")
            .env("ASYNCSTATUS_USER", "u")
            .env("ASYNCSTATUS_PASSWORD", "p")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let out = std::process::Command::new(bin)
        .args(["--url", "http://127.0.0.1:9", "get", "1"])
        .env_remove("ASYNCSTATUS_USER")
        .env_remove("ASYNCSTATUS_PASSWORD")
        .env_remove("ASYNCSTATUS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no credentials"), "{}", stderr(&out));
}

#[test]
fn every_command_explains_itself_with_an_example() {
    for command in [
        "wait", "run", "get", "list", "create", "finish", "cancel", "login", "logout",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_asyncstatus"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let help = stdout(&out);
        assert!(help.contains("Example"), "{command}: {help}");
        assert!(
            help.contains(&format!("asyncstatus {command}")),
            "{command}: {help}"
        );
    }
}

#[test]
fn an_unreachable_service_is_retried_then_exit_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_asyncstatus"))
        .args(["--retry-for", "1s", "wait", "1"])
        .env("ASYNCSTATUS_URL", format!("http://127.0.0.1:{port}"))
        .env("ASYNCSTATUS_TOKEN", "some-token")
        .env_remove("ASYNCSTATUS_USER")
        .env_remove("ASYNCSTATUS_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("retrying in"), "{err}");
    assert!(err.contains("the service is unreachable"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn tls_is_verified_against_the_given_certificate_and_skipped_with_insecure() {
    let pair =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("asyncstatus-client-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
    let service = Service::start(
        Backend::Sqlite,
        &[
            ("ASYNCSTATUS__SERVER__TLS_CERT", cert.to_str().unwrap()),
            ("ASYNCSTATUS__SERVER__TLS_KEY", key.to_str().unwrap()),
        ],
    )
    .unwrap();
    assert!(service.url().starts_with("https://"));

    let out = service.command().args(["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the TLS certificate was refused"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("retrying"),
        "not retried: {}",
        stderr(&out)
    );

    let cert_arg = cert.to_str().unwrap();
    for args in [
        &["--ca-cert", cert_arg, "list"][..],
        &["--insecure", "list"],
    ] {
        let out = service.command().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).starts_with("ID "), "{}", stdout(&out));
    }

    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let out = service
        .command()
        .args(["--ca-cert", garbage.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("CA certificate"), "{}", stderr(&out));
    drop(service);
    let _ = std::fs::remove_dir_all(&dir);
}
