//! Signing secrets (none built in: generated once, kept in the database), sessions (refresh
//! keeps the session, logout revokes all of it, a maximum age), tokens naming the account,
//! and bounded scrypt parameters of stored hashes.

use std::time::{Duration, Instant};

use asyncstatus_api::settings::Secret;
use asyncstatus_persistence::{now_micros, Backend};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_alert, bearer_get, get_with_header, token_of, TestApp, ADMIN, ADMIN_PASSWORD, SECRET,
};

const UNAUTHORIZED: &str = "unauthorized, please log in.";
/// The secret every build signed with before secrets were generated per database.
const OLD_BUILT_IN_SECRET: &str = "asyncstatus-development-secret-do-not-use-in-production";
/// The bootstrap admin's id (the first user of a fresh database).
const ADMIN_ID: i64 = 1;

/// The claims of a token, read without checking its signature.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("JSON")
}

/// Signs `claims` (HS256) with `secret`.
fn sign(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The admin's token of session `sid` started `started` seconds ago, issued `age` seconds
/// ago, living `ttl` seconds from then.
fn admin_token(secret: &str, sid: &str, started: i64, age: i64, ttl: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    sign(
        secret,
        &json!({
            "sub": ADMIN, "uid": ADMIN_ID, "sid": sid, "sst": now - started,
            "iat": now - age, "exp": now - age + ttl, "jti": format!("{sid}-{age}-{ttl}")
        }),
    )
}

async fn current(base: &str, token: &str) -> reqwest::Response {
    bearer_get(
        &reqwest::Client::new(),
        format!("{base}/user/current"),
        token,
    )
    .await
}

async fn by_cookie(app: &TestApp, token: &str) -> reqwest::Response {
    get_with_header(
        &reqwest::Client::new(),
        app.api("/user/current"),
        "cookie",
        &format!("access_token={token}"),
    )
    .await
}

async fn logout(app: &TestApp, token: &str) {
    let r = reqwest::Client::new()
        .post(app.api("/user/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// No secret configured: the default.
fn no_secret(s: &mut asyncstatus_api::settings::Settings) {
    s.auth.secrets = Vec::new();
}

async fn a_default_configured_service_refuses_the_old_built_in_secret(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, no_secret).await else {
        return;
    };
    let forged = admin_token(OLD_BUILT_IN_SECRET, "forged", 0, 0, 3600);
    assert_alert(
        current(&app.api(""), &forged).await,
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
    )
    .await;
    // The generated secret is 256 random bits (64 hex digits), and it signs.
    let stored = app
        .with_store(|s| s.signing_secret_or_insert("unused"))
        .await
        .unwrap();
    assert_eq!(stored.len(), 64, "hex of 32 bytes");
    assert!(stored.chars().all(|c| c.is_ascii_hexdigit()));
    let token = app.token(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(current(&app.api(""), &token).await.status(), StatusCode::OK);
    let own = admin_token(&stored, "own", 0, 0, 3600);
    assert_eq!(current(&app.api(""), &own).await.status(), StatusCode::OK);
}

async fn replicas_with_no_configured_secret_accept_each_others_tokens(backend: Backend) {
    let Some(first) = TestApp::spawn_with(backend, no_secret).await else {
        return;
    };
    let second = first.replica(|_| {}).await;
    let from_first = first.token(ADMIN, ADMIN_PASSWORD).await;
    let from_second = second.token(ADMIN, ADMIN_PASSWORD).await;
    for (app, token) in [(&second, &from_first), (&first, &from_second)] {
        assert_eq!(current(&app.api(""), token).await.status(), StatusCode::OK);
    }
}

/// Replicas starting at once on a database without a secret race to store theirs: one wins
/// and every one reads back the same.
async fn racing_replicas_agree_on_the_generated_secret(backend: Backend) {
    // Configured secrets: this one stores none, so the race below is the first.
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let racers: Vec<_> = (0..8)
        .map(|n| {
            let (store, barrier) = (app.store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store
                    .signing_secret_or_insert(&format!("candidate-{n}"))
                    .unwrap()
            })
        })
        .collect();
    let won: Vec<String> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(won.iter().all(|s| *s == won[0]), "{won:?}");
    assert!(won[0].starts_with("candidate-"));
    let replica = app.replica(no_secret).await;
    let token = admin_token(&won[0], "raced", 0, 0, 3600);
    assert_eq!(
        current(&replica.api(""), &token).await.status(),
        StatusCode::OK
    );
}

/// A real restart of the binary on the same SQLite file keeps the generated secret.
#[actix_web::test]
async fn a_restart_on_the_same_sqlite_file_keeps_accepting_an_earlier_token() {
    let Some(db) = asyncstatus_persistence::testing::TestDatabase::new(Backend::Sqlite) else {
        return;
    };
    let url = db.url_string();
    let first_url = url.clone();
    let served = actix_web::rt::task::spawn_blocking(move || crate::ops::serve(&first_url, &[]))
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/user/login", served.base))
        .json(&json!({"u": ADMIN, "p": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = token_of(&r).unwrap();
    assert_eq!(current(&served.base, &token).await.status(), StatusCode::OK);
    drop(served);
    let restarted = actix_web::rt::task::spawn_blocking(move || crate::ops::serve(&url, &[]))
        .await
        .unwrap();
    assert_eq!(
        current(&restarted.base, &token).await.status(),
        StatusCode::OK
    );
    drop(db);
}

async fn a_configured_secret_takes_precedence_over_the_stored_one(backend: Backend) {
    let Some(generated) = TestApp::spawn_with(backend, no_secret).await else {
        return;
    };
    let stored = generated
        .with_store(|s| s.signing_secret_or_insert("unused"))
        .await
        .unwrap();
    let configured = generated
        .replica(|s| s.auth.secrets = vec![Secret::from(SECRET)])
        .await;
    let by_stored = generated.token(ADMIN, ADMIN_PASSWORD).await;
    let by_configured = configured.token(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        current(&configured.api(""), &by_stored).await.status(),
        StatusCode::UNAUTHORIZED,
        "the stored secret is not used when secrets are configured"
    );
    assert_eq!(
        current(&configured.api(""), &by_configured).await.status(),
        StatusCode::OK
    );
    let crafted = admin_token(SECRET, "configured", 0, 0, 3600);
    assert_eq!(
        current(&configured.api(""), &crafted).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        current(&generated.api(""), &by_configured).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Rotation still works with configured secrets: a new first one, the stored one after it.
    let rotated = generated
        .replica(|s| {
            s.auth.secrets = vec![
                Secret::from("the-new-secret-0123456789abcdefghijkl"),
                Secret::from(stored.clone()),
            ]
        })
        .await;
    assert_eq!(
        current(&rotated.api(""), &by_stored).await.status(),
        StatusCode::OK
    );
}

async fn a_refreshed_token_keeps_its_session(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // A 6 h token issued 4 h ago, past its half-life.
    let old = admin_token(SECRET, "kept", 4 * 3600, 4 * 3600, 6 * 3600);
    let r = by_cookie(&app, &old).await;
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = token_of(&r).expect("a refreshed cookie");
    let (before, after) = (claims_of(&old), claims_of(&fresh));
    assert_eq!(after["sid"], before["sid"]);
    assert_eq!(after["sst"], before["sst"]);
    assert_eq!(after["uid"], ADMIN_ID);
    assert_ne!(after["jti"], before["jti"]);
}

async fn logout_revokes_every_token_of_the_session(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let old = admin_token(SECRET, "one-session", 4 * 3600, 4 * 3600, 6 * 3600);
    let r = by_cookie(&app, &old).await;
    let refreshed = token_of(&r).expect("a refreshed cookie");
    // Another token of the same session, and another session of the same user.
    let sibling = admin_token(SECRET, "one-session", 4 * 3600, 60, 6 * 3600);
    let other_session = app.token(ADMIN, ADMIN_PASSWORD).await;
    for token in [&old, &refreshed, &sibling, &other_session] {
        assert_eq!(current(&app.api(""), token).await.status(), StatusCode::OK);
    }
    // Logging out with the refreshed token ends the session for all its tokens, at once,
    // though each is in the cache.
    logout(&app, &refreshed).await;
    for token in [&old, &refreshed, &sibling] {
        assert_alert(
            current(&app.api(""), token).await,
            StatusCode::UNAUTHORIZED,
            UNAUTHORIZED,
        )
        .await;
    }
    assert_eq!(
        current(&app.api(""), &other_session).await.status(),
        StatusCode::OK,
        "other sessions keep working"
    );
}

async fn logout_reaches_every_replica_within_the_user_cache_ttl(backend: Backend) {
    const CACHE: Duration = Duration::from_secs(1);
    let Some(first) = TestApp::spawn_with(backend, |s| s.auth.user_cache_ttl = CACHE).await else {
        return;
    };
    let second = first.replica(|_| {}).await;
    let token = first.token(ADMIN, ADMIN_PASSWORD).await;
    let sibling = admin_token(
        SECRET,
        claims_of(&token)["sid"].as_str().unwrap(),
        0,
        0,
        3600,
    );
    for t in [&token, &sibling] {
        assert_eq!(current(&second.api(""), t).await.status(), StatusCode::OK);
    }
    logout(&first, &token).await;
    // The second replica trusts its cached entries for at most user_cache_ttl.
    actix_web::rt::time::sleep(CACHE + Duration::from_millis(100)).await;
    for t in [&token, &sibling] {
        assert_alert(
            current(&second.api(""), t).await,
            StatusCode::UNAUTHORIZED,
            UNAUTHORIZED,
        )
        .await;
    }
}

async fn a_session_cannot_outlive_its_max_age_by_refreshing(backend: Backend) {
    // token_ttl 6 h, session_max_age 24 h (the defaults).
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let max_age = 24 * 3600;
    // Started 23 h ago, its token issued 4 h ago: the refreshed one ends with the session.
    let old = admin_token(SECRET, "long", 23 * 3600, 4 * 3600, 4 * 3600 + 1800);
    let r = by_cookie(&app, &old).await;
    assert_eq!(r.status(), StatusCode::OK);
    let fresh = token_of(&r).expect("a refreshed cookie");
    let claims = claims_of(&fresh);
    let start = claims["sst"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), start + max_age);
    let max_cookie_age: i64 = r
        .cookies()
        .find(|c| c.name() == "access_token")
        .and_then(|c| c.max_age())
        .map(|d| d.as_secs() as i64)
        .unwrap();
    assert!(max_cookie_age <= 3600, "the cookie ends with the session");
    // A token refreshed right at the end: no new token past the session.
    let at_end = admin_token(SECRET, "at-end", max_age - 60, 4 * 3600, 4 * 3600 + 60);
    let r = by_cookie(&app, &at_end).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(token_of(&r).is_none(), "nothing past the session's end");
    // Past the session's max age, even an unexpired token of it is 401.
    let beyond = admin_token(SECRET, "beyond", max_age + 1, 60, 3600);
    assert_alert(
        by_cookie(&app, &beyond).await,
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
    )
    .await;
}

async fn revocations_are_purged_when_their_session_has_expired(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.token(ADMIN, ADMIN_PASSWORD).await;
    logout(&app, &token).await;
    let sid = claims_of(&token)["sid"].as_str().unwrap().to_owned();
    let (kept, purged) = app
        .with_store(move |s| {
            let revoked = s.is_session_revoked(&sid).unwrap();
            let now = now_micros();
            let early = s.purge_expired_revocations(now).unwrap();
            let late = s
                .purge_expired_revocations(now + chrono::Duration::hours(25))
                .unwrap();
            (revoked && early == 0, late)
        })
        .await;
    assert!(kept, "kept while the session could still be used");
    assert_eq!(purged, 1, "purged once the session's max age has passed");
}

async fn a_new_user_with_an_old_name_does_not_inherit_its_tokens(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.add_user("reused", "first-password", "operations").await;
    let old = app.token("reused", "first-password").await;
    app.with_store(|s| s.remove_user("reused")).await.unwrap();
    app.add_user("reused", "second-password", "read-only").await;
    assert_alert(
        current(&app.api(""), &old).await,
        StatusCode::UNAUTHORIZED,
        UNAUTHORIZED,
    )
    .await;
    let new = app.token("reused", "second-password").await;
    let r = current(&app.api(""), &new).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["role"], "read-only");
}

async fn a_stored_hash_beyond_the_scrypt_bounds_is_refused_quickly(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // N = 2^20, r = 16: 2 GiB and ~12 s per derivation if it were used.
    const HUGE: &str = "SCRYPT:1048576:16:1:MDEyMzQ1Njc4OWFiY2RlZg==:toVDrUsTlPpvuredSx4tEHUowe2K6WwynZg2PNWBsyZ5f0Bh/DSMN7mU+LKSPHZHrF24478LLLrJzwoo9QMkqQ==";
    app.with_store(|s| s.add_user("costly", HUGE, "operations", now_micros()))
        .await
        .unwrap();
    let started = Instant::now();
    let r = app
        .login_with(&reqwest::Client::new(), "costly", "twelve")
        .await;
    let took = started.elapsed();
    assert_alert(r, StatusCode::UNAUTHORIZED, "Invalid username or password.").await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

crate::both_backends!(
    a_default_configured_service_refuses_the_old_built_in_secret,
    replicas_with_no_configured_secret_accept_each_others_tokens,
    racing_replicas_agree_on_the_generated_secret,
    a_configured_secret_takes_precedence_over_the_stored_one,
    a_refreshed_token_keeps_its_session,
    logout_revokes_every_token_of_the_session,
    logout_reaches_every_replica_within_the_user_cache_ttl,
    a_session_cannot_outlive_its_max_age_by_refreshing,
    revocations_are_purged_when_their_session_has_expired,
    a_new_user_with_an_old_name_does_not_inherit_its_tokens,
    a_stored_hash_beyond_the_scrypt_bounds_is_refused_quickly,
);
