//! Issue #10, the login and browser items: cross-site requests with a session cookie (4), the
//! bounded login username (10), throttling that stops attackers and not colleagues (12), the
//! client address behind trusted proxies (13), and the cache and sniffing headers (15).

use asyncstatus_persistence::Backend;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_alert, bearer_get, client_from, cookie_client, get_with_header, retry_after, throttle,
    token_of, TestApp, ADMIN, ADMIN_PASSWORD,
};

const EVIL: &str = "https://evil.example";
const PORTAL: &str = "https://portal.example";

/// CORS settings that allow [`PORTAL`].
fn allowing_portal(s: &mut asyncstatus_api::settings::Settings) {
    s.cors.allowed_origins = vec![PORTAL.into()];
}

/// A cookie client of `app`, logged in as the admin.
async fn logged_in(app: &TestApp) -> reqwest::Client {
    let client = cookie_client();
    let r = app.login_with(&client, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK, "admin login");
    client
}

async fn job_count(app: &TestApp) -> i64 {
    let token = app.token(ADMIN, ADMIN_PASSWORD).await;
    let r = bearer_get(&reqwest::Client::new(), app.api("/async_status"), &token).await;
    let body: Value = r.json().await.unwrap();
    body["summary"]["count"].as_i64().unwrap()
}

/// `text/plain` POST, the kind a page on another site can send without a preflight.
async fn post_job(client: &reqwest::Client, app: &TestApp, headers: &[(&str, &str)]) -> Response {
    let mut request = client
        .post(app.api("/async_status"))
        .header("content-type", "text/plain")
        .body(r#"{"message":"from a page"}"#);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn assert_refused(r: Response, part: &str) {
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{}", r.url());
    let body: Value = r.json().await.unwrap();
    let text = body["alerts"][0]["text"].as_str().unwrap_or_default();
    assert_eq!(body["alerts"][0]["level"], "error", "{body}");
    assert!(
        text.starts_with("cross-site request refused: ") && text.contains(part),
        "{text:?} should name {part:?}"
    );
}

async fn cookie_writes_from_another_site_are_403(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let client = logged_in(&app).await;
    let id = {
        let r = post_job(&client, &app, &[]).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "no header: curl, scripts");
        let body: Value = r.json().await.unwrap();
        body["response"]["id"].as_i64().unwrap()
    };
    assert_refused(post_job(&client, &app, &[("origin", EVIL)]).await, EVIL).await;
    assert_refused(
        post_job(&client, &app, &[("origin", "null")]).await,
        "Origin null",
    )
    .await;
    for site in ["cross-site", "same-site"] {
        assert_refused(
            post_job(&client, &app, &[("sec-fetch-site", site)]).await,
            site,
        )
        .await;
    }
    let job = app.job_url(id);
    let r = client
        .put(&job)
        .header("sec-fetch-site", "cross-site")
        .body(r#"{"status":"FAILED"}"#)
        .send()
        .await
        .unwrap();
    assert_refused(r, "cross-site").await;
    let r = client
        .delete(&job)
        .header("origin", EVIL)
        .send()
        .await
        .unwrap();
    assert_refused(r, EVIL).await;
    let r = client
        .post(app.api("/user/logout"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_refused(r, "cross-site").await;
    assert_eq!(job_count(&app).await, 1, "nothing was created");
    let r = client.get(&job).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "not deleted, session not ended");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["status"], "PENDING", "not updated");
}

async fn same_origin_and_allowed_origins_pass_with_a_cookie(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, allowing_portal).await else {
        return;
    };
    let client = logged_in(&app).await;
    let own = app.address.clone();
    let localhost = format!("http://localhost:{}", app.port);
    for headers in [
        vec![("sec-fetch-site", "same-origin")],
        vec![("sec-fetch-site", "none")],
        vec![("origin", own.as_str())],
        vec![("origin", own.as_str()), ("sec-fetch-site", "same-origin")],
        vec![("origin", PORTAL)],
    ] {
        let r = post_job(&client, &app, &headers).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{headers:?}");
    }
    // The own origin is the one the request reached us by: Host names another here.
    let r = post_job(&client, &app, &[("origin", localhost.as_str())]).await;
    assert_refused(r, &localhost).await;
    // What a browser on the listed origin really sends with a write: refused, since the page
    // is another site's (it may read with the cookie, and write with a Bearer token).
    let r = post_job(
        &client,
        &app,
        &[("origin", PORTAL), ("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// Behind a TLS-terminating proxy (`auth.cookie_secure`, no trusted proxies configured) the
/// browser's `Origin` is `https://` and the service's own origin is taken as https too.
async fn behind_a_tls_proxy_the_own_origin_is_https(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.auth.cookie_secure = true).await else {
        return;
    };
    let token = app.token(ADMIN, ADMIN_PASSWORD).await;
    let cookie = format!("access_token={token}");
    let https = format!("https://127.0.0.1:{}", app.port);
    let http = app.address.clone();
    let client = reqwest::Client::new();
    let r = post_job(
        &client,
        &app,
        &[
            ("cookie", cookie.as_str()),
            ("origin", https.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = post_job(
        &client,
        &app,
        &[("cookie", cookie.as_str()), ("origin", http.as_str())],
    )
    .await;
    assert_refused(r, &http).await;
}

async fn bearer_requests_ignore_the_cross_site_rule(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ADMIN, ADMIN_PASSWORD).await;
    let r = reqwest::Client::new()
        .post(app.api("/async_status"))
        .bearer_auth(token)
        .header("origin", EVIL)
        .header("sec-fetch-site", "cross-site")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

async fn logins_from_another_site_are_403(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let login = |headers: Vec<(&'static str, String)>| {
        let url = app.api("/user/login");
        async move {
            let mut request = reqwest::Client::new()
                .post(url)
                .header("content-type", "text/plain")
                .body(json!({"u": ADMIN, "p": ADMIN_PASSWORD}).to_string());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request.send().await.unwrap()
        }
    };
    for headers in [
        vec![("origin", EVIL.to_owned())],
        vec![("sec-fetch-site", "cross-site".to_owned())],
        vec![("sec-fetch-site", "same-site".to_owned())],
    ] {
        let r = login(headers.clone()).await;
        assert!(token_of(&r).is_none(), "{headers:?} set no cookie");
        assert_refused(r, "").await;
    }
    for headers in [
        vec![],
        vec![("sec-fetch-site", "same-origin".to_owned())],
        vec![("origin", app.address.clone())],
    ] {
        let r = login(headers.clone()).await;
        assert_eq!(r.status(), StatusCode::OK, "{headers:?}");
    }
}

/// Three logins from fresh clients with each of `names`, every one refused with `status` and
/// `text`.
async fn refused_logins(app: &TestApp, names: &[&str], status: StatusCode, text: &str) {
    for name in names {
        for _ in 0..3 {
            let r = app.login_with(&cookie_client(), name, "guess").await;
            assert_alert(r, status, text).await;
        }
    }
}

/// The status of an admin login from a fresh client.
async fn admin_login(app: &TestApp) -> StatusCode {
    app.login_with(&cookie_client(), ADMIN, ADMIN_PASSWORD)
        .await
        .status()
}

const USERNAME_RULE: &str = "username must be 1 to 128 characters with no control characters";

async fn bad_login_usernames_are_400_before_the_throttle(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, throttle(2, 2)).await else {
        return;
    };
    let long = "u".repeat(129);
    let names = [long.as_str(), "ad\nmin", "a\u{0}", "\u{7f}"];
    refused_logins(&app, &names, StatusCode::BAD_REQUEST, USERNAME_RULE).await;
    let r = app.login_with(&cookie_client(), "Jane Doe", "guess").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a Traffic Ops name with a space is a username"
    );
    assert_eq!(
        admin_login(&app).await,
        StatusCode::OK,
        "the refused names counted nothing"
    );
}

/// A login body is read up to 16 KiB only (a 128-character username and any sane password
/// fit many times over): one who has not logged in cannot make each connection hold
/// `server.max_body_bytes`, and a 1 MB username never reaches the parser.
async fn a_login_body_past_16_kib_is_413_before_it_is_parsed(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, throttle(2, 2)).await else {
        return;
    };
    let huge = "u".repeat(1_000_000);
    let just_over = "u".repeat(16 * 1024);
    let too_large = "request body is larger than the limit of 16384 bytes";
    let names = [huge.as_str(), just_over.as_str()];
    refused_logins(&app, &names, StatusCode::PAYLOAD_TOO_LARGE, too_large).await;
    assert_eq!(
        admin_login(&app).await,
        StatusCode::OK,
        "the refused bodies counted nothing"
    );
}

async fn login_from(
    app: &TestApp,
    client: &reqwest::Client,
    user: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> Response {
    let mut request = client
        .post(app.api("/user/login"))
        .json(&json!({"u": user, "p": password}));
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    request.send().await.unwrap()
}

/// Three failed logins from `client`, of the users u0, u1 and u2, the i-th forwarded for
/// `forwarded_for(i)`.
async fn fail_forwarded(
    app: &TestApp,
    client: &reqwest::Client,
    forwarded_for: impl Fn(u32) -> String,
) {
    for i in 0..3 {
        let r = login_from(app, client, &format!("u{i}"), "x", Some(&forwarded_for(i))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

async fn a_colleague_logs_in_where_another_user_failed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("ops", "ops-password", "operations").await;
    let office = client_from([127, 0, 0, 2]);
    app.fail_logins(&office, "ops", "wrong", 10).await;
    let r = app.login_with(&office, "ops", "ops-password").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "(ops, office)");
    assert_eq!(retry_after(&r), 1, "the first block is 1 s");
    let r = app.login_with(&office, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a colleague at the same address"
    );
    let r = app
        .login_with(&client_from([127, 0, 0, 3]), "ops", "ops-password")
        .await;
    assert_eq!(r.status(), StatusCode::OK, "ops from elsewhere");
}

async fn the_login_delay_grows_with_each_failure(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.auth.login_max_failures = 1).await else {
        return;
    };
    let client = client_from([127, 0, 0, 4]);
    let r = app.login_with(&client, ADMIN, "wrong").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.login_with(&client, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&r), 1);
    // Waiting the 1 s the answer named ends the block; the next failure doubles it.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1_050)).await;
    let r = app.login_with(&client, ADMIN, "wrong").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the block ended");
    let r = app.login_with(&client, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&r), 2);
}

async fn an_address_spraying_usernames_is_blocked_at_its_own_limit(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, throttle(3, 5)).await else {
        return;
    };
    let sprayer = client_from([127, 0, 0, 5]);
    for i in 0..5 {
        let r = app
            .login_with(&sprayer, &format!("user{i}"), "Summer2026")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = app.login_with(&sprayer, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the address");
    assert_eq!(retry_after(&r), 1);
    let r = app
        .login_with(&client_from([127, 0, 0, 6]), ADMIN, ADMIN_PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::OK, "another address");
}

async fn forged_forwarded_for_from_an_untrusted_peer_is_ignored(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, throttle(3, 3)).await else {
        return;
    };
    let attacker = client_from([127, 0, 0, 7]);
    fail_forwarded(&app, &attacker, |i| format!("203.0.113.{i}")).await;
    let r = login_from(&app, &attacker, ADMIN, ADMIN_PASSWORD, Some("203.0.113.99")).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "counted under the peer, 127.0.0.7"
    );
}

async fn a_trusted_proxy_names_the_client_by_the_nearest_untrusted_hop(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        throttle(3, 3)(s);
    })
    .await
    else {
        return;
    };
    let proxy = client_from([127, 0, 0, 1]);
    // The client may put anything on the left; the proxy appended what it saw.
    fail_forwarded(&app, &proxy, |i| format!("198.51.100.{i}, 203.0.113.9")).await;
    let blocked = login_from(
        &app,
        &proxy,
        ADMIN,
        ADMIN_PASSWORD,
        Some("198.51.100.77, 203.0.113.9, 127.0.0.1"),
    )
    .await;
    assert_eq!(
        blocked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "203.0.113.9"
    );
    for (client, chain) in [
        (&proxy, Some("203.0.113.10")),
        (&proxy, None),
        (&client_from([127, 0, 0, 8]), Some("203.0.113.9")),
    ] {
        let r = login_from(&app, client, ADMIN, ADMIN_PASSWORD, chain).await;
        assert_eq!(r.status(), StatusCode::OK, "{chain:?}");
    }
}

async fn ipv6_clients_are_throttled_by_their_64(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.auth.login_max_failures = 2;
    })
    .await
    else {
        return;
    };
    let proxy = client_from([127, 0, 0, 1]);
    for host in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::2"] {
        let r = login_from(&app, &proxy, ADMIN, "wrong", Some(host)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_from(
        &app,
        &proxy,
        ADMIN,
        ADMIN_PASSWORD,
        Some("2001:db8:1:2::99"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the same /64");
    let r = login_from(&app, &proxy, ADMIN, ADMIN_PASSWORD, Some("2001:db8:1:3::1")).await;
    assert_eq!(r.status(), StatusCode::OK, "another /64");
}

async fn answers_are_not_sniffed_and_authenticated_ones_not_shared(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let plain = reqwest::Client::new();
    for url in [
        app.api("/ping"),
        format!("{}/healthz", app.address),
        app.api("/async_status"),
    ] {
        let r = plain.get(&url).send().await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{url}");
        assert!(
            !r.headers().contains_key("cache-control"),
            "{url}: unauthenticated"
        );
    }
    let r = app
        .login_with(&cookie_client(), ADMIN, ADMIN_PASSWORD)
        .await;
    assert_eq!(r.headers()["cache-control"], "private, no-cache", "login");
    app.login_admin().await;
    let id = app.create_job("private").await;
    let job = app.job_url(id);
    let r = app.get(&job).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "private, no-cache");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let etag = r.headers()["etag"].clone();
    let r = get_with_header(&app.client, &job, "if-none-match", etag.to_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "304 keeps working");
    assert_eq!(r.headers()["cache-control"], "private, no-cache");
    let r = app.get(app.api("/async_status")).await;
    assert_eq!(r.headers()["cache-control"], "private, no-cache", "a list");
}

fn varies_on_origin(r: &Response) -> usize {
    r.headers()
        .get_all("vary")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .filter(|v| v.trim().eq_ignore_ascii_case("origin"))
        .count()
}

async fn every_answer_varies_on_origin_when_cors_is_configured(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, allowing_portal).await else {
        return;
    };
    let client = reqwest::Client::new();
    for origin in [None, Some(EVIL), Some(PORTAL)] {
        for url in [app.api("/ping"), app.api("/async_status")] {
            let mut request = client.get(&url).header("accept-encoding", "gzip");
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            let r = request.send().await.unwrap();
            assert_eq!(varies_on_origin(&r), 1, "{url} from {origin:?}");
        }
    }
    let Some(plain) = TestApp::spawn(backend).await else {
        return;
    };
    let r = client.get(plain.api("/ping")).send().await.unwrap();
    assert_eq!(varies_on_origin(&r), 0, "no CORS, no Vary: Origin");
}

/// The access log line of the request with id `id`, from a served process's log.
fn access_line(served: &crate::ops::Served, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = served
            .log
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no access line for {id}: {e}"));
        if let Ok(entry) = serde_json::from_str::<Value>(&line) {
            if entry["target"] == "access" && entry["request_id"] == id {
                return entry;
            }
        }
    }
}

async fn the_access_log_names_the_client_behind_a_trusted_proxy(backend: Backend) {
    let Some(db) = asyncstatus_persistence::testing::TestDatabase::new(backend) else {
        return;
    };
    let url = db.url_string();
    let env = [
        ("ASYNCSTATUS__LOG__FORMAT", "json"),
        (
            "ASYNCSTATUS__SERVER__TRUSTED_PROXIES",
            "10.0.0.0/8, 127.0.0.1",
        ),
    ];
    let served = actix_web::rt::task::spawn_blocking(move || crate::ops::serve(&url, &env))
        .await
        .unwrap();
    let ping = format!("{}/ping", served.base.replace("localhost", "127.0.0.1"));
    for (from, id) in [([127, 0, 0, 1], "via-proxy"), ([127, 0, 0, 9], "direct")] {
        let r = client_from(from)
            .get(&ping)
            .header("x-forwarded-for", "198.51.100.1, 203.0.113.5")
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let served = actix_web::rt::task::spawn_blocking(move || {
        let proxied = access_line(&served, "via-proxy");
        let direct = access_line(&served, "direct");
        drop(served);
        (proxied, direct)
    })
    .await
    .unwrap();
    assert_eq!(
        served.0["client"], "203.0.113.5",
        "the nearest untrusted hop"
    );
    assert_eq!(
        served.1["client"], "127.0.0.9",
        "an untrusted peer's own address"
    );
    drop(db);
}

crate::both_backends!(
    the_access_log_names_the_client_behind_a_trusted_proxy,
    cookie_writes_from_another_site_are_403,
    same_origin_and_allowed_origins_pass_with_a_cookie,
    behind_a_tls_proxy_the_own_origin_is_https,
    bearer_requests_ignore_the_cross_site_rule,
    logins_from_another_site_are_403,
    bad_login_usernames_are_400_before_the_throttle,
    a_login_body_past_16_kib_is_413_before_it_is_parsed,
    a_colleague_logs_in_where_another_user_failed,
    the_login_delay_grows_with_each_failure,
    an_address_spraying_usernames_is_blocked_at_its_own_limit,
    forged_forwarded_for_from_an_untrusted_peer_is_ignored,
    a_trusted_proxy_names_the_client_by_the_nearest_untrusted_hop,
    ipv6_clients_are_throttled_by_their_64,
    answers_are_not_sniffed_and_authenticated_ones_not_shared,
    every_answer_varies_on_origin_when_cors_is_configured,
);
