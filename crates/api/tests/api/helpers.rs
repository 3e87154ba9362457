//! The test application: spawn, log in, add users, and assertions on Traffic Ops envelopes.

use std::time::Duration;

use asyncstatus_api::settings::{Secret, Settings};
use asyncstatus_api::startup::Application;
use asyncstatus_auth::password::hash_password;
use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::{now_micros, Backend, Store};
use reqwest::{Response, StatusCode};
use serde_json::Value;

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// Instantiates each listed `async fn name(backend: Backend)` as `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name(asyncstatus_persistence::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name(asyncstatus_persistence::Backend::Postgres).await
                }
            )*
        }
    };
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub port: u16,
    /// Keeps cookies, like a browser or the Python client.
    pub client: reqwest::Client,
    pub store: Store,
    pub state: actix_web::web::Data<asyncstatus_api::state::AppState>,
    /// The settings it runs with (a replica starts from them).
    pub settings: Settings,
    // Dropped last: the database outlives the server using it. Replicas share their
    // primary's and hold none.
    pub db: Option<TestDatabase>,
}

/// The settings every test starts from: built-in defaults, port 0, the test database.
pub fn test_settings(db: &TestDatabase) -> Settings {
    settings_for_url(&db.url_string())
}

/// [`test_settings`] for a database URL.
pub fn settings_for_url(url: &str) -> Settings {
    let mut s = Settings::defaults().expect("built-in settings");
    s.server.port = 0;
    s.database.url = asyncstatus_persistence::DatabaseUrl::parse(url).expect("a database URL");
    s.database.pool_size = 4;
    s.auth.secrets = vec![Secret::from(SECRET)];
    s.bootstrap.admin_password = Some(Secret::from(ADMIN_PASSWORD));
    s
}

pub fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A client whose connections come from `addr` (127.0.0.0/8 is all loopback on Linux).
pub fn client_from(addr: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(addr))
        .build()
        .unwrap()
}

/// Settings that block a (username, address) after `per_user` failed logins and an address
/// after `per_address`.
pub fn throttle(per_user: u32, per_address: u32) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.auth.login_max_failures = per_user;
        s.auth.login_max_failures_per_address = per_address;
    }
}

/// The seconds a response's `Retry-After` names.
pub fn retry_after(r: &Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Logs `client` in as `user` at the API base `base` (`…/api/4.0`); the answer.
pub async fn login_at(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> Response {
    client
        .post(format!("{base}/user/login"))
        .json(&serde_json::json!({"u": user, "p": password}))
        .send()
        .await
        .unwrap()
}

/// GETs `url` with `client`, authenticated by the Bearer `token`.
pub async fn bearer_get(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    token: &str,
) -> Response {
    client.get(url).bearer_auth(token).send().await.unwrap()
}

/// GETs `url` with `client` and one extra header.
pub async fn get_with_header(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    name: &str,
    value: &str,
) -> Response {
    client.get(url).header(name, value).send().await.unwrap()
}

/// Waits (bounded) until `app` has `n` long-poll waiters parked.
pub async fn parked(app: &TestApp, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.state.waiters.len() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{n} waiters never parked"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// GETs `url` with `client`; the JSON body of the answer.
pub async fn get_json(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

impl TestApp {
    /// The application on a fresh database of `backend`; `None` when PostgreSQL tests are
    /// skipped (no cluster configured and not required).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, |_| {}).await
    }

    /// As [`spawn`], with settings adjusted by `configure`.
    pub async fn spawn_with(
        backend: Backend,
        configure: impl FnOnce(&mut Settings),
    ) -> Option<TestApp> {
        let db = TestDatabase::new(backend)?;
        let mut settings = test_settings(&db);
        configure(&mut settings);
        Some(TestApp::start(db, settings).await)
    }

    /// [`spawn`] with the app's client logged in as the admin and a job with `message` made;
    /// the job's id with it.
    pub async fn spawn_with_job(backend: Backend, message: &str) -> Option<(TestApp, i64)> {
        let app = TestApp::spawn(backend).await?;
        app.login_admin().await;
        let id = app.create_job(message).await;
        Some((app, id))
    }

    /// Starts the application on `db` with `settings`.
    pub async fn start(db: TestDatabase, settings: Settings) -> TestApp {
        TestApp::start_on(Some(db), settings).await
    }

    /// Another replica of the service on the same database, with its own settings tweaks.
    pub async fn replica(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings.clone();
        configure(&mut settings);
        TestApp::start_on(None, settings).await
    }

    /// Starts the application with `settings`, owning `db` if given.
    pub async fn start_on(db: Option<TestDatabase>, settings: Settings) -> TestApp {
        let app = Application::build(settings.clone())
            .await
            .expect("application builds");
        let port = app.port();
        let state = app.state();
        let store = state.db.store().clone();
        actix_web::rt::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client: cookie_client(),
            store,
            state,
            settings,
            db,
        }
    }

    /// `http://127.0.0.1:PORT/api/4.0{path}`
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/4.0{path}", self.address)
    }

    /// `http://127.0.0.1:PORT/api/4.0/async_status/{id}`
    pub fn job_url(&self, id: impl std::fmt::Display) -> String {
        self.api(&format!("/async_status/{id}"))
    }

    /// Logs `client` in; returns the response.
    pub async fn login_with(
        &self,
        client: &reqwest::Client,
        user: &str,
        password: &str,
    ) -> Response {
        client
            .post(self.api("/user/login"))
            .json(&serde_json::json!({"u": user, "p": password}))
            .send()
            .await
            .unwrap()
    }

    /// GETs `url` with the app's own client (and its cookies).
    pub async fn get(&self, url: impl reqwest::IntoUrl) -> Response {
        self.client.get(url).send().await.unwrap()
    }

    /// POSTs nothing to `url` with the app's own client.
    pub async fn post(&self, url: impl reqwest::IntoUrl) -> Response {
        self.client.post(url).send().await.unwrap()
    }

    /// POSTs `body` to `url` with the app's own client.
    pub async fn post_json(&self, url: impl reqwest::IntoUrl, body: &Value) -> Response {
        self.client.post(url).json(body).send().await.unwrap()
    }

    /// POSTs the raw `body` to `url` with the app's own client.
    pub async fn post_body(
        &self,
        url: impl reqwest::IntoUrl,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client.post(url).body(body).send().await.unwrap()
    }

    /// PUTs `body` to `url` with the app's own client.
    pub async fn put_json(&self, url: impl reqwest::IntoUrl, body: &Value) -> Response {
        self.client.put(url).json(body).send().await.unwrap()
    }

    /// PUTs `body` to the job `id` with the app's own client.
    pub async fn put_job(&self, id: impl std::fmt::Display, body: Value) -> Response {
        self.put_json(self.job_url(id), &body).await
    }

    /// `n` logins of `user` with the wrong `password` from `client`, each asserted 401.
    pub async fn fail_logins(&self, client: &reqwest::Client, user: &str, password: &str, n: u32) {
        for _ in 0..n {
            let r = self.login_with(client, user, password).await;
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{user} with {password:?}"
            );
        }
    }

    /// Logs the app's own client in as the admin.
    pub async fn login_admin(&self) {
        let r = self.login_with(&self.client, ADMIN, ADMIN_PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK, "admin login");
    }

    /// A bearer token for `user`.
    pub async fn token(&self, user: &str, password: &str) -> String {
        let r = self
            .login_with(&reqwest::Client::new(), user, password)
            .await;
        assert_eq!(r.status(), StatusCode::OK, "login of {user}");
        token_of(&r).expect("access_token cookie")
    }

    /// Adds a user with a role through the store (as the CLI does).
    pub async fn add_user(&self, name: &str, password: &str, role: &str) {
        let store = self.store.clone();
        let (name, password, role) = (name.to_owned(), password.to_owned(), role.to_owned());
        actix_web::rt::task::spawn_blocking(move || {
            store.add_user(&name, &hash_password(&password), &role, now_micros())
        })
        .await
        .unwrap()
        .unwrap();
    }

    /// Runs blocking store work (setup and inspection).
    pub async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> T {
        let store = self.store.clone();
        actix_web::rt::task::spawn_blocking(move || work(&store))
            .await
            .unwrap()
    }

    /// Takes one connection out of the app's pool until the guard drops (to exhaust it).
    pub async fn hold_connection(&self) -> Box<dyn std::any::Any + Send> {
        self.with_store(|s| s.hold_connection()).await.unwrap()
    }

    /// Creates a job over HTTP as the (logged in) client; returns its id.
    pub async fn create_job(&self, message: &str) -> i64 {
        let r = self
            .client
            .post(self.api("/async_status"))
            .json(&serde_json::json!({ "message": message }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let body: Value = r.json().await.unwrap();
        body["response"]["id"].as_i64().unwrap()
    }
}

/// The `access_token` cookie a response sets.
pub fn token_of(r: &Response) -> Option<String> {
    r.cookies()
        .find(|c| c.name() == "access_token")
        .map(|c| c.value().to_owned())
}

/// Asserts an error answer: status and `{"alerts":[{"text":TEXT,"level":"error"}]}` exactly.
pub async fn assert_alert(r: Response, status: StatusCode, text: &str) {
    assert_eq!(r.status(), status, "status for {}", r.url());
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body: Value = r.json().await.expect("a JSON body");
    assert_eq!(
        body,
        serde_json::json!({"alerts": [{"level": "error", "text": text}]}),
        "body"
    );
}

/// Asserts an error answer whose text contains `part`.
pub async fn assert_alert_contains(r: Response, status: StatusCode, part: &str) {
    assert_eq!(r.status(), status, "status for {}", r.url());
    let body: Value = r.json().await.expect("a JSON body");
    assert_eq!(body["alerts"][0]["level"], "error", "{body}");
    let text = body["alerts"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(part),
        "alert {text:?} should contain {part:?}"
    );
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only alerts: {body}"
    );
}

/// A child process that is killed and reaped when dropped, so a failing test leaves no
/// service running behind it.
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Logs `client` in as the admin at `api` (`…/api/4.0`) and creates a job with `message`
/// (authenticated by the cookie when `client` keeps them, else by the returned token); the
/// token and the job's id.
pub async fn admin_login_and_job(
    client: &reqwest::Client,
    api: &str,
    message: &str,
) -> (String, i64) {
    let r = login_at(client, api, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK, "admin login");
    let token = token_of(&r).expect("access_token cookie");
    let r = client
        .post(format!("{api}/async_status"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "message": message }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "job created");
    let body: Value = r.json().await.unwrap();
    (token, body["response"]["id"].as_i64().unwrap())
}
