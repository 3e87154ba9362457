//! Login, logout, tokens (cookie and Bearer), sliding sessions, permissions.

use asyncstatus_persistence::{now_micros, Backend};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_alert, bearer_get, client_from, cookie_client, get_with_header, retry_after, throttle,
    token_of, TestApp, ADMIN, ADMIN_PASSWORD, SECRET,
};

const UNAUTHORIZED: &str = "unauthorized, please log in.";
const BAD_LOGIN: &str = "Invalid username or password.";

/// The bootstrap admin's user id (the first user of a fresh database).
const ADMIN_ID: i64 = 1;

/// A token signed with `secret` and `alg`, issued `age` seconds ago, living `ttl` seconds,
/// the first of its session, for the user `user` of id [`ADMIN_ID`].
fn craft(secret: &str, alg: Algorithm, user: &str, age: i64, ttl: i64) -> String {
    let iat = chrono::Utc::now().timestamp() - age;
    jsonwebtoken::encode(
        &Header::new(alg),
        &json!({
            "sub": user, "uid": ADMIN_ID, "sid": format!("session{iat}{age}"), "sst": iat,
            "iat": iat, "exp": iat + ttl, "jti": format!("crafted{iat}{age}")
        }),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn get_with_bearer(app: &TestApp, token: &str) -> reqwest::Response {
    bearer_get(&reqwest::Client::new(), app.api("/user/current"), token).await
}

/// GETs `/user/current` from a fresh client with the header `name: value`.
async fn current_with(app: &TestApp, name: &str, value: &str) -> reqwest::Response {
    get_with_header(
        &reqwest::Client::new(),
        app.api("/user/current"),
        name,
        value,
    )
    .await
}

async fn login_sets_an_http_only_session_cookie(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let r = app.login_with(&app.client, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in [
        "access_token=",
        "Path=/",
        "Max-Age=21600",
        "Expires=",
        "HttpOnly",
        "SameSite=Lax",
    ] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure on plain HTTP by default: {cookie}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"alerts": [{"level": "success", "text": "Successfully logged in."}]})
    );
    let r = app.get(app.api("/user/current")).await;
    assert_eq!(r.status(), StatusCode::OK, "the cookie authenticates");
}

async fn the_cookie_is_secure_when_configured(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.auth.cookie_secure = true).await else {
        return;
    };
    let r = app
        .login_with(&reqwest::Client::new(), ADMIN, ADMIN_PASSWORD)
        .await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure"), "{cookie}");
}

async fn login_bodies_that_are_not_json_are_400(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for body in ["u=admin&p=x", "{", "", "[1,2]", "\"admin\""] {
        let r = app.post_body(app.api("/user/login"), body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body:?}");
        let alert: Value = r.json().await.unwrap();
        let text = alert["alerts"][0]["text"].as_str().unwrap();
        assert!(text.contains("request body"), "{body:?}: {text}");
    }
}

async fn login_needs_a_username_and_a_password(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for body in [
        json!({}),
        json!({"u": "admin"}),
        json!({"p": "x"}),
        json!({"u": "", "p": "x"}),
        json!({"u": "admin", "p": ""}),
        json!({"u": null, "p": null}),
    ] {
        let r = app.post_json(app.api("/user/login"), &body).await;
        assert_alert(
            r,
            StatusCode::BAD_REQUEST,
            "username and password are required",
        )
        .await;
    }
    let r = app
        .post_json(app.api("/user/login"), &json!({"u": 5, "p": "x"}))
        .await;
    assert_alert(r, StatusCode::BAD_REQUEST, "'u' must be a string").await;
}

async fn bad_credentials_get_one_answer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("shut-out", "right-password", "disallowed")
        .await;
    for (user, password) in [
        ("nobody", "whatever-password"),
        (ADMIN, "wrong-password"),
        ("shut-out", "right-password"),
    ] {
        let r = app
            .login_with(&reqwest::Client::new(), user, password)
            .await;
        assert!(r.headers().get("set-cookie").is_none());
        assert_alert(r, StatusCode::UNAUTHORIZED, BAD_LOGIN).await;
    }
}

/// No user enumeration by timing: an unknown user, a wrong password and a disallowed user all
/// cost one password derivation, so their failures take alike (a skipped derivation would be
/// ~50 times faster).
async fn failed_logins_take_alike_whatever_the_reason(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.auth.login_max_failures = 0).await else {
        return;
    };
    app.add_user("shut-out", "right-password", "disallowed")
        .await;
    // Round-robin, so that load from other tests weighs on the three alike.
    let cases = [
        ("nobody", "whatever"),
        (ADMIN, "wrong-password"),
        ("shut-out", "right-password"),
    ];
    let mut took: Vec<Vec<std::time::Duration>> = vec![Vec::new(); cases.len()];
    for _ in 0..9 {
        for (i, (user, password)) in cases.iter().enumerate() {
            let started = std::time::Instant::now();
            let r = app
                .login_with(&reqwest::Client::new(), user, password)
                .await;
            took[i].push(started.elapsed());
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
    }
    let medians: Vec<_> = took
        .iter_mut()
        .zip(cases)
        .map(|(t, (user, _))| {
            t.sort();
            (user, t[t.len() / 2])
        })
        .collect();
    let fastest = medians.iter().map(|m| m.1).min().unwrap();
    let slowest = medians.iter().map(|m| m.1).max().unwrap();
    // A skipped derivation is ~35 times faster; scheduling noise stays well within 4 times.
    assert!(
        slowest < fastest * 4,
        "failed logins differ in time: {medians:?}"
    );
}

async fn passwords_in_traffic_ops_format_log_in(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // Made outside this code base (Python's hashlib.scrypt), in Traffic Ops' format.
    let hash = "SCRYPT:16384:8:1:MDEyMzQ1Njc4OWFiY2RlZg==:toVDrUsTlPpvuredSx4tEHUowe2K6WwynZg2PNWBsyZ5f0Bh/DSMN7mU+LKSPHZHrF24478LLLrJzwoo9QMkqQ==";
    app.with_store(move |s| s.add_user("imported", hash, "operations", now_micros()))
        .await
        .unwrap();
    let r = app
        .login_with(&reqwest::Client::new(), "imported", "twelve")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let stored = app
        .with_store(|s| s.find_user(ADMIN))
        .await
        .unwrap()
        .unwrap();
    let hash = stored.password_hash.unwrap();
    assert!(hash.starts_with("SCRYPT:16384:8:1:"), "{hash}");
    assert_eq!(hash.split(':').count(), 6);
}

async fn requests_without_a_valid_token_are_401(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let valid = app.token(ADMIN, ADMIN_PASSWORD).await;
    let parts: Vec<&str> = valid.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(
        json!({
            "sub": ADMIN, "uid": ADMIN_ID, "sid": "forged", "sst": 0,
            "iat": 0, "exp": 4_000_000_000i64, "jti": "forged"
        })
        .to_string(),
    );
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{forged_payload}.");
    let tokens = [
        "".to_owned(),
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        tampered,
        alg_none,
        craft(SECRET, Algorithm::HS256, ADMIN, 7200, 3600),
        craft(SECRET, Algorithm::HS512, ADMIN, 0, 3600),
        craft(
            "another-secret-entirely-0123456789",
            Algorithm::HS256,
            ADMIN,
            0,
            3600,
        ),
        craft(SECRET, Algorithm::HS256, "no-such-user", 0, 3600),
    ];
    for token in &tokens {
        assert_alert(
            get_with_bearer(&app, token).await,
            StatusCode::UNAUTHORIZED,
            UNAUTHORIZED,
        )
        .await;
        let r = current_with(&app, "cookie", &format!("access_token={token}")).await;
        assert_alert(r, StatusCode::UNAUTHORIZED, UNAUTHORIZED).await;
    }
    let r = reqwest::get(app.api("/async_status/1")).await.unwrap();
    assert_alert(r, StatusCode::UNAUTHORIZED, UNAUTHORIZED).await;
    let r = current_with(&app, "authorization", &format!("Basic {valid}")).await;
    assert_alert(r, StatusCode::UNAUTHORIZED, UNAUTHORIZED).await;
    assert_eq!(get_with_bearer(&app, &valid).await.status(), StatusCode::OK);
}

async fn secrets_rotate_signing_with_the_first_and_accepting_any(backend: Backend) {
    const NEW: &str = "the-new-secret-0123456789abcdefghijkl";
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.auth.secrets = vec![
            asyncstatus_api::settings::Secret::from(NEW),
            asyncstatus_api::settings::Secret::from(SECRET),
        ]
    })
    .await
    else {
        return;
    };
    let old = craft(SECRET, Algorithm::HS256, ADMIN, 0, 3600);
    assert_eq!(get_with_bearer(&app, &old).await.status(), StatusCode::OK);
    let issued = app.token(ADMIN, ADMIN_PASSWORD).await;
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(
        &issued,
        &jsonwebtoken::DecodingKey::from_secret(NEW.as_bytes()),
        &validation,
    )
    .expect("signed with the first secret")
    .claims;
    for claim in ["sub", "uid", "sid", "sst", "iat", "exp", "jti"] {
        assert!(claims.get(claim).is_some(), "{claim} in {claims}");
    }
    assert_eq!(claims["sub"], ADMIN);
}

async fn logout_revokes_that_session_only(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.login_admin().await;
    let other_session = app.token(ADMIN, ADMIN_PASSWORD).await;
    let r = app.post(app.api("/user/logout")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cleared = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cleared.starts_with("access_token=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"alerts": [{"level": "success", "text": "You are logged out."}]})
    );

    // The revoked token, replayed by hand, is refused (even though the cache had it).
    let r = app
        .login_with(&reqwest::Client::new(), ADMIN, ADMIN_PASSWORD)
        .await;
    let token = token_of(&r).unwrap();
    assert_eq!(get_with_bearer(&app, &token).await.status(), StatusCode::OK);
    let r = reqwest::Client::new()
        .post(app.api("/user/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_alert(
        get_with_bearer(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        get_with_bearer(&app, &other_session).await.status(),
        StatusCode::OK
    );
    let r = app.get(app.api("/user/current")).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the cleared cookie is gone"
    );
}

async fn current_user_shows_role_and_permissions(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("ops", "ops-password", "operations").await;
    app.add_user("viewer", "viewer-password", "read-only").await;
    let all = json!([
        "ASYNC-STATUS:CANCEL",
        "ASYNC-STATUS:CREATE",
        "ASYNC-STATUS:DELETE",
        "ASYNC-STATUS:READ",
        "ASYNC-STATUS:UPDATE"
    ]);
    for (user, password, role, perms) in [
        (ADMIN, ADMIN_PASSWORD, "admin", all.clone()),
        ("ops", "ops-password", "operations", all),
        ("viewer", "viewer-password", "read-only", json!([])),
    ] {
        let token = app.token(user, password).await;
        let r = get_with_bearer(&app, &token).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["response"]["username"], user);
        assert_eq!(body["response"]["role"], role);
        assert_eq!(body["response"]["permissions"], perms, "{user}");
        assert!(body["response"]["id"].is_i64());
    }
}

async fn a_missing_permission_is_403_naming_it(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("viewer", "viewer-password", "read-only").await;
    let token = app.token("viewer", "viewer-password").await;
    let r = bearer_get(&reqwest::Client::new(), app.api("/async_status/1"), &token).await;
    assert_alert(
        r,
        StatusCode::FORBIDDEN,
        "missing required Permissions: ASYNC-STATUS:READ",
    )
    .await;
}

async fn deleted_and_demoted_users_lose_access(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.auth.user_cache_ttl = std::time::Duration::ZERO
    })
    .await
    else {
        return;
    };
    app.add_user("leaving", "leaving-password", "operations")
        .await;
    app.add_user("demoted", "demoted-password", "operations")
        .await;
    let leaving = app.token("leaving", "leaving-password").await;
    let demoted = app.token("demoted", "demoted-password").await;
    let job = |token: String| {
        let url = app.api("/async_status/1");
        async move { bearer_get(&reqwest::Client::new(), url, &token).await }
    };
    assert_eq!(
        job(leaving.clone()).await.status(),
        StatusCode::NOT_FOUND,
        "allowed, no job yet"
    );
    assert_eq!(job(demoted.clone()).await.status(), StatusCode::NOT_FOUND);
    app.with_store(|s| s.remove_user("leaving")).await.unwrap();
    app.with_store(|s| s.set_user_role("demoted", "read-only", now_micros()))
        .await
        .unwrap();
    assert_alert(job(leaving).await, StatusCode::UNAUTHORIZED, UNAUTHORIZED).await;
    assert_alert(
        job(demoted).await,
        StatusCode::FORBIDDEN,
        "missing required Permissions: ASYNC-STATUS:READ",
    )
    .await;
}

async fn cookie_sessions_slide_past_half_their_lifetime(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // 6 h tokens: one issued 4 h ago is past half-life, one issued 1 h ago is not.
    let old = craft(SECRET, Algorithm::HS256, ADMIN, 4 * 3600, 6 * 3600);
    let young = craft(SECRET, Algorithm::HS256, ADMIN, 3600, 6 * 3600);
    let by_cookie = |token: &str| {
        reqwest::Client::new()
            .get(app.api("/user/current"))
            .header("cookie", format!("access_token={token}"))
            .send()
    };
    let r = by_cookie(&old).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = token_of(&r).expect("a fresh cookie");
    assert_ne!(fresh, old);
    assert_eq!(get_with_bearer(&app, &fresh).await.status(), StatusCode::OK);
    let r = by_cookie(&young).await.unwrap();
    assert!(token_of(&r).is_none(), "no refresh before half-life");
    let r = get_with_bearer(&app, &old).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        token_of(&r).is_none(),
        "Bearer tokens are not refreshed by cookie"
    );
}

async fn repeated_failed_logins_are_throttled(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.auth.login_max_failures = 3).await else {
        return;
    };
    app.fail_logins(&cookie_client(), ADMIN, "wrong", 3).await;
    let r = app
        .login_with(&cookie_client(), ADMIN, ADMIN_PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        retry_after(&r),
        1,
        "the first block is 1 s (it doubles with each further failure)"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["alerts"][0]["level"], "error");
}

async fn throttling_counts_per_username_and_per_address(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, throttle(3, 5)).await else {
        return;
    };
    app.add_user("ops", "ops-password", "operations").await;
    let attacker = client_from([127, 0, 0, 2]);
    app.fail_logins(&attacker, "ghost", "guess", 3).await;
    let r = app.login_with(&attacker, "ghost", "guess").await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "(ghost, this address) is blocked"
    );
    assert!(r.headers().contains_key("retry-after"));
    let r = app.login_with(&attacker, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "another user at the same address is not blocked"
    );
    app.fail_logins(&attacker, "ops", "wrong", 2).await;
    let r = app.login_with(&attacker, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "5 failures across usernames block the address"
    );
    let r = app
        .login_with(&client_from([127, 0, 0, 3]), ADMIN, ADMIN_PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::OK, "another address: not blocked");

    for (i, _) in (0..3).enumerate() {
        let r = app
            .login_with(&client_from([127, 0, 1, i as u8 + 1]), "ops", "wrong")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app
        .login_with(&client_from([127, 0, 2, 1]), "ops", "ops-password")
        .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "failures from other addresses do not lock the account everywhere"
    );
}

async fn reads_keep_their_latency_while_logins_run(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.auth.login_max_failures = 0).await else {
        return;
    };
    app.login_admin().await;
    let id = app.create_job("read me").await;
    let token = app.token(ADMIN, ADMIN_PASSWORD).await;
    let url = app.job_url(id);
    let reader = reqwest::Client::new();
    let median_read = |reader: reqwest::Client, url: String, token: String| async move {
        let mut took = Vec::new();
        for _ in 0..40 {
            let started = std::time::Instant::now();
            let r = bearer_get(&reader, &url, &token).await;
            assert_eq!(r.status(), StatusCode::OK);
            took.push(started.elapsed());
        }
        took.sort();
        took[took.len() / 2]
    };
    let before = median_read(reader.clone(), url.clone(), token.clone()).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logins: Vec<_> = (0..32)
        .map(|_| {
            let (stop, login) = (stop.clone(), app.api("/user/login"));
            actix_web::rt::spawn(async move {
                let client = reqwest::Client::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = client
                        .post(&login)
                        .json(&json!({"u": ADMIN, "p": ADMIN_PASSWORD}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), StatusCode::OK);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let during = median_read(reader, url, token).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut logged_in = 0;
    for l in logins {
        logged_in += l.await.unwrap();
    }
    assert!(logged_in >= 8, "logins ran meanwhile: {logged_in}");
    assert!(
        during < before + std::time::Duration::from_millis(50),
        "median read {before:?} before, {during:?} while {logged_in} logins ran"
    );
}

crate::both_backends!(
    failed_logins_take_alike_whatever_the_reason,
    throttling_counts_per_username_and_per_address,
    reads_keep_their_latency_while_logins_run,
    login_sets_an_http_only_session_cookie,
    the_cookie_is_secure_when_configured,
    login_bodies_that_are_not_json_are_400,
    login_needs_a_username_and_a_password,
    bad_credentials_get_one_answer,
    passwords_in_traffic_ops_format_log_in,
    requests_without_a_valid_token_are_401,
    secrets_rotate_signing_with_the_first_and_accepting_any,
    logout_revokes_that_session_only,
    current_user_shows_role_and_permissions,
    a_missing_permission_is_403_naming_it,
    deleted_and_demoted_users_lose_access,
    cookie_sessions_slide_past_half_their_lifetime,
    repeated_failed_logins_are_throttled,
);
