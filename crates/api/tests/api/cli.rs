//! The binary's command line: serve's first-run banner, user and role administration,
//! configuration errors, `--help`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::Backend;
use reqwest::StatusCode;

use crate::helpers::{bearer_get, get_json, login_at, test_settings, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_asyncstatus-api");

/// The binary with the repository's config folder and `db`'s URL.
fn command(db: Option<&TestDatabase>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env(
        "ASYNCSTATUS_CONFIG_DIR",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
    )
    .env("RUST_LOG", "warn")
    .env_remove("ASYNCSTATUS_ENV");
    if let Some(db) = db {
        cmd.env("ASYNCSTATUS__DATABASE__URL", db.url_string());
    }
    cmd
}

fn run(db: &TestDatabase, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = command(Some(db))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(db: &TestDatabase, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(db, args, stdin);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(db: &TestDatabase, args: &[&str], stdin: Option<&str>, says: &str) {
    let out = run(db, args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(
        stderr.contains(says),
        "{args:?}: {stderr:?} should say {says:?}"
    );
}

/// `user add NAME --role ROLE --password-stdin`
fn user_add<'a>(name: &'a str, role: &'a str) -> [&'a str; 6] {
    ["user", "add", name, "--role", role, "--password-stdin"]
}

async fn users_and_roles_are_managed_from_the_command_line(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let db = actix_web::rt::task::spawn_blocking(move || {
        ok(&db, &["migrate"], None);
        ok(
            &db,
            &["role", "add", "watchers", "--description", "reads jobs"],
            None,
        );
        let granted = ok(
            &db,
            &["role", "grant", "watchers", "ASYNC-STATUS:READ"],
            None,
        );
        assert!(granted.contains("granted ASYNC-STATUS:READ"), "{granted}");
        let roles = ok(&db, &["role", "list"], None);
        let line = roles
            .lines()
            .find(|l| l.starts_with("watchers"))
            .unwrap_or_default();
        assert!(
            line.contains("ASYNC-STATUS:READ") && line.contains("reads jobs"),
            "{roles}"
        );
        ok(
            &db,
            &user_add("watcher", "watchers"),
            Some("watcher-password\n"),
        );
        let users = ok(&db, &["user", "list"], None);
        assert!(
            users
                .lines()
                .any(|l| l.split_whitespace().eq(["watcher", "watchers"])),
            "{users}"
        );

        for (name, role, password, says) in [
            ("x", "nosuch", "long-enough\n", "role 'nosuch' not found"),
            ("watcher", "watchers", "long-enough\n", "already exists"),
            ("y", "watchers", "short\n", "at least 8 characters"),
            ("bad name", "watchers", "long-enough\n", "username"),
        ] {
            fails(&db, &user_add(name, role), Some(password), says);
        }
        for (args, says) in [
            (
                &["user", "add", "z", "--role", "watchers"][..],
                "--password-stdin",
            ),
            (&["user", "remove", "ghost"], "user 'ghost' not found"),
            (
                &["user", "set-role", "watcher", "nosuch"],
                "role 'nosuch' not found",
            ),
            (
                &["role", "grant", "nosuch", "ASYNC-STATUS:READ"],
                "role 'nosuch' not found",
            ),
            (
                &["role", "grant", "watchers", "not a permission"],
                "not a permission name",
            ),
            (&["role", "add", "watchers"], "already exists"),
        ] {
            fails(&db, args, None, says);
        }
        db
    })
    .await
    .unwrap();

    let settings = test_settings(&db);
    let app = TestApp::start(db, settings).await;
    let token = app.token("watcher", "watcher-password").await;
    let http = reqwest::Client::new();
    let r = bearer_get(&http, app.api("/async_status"), &token).await;
    assert_eq!(r.status(), StatusCode::OK, "watchers may read");
    let r = http
        .post(app.api("/async_status"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "but not create");

    let db_url = app.db.as_ref().unwrap().url_string();
    let revoked = actix_web::rt::task::spawn_blocking(move || {
        let mut cmd = command(None);
        cmd.env("ASYNCSTATUS__DATABASE__URL", db_url)
            .args(["role", "revoke", "watchers", "ASYNC-STATUS:READ"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(revoked.status.success());
    let r = app
        .login_with(&reqwest::Client::new(), "watcher", "watcher-password")
        .await;
    assert_eq!(r.status(), StatusCode::OK, "still logs in");
    // The role's new permissions hold for every session read from the database from now on
    // (a new one at once; older sessions once auth.user_cache_ttl passes).
    let fresh = crate::helpers::token_of(&r).unwrap();
    let r = bearer_get(&http, app.api("/async_status"), &fresh).await;
    crate::helpers::assert_alert(
        r,
        StatusCode::FORBIDDEN,
        "missing required Permissions: ASYNC-STATUS:READ",
    )
    .await;
}

/// Starts `serve` on port 0 with extra environment variables and returns its first stdout
/// lines (until the login hint).
fn serve_banner_with(
    db: &TestDatabase,
    env: &[(&str, &str)],
) -> (crate::helpers::Reaped, Vec<String>) {
    let mut child = command(Some(db))
        .arg("serve")
        .envs(env.iter().copied())
        .env("ASYNCSTATUS__SERVER__PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        let done = line.contains("/user/login");
        lines.push(line);
        if done {
            break;
        }
    }
    (crate::helpers::Reaped(child), lines)
}

/// [`serve_banner_with`] off the async runtime; the database is handed back with the process
/// (dropping it would drop the database under the server).
async fn serve_in_background(
    db: TestDatabase,
    env: &[(&'static str, &'static str)],
) -> (TestDatabase, crate::helpers::Reaped, Vec<String>) {
    let env = env.to_vec();
    actix_web::rt::task::spawn_blocking(move || {
        let (child, lines) = serve_banner_with(&db, &env);
        (db, child, lines)
    })
    .await
    .unwrap()
}

async fn serve_prints_the_url_and_the_first_admin_password_once(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let (db, mut child, first) = serve_in_background(db, &[]).await;
    let text = first.join("\n");
    let url = banner_url(&first);
    let password = first
        .iter()
        .find_map(|l| l.strip_prefix("Its password, shown only this once: "))
        .unwrap_or_else(|| panic!("no password in {text}"))
        .to_owned();
    assert!(password.len() >= 20, "a strong password: {password}");
    let r = login_at(&reqwest::Client::new(), &url, "admin", &password).await;
    assert_eq!(r.status(), StatusCode::OK, "{text}");
    child.kill().unwrap();
    child.wait().unwrap();

    let (_db, mut child, again) = serve_in_background(db, &[]).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let again = again.join("\n");
    assert!(!again.contains(&password), "shown once only: {again}");
    assert!(again.contains("existing user"), "{again}");
}

async fn bad_configuration_is_refused_naming_the_key(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    for (name, value, says) in [
        (
            "ASYNCSTATUS__DATABASE__POOL_SIZE",
            "0",
            "database.pool_size",
        ),
        (
            "ASYNCSTATUS__AUTH__SECRETS",
            "shorter-than-32",
            "auth.secrets",
        ),
        (
            "ASYNCSTATUS__BOOTSTRAP__ADMIN_PASSWORD",
            "seven77",
            "bootstrap.admin_password",
        ),
        (
            "ASYNCSTATUS__DATABASE__URL",
            "mysql://nowhere/db",
            "database.url",
        ),
    ] {
        let out = command(Some(&db))
            .env(name, value)
            .arg("migrate")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}={value} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{name}={value}: {stderr}");
    }
}

/// The API base URL a `serve` banner announces.
fn banner_url(lines: &[String]) -> String {
    lines
        .first()
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
        .unwrap_or_else(|| panic!("no URL in {lines:?}"))
        .trim_end_matches('/')
        .to_owned()
}

async fn a_job_of_a_killed_service_is_failed_as_abandoned_after_restart(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let password = [("ASYNCSTATUS__BOOTSTRAP__ADMIN_PASSWORD", "restart-password")];
    let (db, mut child, lines) = serve_in_background(db, &password).await;
    let url = banner_url(&lines);
    let client = crate::helpers::cookie_client();
    let r = login_at(&client, &url, "admin", "restart-password").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .post(format!("{url}/async_status"))
        .json(&serde_json::json!({"message": "working"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let created: serde_json::Value = r.json().await.unwrap();
    let id = created["response"]["id"].as_i64().unwrap();
    child.kill().unwrap(); // SIGKILL: no chance to clean up.
    child.wait().unwrap();

    let restart = [
        ("ASYNCSTATUS__BOOTSTRAP__ADMIN_PASSWORD", "restart-password"),
        ("ASYNCSTATUS__JOBS__STALE_AFTER", "1ms"),
    ];
    let (_db, mut child, lines) = serve_in_background(db, &restart).await;
    let url = banner_url(&lines);
    let client = crate::helpers::cookie_client();
    let r = login_at(&client, &url, "admin", "restart-password").await;
    assert_eq!(r.status(), StatusCode::OK);
    let job: serde_json::Value = get_json(&client, format!("{url}/async_status/{id}")).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(job["response"]["status"], "FAILED", "{job}");
    let message = job["response"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Abandoned: no update since "),
        "{message}"
    );
    assert!(
        message.contains(created["response"]["start_time"].as_str().unwrap()),
        "{message}"
    );
}

#[test]
fn config_prints_the_settings_in_effect_with_secrets_hidden() {
    let out = command(None)
        .env(
            "ASYNCSTATUS__DATABASE__URL",
            "postgres://app:Hunter2Secret@db.internal/jobs",
        )
        .env(
            "ASYNCSTATUS__AUTH__SECRETS",
            "AnAuthSecretThatMustNotShow0123456789",
        )
        .env("ASYNCSTATUS__JOBS__STALE_AFTER", "2m")
        .arg("config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("postgres://app:***@db.internal/jobs"),
        "{text}"
    );
    assert!(text.contains("stale_after: 120s"), "{text}");
    assert!(
        !text.contains("Hunter2Secret") && !text.contains("AnAuthSecret"),
        "{text}"
    );
    let out = command(None)
        .env("ASYNCSTATUS__SERVER__PORT", "http")
        .arg("config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.port"));
}

#[test]
fn help_explains_every_command() {
    let help = |args: &[&str]| {
        let out = command(None).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&["--help"]);
    for word in [
        "serve",
        "migrate",
        "healthcheck",
        "user",
        "role",
        "--config",
        "ASYNCSTATUS__",
    ] {
        assert!(top.contains(word), "--help lacks {word}:\n{top}");
    }
    let user = help(&["user", "--help"]);
    for word in ["add", "remove", "set-role", "list"] {
        assert!(user.contains(word), "user --help lacks {word}:\n{user}");
    }
    let add = help(&["user", "add", "--help"]);
    assert!(
        add.contains("--password-stdin") && add.contains("--role"),
        "{add}"
    );
    let probe = help(&["healthcheck", "--help"]);
    assert!(
        probe.contains("/healthz") && probe.contains("--timeout"),
        "{probe}"
    );
    let role = help(&["role", "--help"]);
    for word in ["add", "grant", "revoke", "list"] {
        assert!(role.contains(word), "role --help lacks {word}:\n{role}");
    }
}

/// `healthcheck` against `port` with `env`: (exit code, stdout, stderr).
fn probe(port: u16, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let out = command(None)
        .arg("healthcheck")
        .args(args)
        .env("ASYNCSTATUS__SERVER__PORT", port.to_string())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `healthcheck` GETs /healthz where the configuration says the service listens (over HTTP,
/// through the any-address host, over HTTPS with the service's own certificate) and exits 0;
/// it exits 1 when nothing listens, the answer is not 2xx, or none comes within --timeout.
#[actix_web::test]
async fn healthcheck_probes_the_configured_address_and_exits_0_or_1() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let (dir, cert, key) = crate::ops::self_signed();
    let (c, k) = (cert.clone(), key.clone());
    let tls = TestApp::spawn_with(Backend::Sqlite, move |s| {
        s.server.tls_cert = Some(c);
        s.server.tls_key = Some(k);
    })
    .await
    .unwrap();
    let (port, tls_port) = (app.port, tls.port);
    actix_web::rt::task::spawn_blocking(move || {
        let (code, stdout, stderr) = probe(port, &[], &[]);
        assert_eq!(code, Some(0), "{stderr}");
        let url = format!("GET http://127.0.0.1:{port}/healthz: 200 OK");
        assert!(stdout.contains(&url), "{stdout}");
        let (code, stdout, stderr) = probe(port, &[("ASYNCSTATUS__SERVER__HOST", "0.0.0.0")], &[]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stdout.contains(&url),
            "0.0.0.0 is probed on 127.0.0.1: {stdout}"
        );

        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let with_tls = [
            ("ASYNCSTATUS__SERVER__TLS_CERT", cert),
            ("ASYNCSTATUS__SERVER__TLS_KEY", key),
        ];
        let (code, stdout, stderr) = probe(tls_port, &with_tls, &[]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stdout.contains(&format!("GET https://127.0.0.1:{tls_port}/healthz: 200 OK")),
            "{stdout}"
        );
        let (code, _, _) = probe(tls_port, &[], &[]);
        assert_eq!(code, Some(1), "plain HTTP to the TLS port fails");

        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        let (code, _, stderr) = probe(free_port, &[], &[]);
        assert_eq!(code, Some(1), "nothing listens");
        assert!(
            stderr.contains(&format!("GET http://127.0.0.1:{free_port}/healthz")),
            "{stderr}"
        );

        // A listener that answers 503 once, then one that never answers.
        let failing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let failing_port = failing.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut conn, _) = failing.accept().unwrap();
            let mut request = [0; 1024];
            let _ = std::io::Read::read(&mut conn, &mut request);
            let _ =
                conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        });
        let (code, _, stderr) = probe(failing_port, &[], &[]);
        assert_eq!(code, Some(1), "503 is unhealthy");
        assert!(stderr.contains("answered 503"), "{stderr}");

        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_port = silent.local_addr().unwrap().port();
        let started = std::time::Instant::now();
        let (code, _, stderr) = probe(silent_port, &[], &["--timeout", "300ms"]);
        assert_eq!(code, Some(1), "no answer in time");
        assert!(stderr.contains("timeout 300ms"), "{stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        drop(silent);
    })
    .await
    .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

crate::both_backends!(
    users_and_roles_are_managed_from_the_command_line,
    serve_prints_the_url_and_the_first_admin_password_once,
    bad_configuration_is_refused_naming_the_key,
    a_job_of_a_killed_service_is_failed_as_abandoned_after_restart,
);

/// Processes migrating one new SQLite file at the same moment (replicas' start-ups, or
/// `migrate` beside a starting service) all succeed and leave it migrated once. The test holds
/// the file's write lock until all eight have opened it, so they start migrating together.
#[test]
fn processes_migrating_one_sqlite_file_at_once_all_end_migrated() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    for round in 0..5 {
        let db = TestDatabase::sqlite();
        let asyncstatus_persistence::DatabaseUrl::Sqlite(path) = db.url().clone() else {
            unreachable!("an SQLite test database")
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut gate = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        gate.batch_execute("PRAGMA journal_mode = WAL; BEGIN IMMEDIATE")
            .unwrap();
        let spawn = || {
            command(Some(&db))
                .arg("migrate")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let children: Vec<_> = (0..8).map(|_| spawn()).collect();
        let has_opened = |pid: u32| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !children.iter().all(|c| has_opened(c.id())) {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: the processes never opened the file"
            );
            std::thread::yield_now();
        }
        gate.batch_execute("COMMIT").unwrap();
        drop(gate);
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let store = asyncstatus_persistence::Store::open(
            db.url(),
            &asyncstatus_persistence::PoolOptions {
                size: 1,
                checkout_timeout: Duration::from_secs(5),
            },
        )
        .unwrap();
        assert_eq!(store.pending_migrations().unwrap(), Vec::<String>::new());
        assert_eq!(store.count_users().unwrap(), 0, "migrate adds no user");
    }
}
