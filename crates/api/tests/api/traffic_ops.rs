//! `database.layout = "traffic_ops"` over real HTTP, on a throwaway PostgreSQL database that
//! holds Traffic Ops' tables, seeded roles and users (`TestDatabase::traffic_ops`), with jobs
//! written by the SQL Traffic Ops runs. The session cookies are made and checked here by an
//! implementation of Traffic Ops' documented format written for the tests (pinned to known
//! vectors made with Python's standard library), not by the service's own code.

use std::time::{Duration, Instant};

use asyncstatus_api::settings::Secret;
use asyncstatus_api::startup::Application;
use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::Layout;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sha1::Sha1;

use crate::helpers::{assert_alert, parked, test_settings, TestApp};

/// cdn.conf's example secret.
const TO_SECRET: &str = "mONKEYDOmONKEYSEE.";
/// 2100-01-01T00:00:00Z.
const FAR: i64 = 4_102_444_800;

/// Known vectors, made with Python's hmac, hashlib, base64 and json from the algorithm of
/// shared/TRAFFIC_OPS.md §2 with [`TO_SECRET`].
const OPS_COOKIE: &str = "eyJhdXRoX2RhdGEiOiJvcHMiLCJleHBpcmVzIjo0MTAyNDQ0ODAwLCJieSI6InRyYWZmaWNjb250cm9sLWdvLXRvY29va2llIn0--281f991999e22fd1ca764ff5103d514cb00061b3";
const OPS_COOKIE_EXPIRED: &str = "eyJhdXRoX2RhdGEiOiJvcHMiLCJleHBpcmVzIjoxMDAwMDAwMDAwLCJieSI6InRyYWZmaWNjb250cm9sLWdvLXRvY29va2llIn0--0490f62386f0168195672ddbad153f625916dfb5";
/// HS256, claims `{"exp": FAR, "mojoCookie": OPS_COOKIE}`.
const OPS_ACCESS_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDAsIm1vam9Db29raWUiOiJleUpoZFhSb1gyUmhkR0VpT2lKdmNITWlMQ0psZUhCcGNtVnpJam8wTVRBeU5EUTBPREF3TENKaWVTSTZJblJ5WVdabWFXTmpiMjUwY205c0xXZHZMWFJ2WTI5dmEybGxJbjAtLTI4MWY5OTE5OTllMjJmZDFjYTc2NGZmNTEwM2Q1MTRjYjAwMDYxYjMifQ.P7gzUmSaSHwuQ6DlPB82V33pvu5zfAgQlEJk_-oFJbU";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sign(text: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(TO_SECRET.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// A `mojolicious` value as Traffic Ops makes it.
fn to_cookie(user: &str, expires: i64) -> String {
    let payload = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"auth_data":{},"expires":{expires},"by":"trafficcontrol-go-tocookie"}}"#,
        serde_json::to_string(user).unwrap()
    ));
    let signature = sign(&payload);
    format!("{payload}--{signature}")
}

/// A `mojolicious` value checked as Traffic Ops checks it: its user and expiry.
fn read_to_cookie(value: &str) -> (String, i64) {
    let (payload, signature) = value.split_once("--").expect("B64--SIG");
    assert_eq!(
        sign(payload),
        signature,
        "the signature verifies under the secret"
    );
    let json: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    (
        json["auth_data"].as_str().unwrap().to_owned(),
        json["expires"].as_i64().unwrap(),
    )
}

/// The `Set-Cookie` headers of an answer.
fn set_cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value of the cookie `name` set by the answer, and the whole header.
fn cookie_set(r: &Response, name: &str) -> Option<(String, String)> {
    set_cookies(r).into_iter().find_map(|header| {
        let value = header
            .split(';')
            .next()?
            .strip_prefix(&format!("{name}="))?
            .to_owned();
        Some((value, header))
    })
}

/// A Traffic Ops database with one user per seeded role (named after the role) and a user
/// whose role was removed.
fn traffic_ops_database() -> Option<TestDatabase> {
    let db = TestDatabase::traffic_ops()?;
    // Whatever the test cluster's default: the times of these tests read in UTC.
    db.set_session_time_zone("UTC");
    db.add_traffic_ops_user("ops", "operations", None);
    db.add_traffic_ops_user("admin", "admin", None);
    db.add_traffic_ops_user("reader", "read-only", None);
    db.add_traffic_ops_user("trouter", "trouter", None);
    db.add_traffic_ops_user("blocked", "disallowed", None);
    db.add_traffic_ops_user("orphan", "portal", None);
    db.execute_sql("DELETE FROM role_capability WHERE role_id = (SELECT id FROM role WHERE name = 'portal'); DELETE FROM role WHERE name = 'portal'");
    Some(db)
}

/// asyncstatus on `db` in the Traffic Ops layout.
async fn serve(
    db: TestDatabase,
    configure: impl FnOnce(&mut asyncstatus_api::settings::Settings),
) -> TestApp {
    let mut settings = test_settings(&db);
    settings.database.layout = Layout::TrafficOps;
    settings.traffic_ops.secret = Some(Secret::from(TO_SECRET));
    configure(&mut settings);
    TestApp::start(db, settings).await
}

fn db_of(app: &TestApp) -> &TestDatabase {
    app.db.as_ref().expect("the app owns its database")
}

async fn get_as(url: &str, cookie: &str) -> Response {
    reqwest::Client::new()
        .get(url)
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

#[test]
fn the_test_cookie_implementation_matches_the_known_vectors() {
    assert_eq!(to_cookie("ops", FAR), OPS_COOKIE);
    assert_eq!(to_cookie("ops", 1_000_000_000), OPS_COOKIE_EXPIRED);
    assert_eq!(read_to_cookie(OPS_COOKIE), ("ops".into(), FAR));
}

#[actix_web::test]
async fn postgres_a_traffic_ops_cookie_reads_a_traffic_ops_job_as_traffic_ops_answers_it() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    let id = db.insert_traffic_ops_job("DNSSEC refresh started");
    let app = serve(db, |_| {}).await;
    let cookie = format!("mojolicious={OPS_COOKIE}");
    let r = get_as(&app.job_url(id), &cookie).await;
    assert_eq!(r.status(), StatusCode::OK);
    let headers = r.headers().clone();
    assert!(headers.contains_key("whole-content-sha512"));
    // Traffic Ops' own headers, on this answer and on a 401.
    // Without gzip asked for: nothing is compressed, and Vary is still there.
    let unauthorized = reqwest::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .get(app.job_url(id))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    for answer in [&headers, unauthorized.headers()] {
        for (name, value) in [
            ("access-control-allow-credentials", "true"),
            (
                "access-control-allow-headers",
                "Origin, X-Requested-With, Content-Type, Accept, Set-Cookie, Cookie",
            ),
            (
                "access-control-allow-methods",
                "POST,GET,OPTIONS,PUT,DELETE",
            ),
            ("access-control-allow-origin", "*"),
            ("permissions-policy", "interest-cohort=()"),
            ("content-type", "application/json"),
        ] {
            assert_eq!(answer[name], value, "{name}");
        }
        let vary: Vec<&str> = answer
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            vary.iter()
                .filter(|v| v.eq_ignore_ascii_case("accept-encoding"))
                .count(),
            1,
            "Vary: {vary:?}"
        );
    }
    assert!(headers.contains_key("etag"));
    assert!(
        headers.contains_key("retry-after"),
        "a PENDING job says when to ask again"
    );
    assert!(
        !headers.contains_key("last-modified"),
        "Traffic Ops' table has no last_updated"
    );
    let (refreshed, header) = cookie_set(&r, "mojolicious").expect("a refreshed cookie");
    let (user, expires) = read_to_cookie(&refreshed);
    let now = chrono::Utc::now().timestamp();
    assert_eq!(user, "ops");
    assert!(
        (now + 3590..=now + 3610).contains(&expires),
        "1 h from now: {expires}"
    );
    for attribute in ["Path=/", "HttpOnly", "Max-Age=3600", "Expires="] {
        assert!(header.contains(attribute), "{attribute} in {header}");
    }
    assert!(
        !header.contains("SameSite") && !header.contains("Secure"),
        "{header}"
    );
    let body = r.text().await.unwrap();
    assert!(body.ends_with("}\n"), "{body:?}");
    let stored = app.store.traffic_ops_job(id).unwrap().unwrap();
    let start = stored.start_time;
    let go_time = |t: chrono::DateTime<chrono::Utc>| {
        let nanos = t.timestamp_subsec_nanos();
        let whole = t.format("%Y-%m-%dT%H:%M:%S").to_string();
        match nanos {
            0 => format!("{whole}Z"),
            n => format!("{whole}.{}Z", format!("{n:09}").trim_end_matches('0')),
        }
    };
    assert_eq!(
        body,
        format!(
            "{{\"response\":{{\"id\":{id},\"status\":\"PENDING\",\"start_time\":\"{}\",\"message\":\"DNSSEC refresh started\"}}}}\n",
            go_time(start)
        ),
        "end_time, NULL, is omitted"
    );
    // Finished as Traffic Ops finishes it; the ETag changes with the content.
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let again = reqwest::Client::new()
        .get(app.job_url(id))
        .header(COOKIE, &cookie)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    db_of(&app).update_traffic_ops_job(
        id,
        "SUCCEEDED",
        "DNSSEC refresh completed successfully (2 keys were updated)",
    );
    let done = reqwest::Client::new()
        .get(format!("{}.json", app.job_url(id)))
        .header(COOKIE, &cookie)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status(),
        StatusCode::OK,
        "`.json` is stripped, and the tag changed"
    );
    assert!(!done.headers().contains_key("retry-after"));
    let end = app
        .store
        .traffic_ops_job(id)
        .unwrap()
        .unwrap()
        .end_time
        .unwrap();
    let body: Value = done.json().await.unwrap();
    assert_eq!(
        body,
        json!({"response": {"id": id, "status": "SUCCEEDED", "start_time": go_time(start),
            "end_time": go_time(end), "message": "DNSSEC refresh completed successfully (2 keys were updated)"}})
    );
    // A job without a message: the key is omitted.
    db_of(&app).execute_sql("INSERT INTO async_status (status) VALUES ('PENDING')");
    let bare: Value = get_as(&app.job_url(id + 1), &cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        bare["response"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["id", "start_time", "status"]
    );
    // Missing, and not an id: Traffic Ops' texts; the session is refreshed on both.
    let missing = get_as(&app.job_url(id + 1000), &cookie).await;
    assert!(cookie_set(&missing, "mojolicious").is_some());
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.text().await.unwrap(),
        "{\"alerts\":[{\"text\":\"Not Found\",\"level\":\"error\"}]}\n",
        "Traffic Ops' bytes, keys in its order"
    );
    assert_alert(
        get_as(&app.job_url("4x"), &cookie).await,
        StatusCode::BAD_REQUEST,
        "getting integer parameters: parameter 'id' not an integer",
    )
    .await;
    assert_eq!(
        get_as(&app.job_url(format!("+{id:03}")), &cookie)
            .await
            .status(),
        StatusCode::OK,
        "Go's Atoi takes a sign and leading zeros"
    );
}

#[actix_web::test]
async fn postgres_access_tokens_and_the_order_credentials_are_taken_in() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    let id = db.insert_traffic_ops_job("ACME async job has started.");
    let app = serve(db, |_| {}).await;
    let url = app.job_url(id);
    let client = reqwest::Client::new();
    let bearer = client
        .get(&url)
        .bearer_auth(OPS_ACCESS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
    let (token, _) = cookie_set(&bearer, "access_token").expect("the token is set again");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(TO_SECRET.as_bytes()),
        &validation,
    )
    .expect("signed with Traffic Ops' secret")
    .claims;
    assert_eq!(
        claims,
        json!({"exp": FAR, "mojoCookie": OPS_COOKIE}),
        "re-signed with its old claims: the token never slides"
    );
    assert!(cookie_set(&bearer, "mojolicious").is_some());
    let cookie = format!("access_token={OPS_ACCESS_TOKEN}");
    assert_eq!(get_as(&url, &cookie).await.status(), StatusCode::OK);
    // The first session cookie in header order decides.
    let bad_first = format!("theme=dark; access_token=x.y.z; mojolicious={OPS_COOKIE}");
    let refused = get_as(&url, &bad_first).await;
    assert!(set_cookies(&refused).is_empty(), "a 401 refreshes nothing");
    assert_alert(
        refused,
        StatusCode::UNAUTHORIZED,
        "unauthorized, please log in.",
    )
    .await;
    let good_first = format!("mojolicious={OPS_COOKIE}; access_token=x.y.z");
    assert_eq!(get_as(&url, &good_first).await.status(), StatusCode::OK);
    // A Bearer header wins over every cookie.
    let r = client
        .get(&url)
        .bearer_auth("x.y.z")
        .header(COOKIE, format!("mojolicious={OPS_COOKIE}"))
        .send()
        .await
        .unwrap();
    assert_alert(r, StatusCode::UNAUTHORIZED, "unauthorized, please log in.").await;
    // A token signed with another secret.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"exp": FAR, "mojoCookie": OPS_COOKIE}),
        &jsonwebtoken::EncodingKey::from_secret(b"another secret"),
    )
    .unwrap();
    let r = client.get(&url).bearer_auth(forged).send().await.unwrap();
    assert_alert(r, StatusCode::UNAUTHORIZED, "unauthorized, please log in.").await;
    // A token holding an expired cookie: the inner cookie's expiry decides.
    let stale = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"exp": FAR, "mojoCookie": OPS_COOKIE_EXPIRED}),
        &jsonwebtoken::EncodingKey::from_secret(TO_SECRET.as_bytes()),
    )
    .unwrap();
    let r = client.get(&url).bearer_auth(stale).send().await.unwrap();
    assert_alert(
        r,
        StatusCode::UNAUTHORIZED,
        "signature expired - unauthorized, please log in",
    )
    .await;
}

#[actix_web::test]
async fn postgres_refused_cookies_get_traffic_ops_texts() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    let id = db.insert_traffic_ops_job("started");
    let app = serve(db, |_| {}).await;
    let url = app.job_url(id);
    let none = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_alert(
        none,
        StatusCode::UNAUTHORIZED,
        "unauthorized, please log in.",
    )
    .await;
    let (payload, _) = OPS_COOKIE.split_once("--").unwrap();
    let tampered = format!("mojolicious={payload}--{}", "0".repeat(40));
    let cases = [
        (
            tampered,
            "bad signature - unauthorized, please log in".to_owned(),
        ),
        (
            format!("mojolicious={OPS_COOKIE_EXPIRED}"),
            "signature expired - unauthorized, please log in".to_owned(),
        ),
        (
            "mojolicious=abc".to_owned(),
            "error parsing cookie: malformed cookie 'abc' - no dashes".to_owned(),
        ),
        ("mojolicious=!!!--00".to_owned(), "Unauthorized".to_owned()),
        (
            format!("mojolicious={}", to_cookie("ghost", FAR)),
            "user not found".to_owned(),
        ),
        (
            format!("mojolicious={}", to_cookie("orphan", FAR)),
            "user not found".to_owned(),
        ),
    ];
    for (cookie, text) in cases {
        assert_alert(get_as(&url, &cookie).await, StatusCode::UNAUTHORIZED, &text).await;
    }
}

#[actix_web::test]
async fn postgres_permissions_follow_role_based_permissions_or_priv_level() {
    for role_based in [true, false] {
        let Some(db) = traffic_ops_database() else {
            return;
        };
        let id = db.insert_traffic_ops_job("started");
        let app = serve(db, |s| s.traffic_ops.role_based_permissions = role_based).await;
        let missing = "missing required Permissions: ASYNC-STATUS:READ";
        let expected: [(&str, Option<&str>); 5] = if role_based {
            [
                ("admin", None),
                ("ops", None),
                ("reader", None),
                ("trouter", Some(missing)),
                ("blocked", Some(missing)),
            ]
        } else {
            [
                ("admin", None),
                ("ops", None),
                ("reader", Some("Forbidden.")),
                ("trouter", Some("Forbidden.")),
                ("blocked", Some("Forbidden.")),
            ]
        };
        for (user, refusal) in expected {
            let r = get_as(
                &app.job_url(id),
                &format!("mojolicious={}", to_cookie(user, FAR)),
            )
            .await;
            // Traffic Ops refreshes the session before it checks permissions.
            assert!(cookie_set(&r, "mojolicious").is_some(), "{user}: refreshed");
            match refusal {
                None => assert_eq!(
                    r.status(),
                    StatusCode::OK,
                    "{user}, role_based {role_based}"
                ),
                Some(text) => assert_alert(r, StatusCode::FORBIDDEN, text).await,
            }
        }
    }
}

#[actix_web::test]
async fn postgres_a_long_poll_wakes_on_a_traffic_ops_update_within_the_poll_interval() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    let id = db.insert_traffic_ops_job("ACME renewal in progress. 0 certs renewed, 0 errors.");
    let app = serve(db, |_| {}).await;
    let interval = app.settings.traffic_ops.poll_interval;
    assert_eq!(interval, Duration::from_secs(1), "the default");
    let url = app.job_url(id);
    let poll = actix_web::rt::spawn(async move {
        let r = reqwest::Client::new()
            .get(url)
            .header(COOKIE, format!("mojolicious={OPS_COOKIE}"))
            .header("Prefer", "wait=30")
            .send()
            .await
            .unwrap();
        (Instant::now(), r.status(), r.json::<Value>().await.unwrap())
    });
    parked(&app, 1).await;
    // A change to another job does not end the wait.
    let other = db_of(&app).insert_traffic_ops_job("other");
    db_of(&app).update_traffic_ops_job(other, "FAILED", "ACME renewal failed.");
    db_of(&app).update_traffic_ops_job(
        id,
        "PENDING",
        "ACME renewal in progress. 1 certs renewed, 0 errors.",
    );
    tokio::time::sleep(interval * 2).await;
    assert!(!poll.is_finished(), "a PENDING job's wait goes on");
    db_of(&app).update_traffic_ops_job(
        id,
        "SUCCEEDED",
        "ACME renewal complete. 2 certs renewed, 0 errors.",
    );
    let updated = Instant::now();
    let (answered, status, body) = poll.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response"]["status"], "SUCCEEDED");
    let took = answered - updated;
    assert!(
        took <= interval + Duration::from_millis(500),
        "woken {took:?} after the update"
    );
}

#[actix_web::test]
async fn postgres_jobs_stuck_past_fail_stuck_after_are_failed_saying_since_when() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    let stuck = db.insert_traffic_ops_job("DNSSEC refresh started");
    db.execute_sql(&format!(
        "UPDATE async_status SET start_time = '2026-01-02T03:04:05Z' WHERE id = {stuck}"
    ));
    let fresh = db.insert_traffic_ops_job("DNSSEC refresh started");
    let app = serve(db, |s| {
        s.traffic_ops.fail_stuck_after = Duration::from_secs(3600);
        s.jobs.reaper_interval = Duration::from_millis(200);
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let job = app.store.traffic_ops_job(stuck).unwrap().unwrap();
        if job.is_final() {
            break job;
        }
        assert!(Instant::now() < deadline, "the stuck job was never failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed.status, "FAILED");
    assert!(failed.end_time.is_some());
    assert_eq!(
        failed.message.as_deref(),
        Some("abandoned: still PENDING since 2026-01-02T03:04:05Z (failed by asyncstatus, traffic_ops.fail_stuck_after); last message: DNSSEC refresh started")
    );
    let young = app.store.traffic_ops_job(fresh).unwrap().unwrap();
    assert_eq!(
        young.status, "PENDING",
        "a job younger than fail_stuck_after is left alone"
    );
}

#[actix_web::test]
async fn postgres_a_whole_run_leaves_traffic_ops_schema_as_it_was() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    db.add_traffic_ops_user("renewer", "admin", Some(SCRYPT_HASH));
    let before = db.schema_dump("public");
    let id = db.insert_traffic_ops_job("started");
    let stuck = db.insert_traffic_ops_job("abandoned");
    db.execute_sql(&format!(
        "UPDATE async_status SET start_time = now() - interval '1 day' WHERE id = {stuck}"
    ));
    let app = serve(db, |s| {
        s.traffic_ops.fail_stuck_after = Duration::from_secs(60);
        s.jobs.reaper_interval = Duration::from_millis(200);
    })
    .await;
    let cookie = format!("mojolicious={OPS_COOKIE}");
    assert_eq!(
        get_as(&app.job_url(id), &cookie).await.status(),
        StatusCode::OK
    );
    // Every route this layout serves, once: login, the producer API, the list, a long-poll
    // woken by a write, the stuck-job sweep, logout.
    let jar = crate::helpers::cookie_client();
    assert_eq!(
        login(&app, &jar, "renewer", SCRYPT_PASSWORD).await.status(),
        StatusCode::OK
    );
    let r = jar
        .post(app.api("/async_status"))
        .json(&json!({"message": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let made = r.json::<Value>().await.unwrap()["response"]["id"]
        .as_i64()
        .unwrap();
    let poll = {
        let (jar, url) = (jar.clone(), app.job_url(made));
        actix_web::rt::spawn(async move {
            jar.get(url)
                .header("Prefer", "wait=20")
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    parked(&app, 1).await;
    let r = jar
        .put(app.job_url(made))
        .json(&json!({"status": "SUCCEEDED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(poll.await.unwrap(), StatusCode::OK);
    assert_eq!(
        jar.get(app.api("/async_status?limit=10"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app
        .store
        .traffic_ops_job(stuck)
        .unwrap()
        .unwrap()
        .is_final()
    {
        assert!(Instant::now() < deadline, "the stuck job was never failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        jar.post(app.api("/user/logout"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    for (method, path) in [
        (reqwest::Method::GET, "/user/current"),
        (reqwest::Method::GET, "/async_status/events"),
    ] {
        let r = reqwest::Client::new()
            .request(method.clone(), app.api(path))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED, "{method} {path}");
        // Without a session: 401 first, as from Traffic Ops.
        let anonymous = reqwest::Client::new()
            .request(method.clone(), app.api(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let body: Value = r.json().await.unwrap();
        let text = body["alerts"][0]["text"].as_str().unwrap();
        assert!(text.contains("database.layout = \"traffic_ops\""), "{text}");
    }
    let metrics = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let ready = reqwest::get(format!("{}/readyz", app.address))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(db_of(&app).schema_dump("public"), before);
}

#[actix_web::test]
async fn postgres_start_up_refuses_a_database_without_traffic_ops_tables_naming_them() {
    let Some(db) = TestDatabase::traffic_ops() else {
        return;
    };
    db.execute_sql(
        "DROP TABLE role_capability; DROP TABLE cdni_capability_updates; DROP TABLE async_status",
    );
    let mut settings = test_settings(&db);
    settings.database.layout = Layout::TrafficOps;
    settings.traffic_ops.secret = Some(Secret::from(TO_SECRET));
    let err = Application::build(settings).await.err().expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("lacks Traffic Ops' tables async_status, role_capability"),
        "{text}"
    );
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let schemas: Count =
        diesel::sql_query("SELECT count(*) AS n FROM pg_namespace WHERE nspname = 'asyncstatus'")
            .get_result(&mut db.pg_connection())
            .unwrap();
    assert_eq!(schemas.n, 0, "nothing was migrated");
}

#[actix_web::test]
async fn postgres_the_default_layout_refuses_a_traffic_ops_database_and_leaves_it_untouched() {
    let Some(db) = TestDatabase::traffic_ops() else {
        return;
    };
    let before = db.schema_dump("public");
    let err = Application::build(test_settings(&db))
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("is a Traffic Ops database")
            && text.contains("database.layout = \"traffic_ops\""),
        "{text}"
    );
    assert_eq!(db.schema_dump("public"), before);
}

#[test]
fn settings_refuse_the_traffic_ops_layout_on_sqlite_or_without_its_secret() {
    let db = TestDatabase::sqlite();
    let mut settings = test_settings(&db);
    settings.database.layout = Layout::TrafficOps;
    settings.traffic_ops.secret = Some(Secret::from(TO_SECRET));
    let err = settings.validate().unwrap_err().to_string();
    assert!(err.contains("needs PostgreSQL"), "{err}");
    settings.database.url =
        asyncstatus_persistence::DatabaseUrl::parse("postgres://to@127.0.0.1/traffic_ops").unwrap();
    settings.traffic_ops.secret = None;
    let err = settings.validate().unwrap_err().to_string();
    assert!(err.contains("needs traffic_ops.secret"), "{err}");
    settings.traffic_ops.secret = Some(Secret::from(TO_SECRET));
    settings.traffic_ops.poll_interval = Duration::from_millis(10);
    let err = settings.validate().unwrap_err().to_string();
    assert!(
        err.contains("traffic_ops.poll_interval must be at least"),
        "{err}"
    );
}

#[test]
fn postgres_the_cli_lists_traffic_ops_users_and_refuses_to_change_them() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    // The binary in this layout on the fixture database.
    let command = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_asyncstatus-api"));
        cmd.env(
            "ASYNCSTATUS_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
        )
        .env_remove("ASYNCSTATUS_ENV")
        .env("RUST_LOG", "warn")
        .env("ASYNCSTATUS__DATABASE__URL", db.url_string())
        .env("ASYNCSTATUS__DATABASE__LAYOUT", "traffic_ops")
        .env("ASYNCSTATUS__TRAFFIC_OPS__SECRET", TO_SECRET);
        cmd
    };
    let run = |args: &[&str]| command().args(args).output().unwrap();
    let users = run(&["user", "list"]);
    assert!(
        users.status.success(),
        "{}",
        String::from_utf8_lossy(&users.stderr)
    );
    let listed = String::from_utf8_lossy(&users.stdout);
    for line in ["ops", "reader", "trouter"] {
        assert!(
            listed.lines().any(|l| l.starts_with(line)),
            "{line} in {listed}"
        );
    }
    assert!(
        !listed.contains("orphan"),
        "a user without a role is not Traffic Ops' user"
    );
    let roles = run(&["role", "list"]);
    assert!(roles.status.success());
    assert!(String::from_utf8_lossy(&roles.stdout).contains("ASYNC-STATUS:READ"));
    for args in [
        &["user", "remove", "ops"][..],
        &["user", "set-role", "ops", "admin"],
        &["role", "grant", "trouter", "ASYNC-STATUS:READ"],
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?} is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("users and roles are Traffic Ops' own"),
            "{args:?}: {err}"
        );
    }
    let unchanged = run(&["user", "list"]);
    assert_eq!(unchanged.stdout, users.stdout);
    // `serve` says whose users log in, not how to add one.
    let mut serving = command()
        .env("ASYNCSTATUS__SERVER__PORT", "0")
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = serving.stdout.take().unwrap();
    let lines: Vec<String> = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .take(3)
        .map(Result::unwrap)
        .collect();
    let _ = serving.kill();
    let _ = serving.wait();
    let banner = lines.join("\n");
    assert!(banner.contains("Log in as a Traffic Ops user"), "{banner}");
    assert!(!banner.contains("user add"), "{banner}");
}

/// `tr@ffic-ops-pass` hashed by Python's hashlib.scrypt in Traffic Ops' format (salt 0..63).
const SCRYPT_HASH: &str = "SCRYPT:16384:8:1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==:+RhcNFr5N5WaWNekcIG3nIYajW1Xp58YtqkplfTSCE48kcyE4RhPzfzpNmETwcSLQwip8oJ4lDBuCCAgP3o7nw==";
const SCRYPT_PASSWORD: &str = "tr@ffic-ops-pass";
/// The hex SHA-1 of `legacy-sha1-pass`, which Traffic Ops still accepts.
const SHA1_HASH: &str = "c8d95e941696225d098561b0eff2e22c5752fea1";

async fn login(app: &TestApp, client: &reqwest::Client, user: &str, password: &str) -> Response {
    client
        .post(app.api("/user/login"))
        .json(&json!({"u": user, "p": password}))
        .send()
        .await
        .unwrap()
}

fn access_token_claims(token: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(TO_SECRET.as_bytes()),
        &validation,
    )
    .expect("signed with Traffic Ops' secret")
    .claims
}

#[actix_web::test]
async fn postgres_a_login_checks_the_traffic_ops_hash_and_issues_traffic_ops_cookies() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    db.add_traffic_ops_user("renewer", "operations", Some(SCRYPT_HASH));
    db.add_traffic_ops_user("old-timer", "read-only", Some(SHA1_HASH));
    db.add_traffic_ops_user("shut-out", "disallowed", Some(SCRYPT_HASH));
    let id = db.insert_traffic_ops_job("ACME async job has started.");
    let app = serve(db, |_| {}).await;
    let jar = crate::helpers::cookie_client();
    let r = login(&app, &jar, "renewer", SCRYPT_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (mojolicious, header) = cookie_set(&r, "mojolicious").expect("a mojolicious cookie");
    let (token, _) = cookie_set(&r, "access_token").expect("an access_token cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("Path=/"),
        "{header}"
    );
    let (user, expires) = read_to_cookie(&mojolicious);
    let now = chrono::Utc::now().timestamp();
    assert_eq!(user, "renewer");
    assert!(
        (now + 6 * 3600 - 10..=now + 6 * 3600 + 10).contains(&expires),
        "6 h: {expires}"
    );
    assert_eq!(
        access_token_claims(&token),
        json!({"exp": expires, "mojoCookie": mojolicious})
    );
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"alerts": [{"level": "success", "text": "Successfully logged in."}]})
    );
    // The jar sends both cookies back, and the session they hold is good.
    let job = jar.get(app.job_url(id)).send().await.unwrap();
    assert_eq!(job.status(), StatusCode::OK);
    assert_eq!(
        login(
            &app,
            &reqwest::Client::new(),
            "old-timer",
            "legacy-sha1-pass"
        )
        .await
        .status(),
        StatusCode::OK,
        "a legacy SHA-1 hash logs in"
    );
    for (user, password) in [
        ("renewer", "wrong password"),
        ("shut-out", SCRYPT_PASSWORD),
        ("nobody", SCRYPT_PASSWORD),
        ("ops", SCRYPT_PASSWORD),
    ] {
        let r = login(&app, &reqwest::Client::new(), user, password).await;
        assert!(set_cookies(&r).is_empty(), "{user}: no cookie");
        assert_alert(r, StatusCode::UNAUTHORIZED, "Invalid username or password.").await;
    }
}

#[actix_web::test]
async fn postgres_a_logout_refuses_the_users_earlier_cookies_at_asyncstatus() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    db.add_traffic_ops_user("renewer", "operations", Some(SCRYPT_HASH));
    let id = db.insert_traffic_ops_job("DNSSEC refresh started");
    let app = serve(db, |_| {}).await;
    let client = reqwest::Client::new();
    let first = login(&app, &client, "renewer", SCRYPT_PASSWORD).await;
    let (mojolicious, _) = cookie_set(&first, "mojolicious").unwrap();
    let (token, _) = cookie_set(&first, "access_token").unwrap();
    let cookie = format!("mojolicious={mojolicious}");
    let read = get_as(&app.job_url(id), &cookie).await;
    let (refreshed, _) = cookie_set(&read, "mojolicious").unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    // As a browser holds them after one answer: the refreshed cookie and the login's token.
    let out = client
        .post(app.api("/user/logout"))
        .header(
            COOKIE,
            format!("mojolicious={refreshed}; access_token={token}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    let (cleared, header) = cookie_set(&out, "mojolicious").unwrap();
    assert_eq!(cleared, "");
    assert!(header.contains("Expires="), "{header}");
    assert_eq!(cookie_set(&out, "access_token").unwrap().0, "");
    assert_eq!(
        out.json::<Value>().await.unwrap(),
        json!({"alerts": [{"level": "success", "text": "You are logged out."}]})
    );
    // Every credential the logout presented is refused here, and the login's cookie with the
    // token that holds it.
    // Another spelling of the same signature is the same cookie.
    let (payload, signature) = refreshed.split_once("--").unwrap();
    let shouted = format!("mojolicious={payload}--{}", signature.to_uppercase());
    assert_ne!(shouted, format!("mojolicious={refreshed}"));
    for refused in [
        cookie,
        format!("mojolicious={refreshed}"),
        shouted,
        format!("access_token={token}"),
    ] {
        assert_alert(
            get_as(&app.job_url(id), &refused).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized, please log in.",
        )
        .await;
    }
    // A new login is a new session.
    let again = login(&app, &client, "renewer", SCRYPT_PASSWORD).await;
    let (fresh, _) = cookie_set(&again, "mojolicious").unwrap();
    assert_eq!(
        get_as(&app.job_url(id), &format!("mojolicious={fresh}"))
            .await
            .status(),
        StatusCode::OK
    );
    // Another user's session is untouched.
    assert_eq!(
        get_as(&app.job_url(id), &format!("mojolicious={OPS_COOKIE}"))
            .await
            .status(),
        StatusCode::OK
    );
}

#[actix_web::test]
async fn postgres_the_python_traffic_ops_client_works_against_traffic_ops_mode() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    db.add_traffic_ops_user("renewer", "operations", Some(SCRYPT_HASH));
    let id = db.insert_traffic_ops_job("ACME async job has started.");
    let app = serve(db, |_| {}).await;
    let Some(stdout) = crate::python_client::run_script(
        &app,
        &["renewer", SCRYPT_PASSWORD, &id.to_string(), "--traffic-ops"],
    )
    .await
    else {
        return;
    };
    assert!(
        stdout.contains("OK PENDING ACME async job has started."),
        "{stdout}"
    );
}

/// A stand-in for Traffic Ops behind nginx: HTTPS, answering every request with its method
/// and path.
fn traffic_ops_stand_in(cert: &std::path::Path, key: &std::path::Path) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().default_service(actix_web::web::to(
            |req: actix_web::HttpRequest| async move {
                format!("traffic ops stand-in: {} {}", req.method(), req.path())
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .listen_rustls_0_23(listener, tls)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    port
}

/// A port free now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx, killed when dropped.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_web::test]
async fn postgres_the_documented_nginx_routes_job_paths_to_asyncstatus_and_the_rest_to_traffic_ops()
{
    let Some(db) = traffic_ops_database() else {
        return;
    };
    let id = db.insert_traffic_ops_job("DNSSEC refresh started");
    let app = serve(db, |_| {}).await;
    let (dir, cert, key) = crate::ops::self_signed();
    let upstream = traffic_ops_stand_in(&cert, &key);
    let port = free_port();
    let documented = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/deploy/traffic-ops-nginx.conf"
    ))
    .unwrap();
    let replace = |text: String, from: &str, to: String| {
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` once in the documented file"
        );
        text.replace(from, &to)
    };
    let site = replace(
        documented,
        "server 127.0.0.1:8080;",
        format!("server 127.0.0.1:{};", app.port),
    );
    let site = replace(
        site,
        "server 127.0.0.1:8443;",
        format!("server 127.0.0.1:{upstream};"),
    );
    let site = replace(
        site,
        "listen 443 ssl;",
        format!("listen 127.0.0.1:{port} ssl;"),
    );
    let site = replace(
        site,
        "/etc/nginx/tls/trafficops.crt",
        cert.display().to_string(),
    );
    let site = replace(
        site,
        "/etc/nginx/tls/trafficops.key",
        key.display().to_string(),
    );
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;\n\
             error_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
             include {d}/site.conf; }}\n"
        ),
    )
    .unwrap();
    // Debian's nginx is in /usr/sbin, outside a user's PATH.
    let bin = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|b| !b.starts_with('/') || std::path::Path::new(b).exists())
        .unwrap_or("nginx");
    let nginx = std::process::Command::new(bin)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nginx runs (make test installs Debian's nginx package; see README)");
    let _nginx = Nginx(nginx);
    let https = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while https.get(format!("{base}/")).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx never answered: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cookie = format!("mojolicious={OPS_COOKIE}");
    for path in [
        format!("/api/4.0/async_status/{id}"),
        format!("/api/5.0/async_status/{id}.json"),
    ] {
        let r = https
            .get(format!("{base}{path}"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["response"]["message"], "DNSSEC refresh started",
            "{path}"
        );
    }
    let r = https
        .get(format!("{base}/api/4.0/async_status"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the list is asyncstatus' route");
    assert!(r.json::<Value>().await.unwrap()["response"].is_array());
    for path in [
        "/api/4.0/cdns",
        "/api/4.0/async_statusx",
        "/api/4.0/user/login",
        "/",
        "/api/5.0/servers/async_status",
    ] {
        let r = https.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(
            r.text().await.unwrap(),
            format!("traffic ops stand-in: GET {path}"),
            "{path}"
        );
    }
    // The logout is asyncstatus' (it refuses the cookies it is shown from then on).
    let r = https
        .post(format!("{base}/api/4.0/user/logout"))
        .send()
        .await
        .unwrap();
    assert_alert(r, StatusCode::UNAUTHORIZED, "unauthorized, please log in.").await;
    // A long-poll passes through, and is answered when Traffic Ops finishes the job.
    let url = format!("{base}/api/4.0/async_status/{id}");
    let poll = actix_web::rt::spawn(async move {
        https
            .get(url)
            .header(COOKIE, format!("mojolicious={OPS_COOKIE}"))
            .header("Prefer", "wait=20")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    parked(&app, 1).await;
    db_of(&app).update_traffic_ops_job(
        id,
        "SUCCEEDED",
        "DNSSEC refresh completed successfully (1 keys were updated)",
    );
    let body = poll.await.unwrap();
    assert_eq!(body["response"]["status"], "SUCCEEDED");
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_web::test]
async fn postgres_producers_write_traffic_ops_table_as_traffic_ops_does() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    // Traffic Ops has no such permissions; an operator grants them to a role of its own.
    db.execute_sql(
        "INSERT INTO role_capability (role_id, cap_name) SELECT id, c FROM role, \
         (VALUES ('ASYNC-STATUS:CREATE'), ('ASYNC-STATUS:UPDATE')) AS v (c) WHERE name = 'operations'",
    );
    let app = serve(db, |_| {}).await;
    let client = reqwest::Client::new();
    let ops = format!("mojolicious={OPS_COOKIE}");
    let r = client
        .post(app.api("/async_status"))
        .header(COOKIE, &ops)
        .json(&json!({"message": "ACME async job has started."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let id = body["response"]["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/4.0/async_status/{id}"));
    assert_eq!(
        body["response"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["id", "message", "start_time", "status"]
    );
    // Stored as Traffic Ops stores its own, and read back by the Traffic Ops route.
    let stored = app.store.traffic_ops_job(id).unwrap().unwrap();
    assert_eq!(
        (
            stored.status.as_str(),
            stored.message.as_deref(),
            stored.end_time
        ),
        ("PENDING", Some("ACME async job has started."), None)
    );
    // A long-poll on it is woken at once by the producer's update (no poll_interval).
    let url = app.job_url(id);
    let cookie = ops.clone();
    let poll = actix_web::rt::spawn(async move {
        let r = reqwest::Client::new()
            .get(url)
            .header(COOKIE, cookie)
            .header("Prefer", "wait=30")
            .send()
            .await
            .unwrap();
        (Instant::now(), r.json::<Value>().await.unwrap())
    });
    parked(&app, 1).await;
    let put = |body: Value| {
        client
            .put(app.job_url(id))
            .header(COOKIE, &ops)
            .json(&body)
            .send()
    };
    let r = put(json!({"status": "PENDING", "message": "1 of 2 certificates renewed"}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = put(json!({"status": "SUCCEEDED", "message": "ACME renewal complete."}))
        .await
        .unwrap();
    let finished = Instant::now();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"]["status"], "SUCCEEDED");
    assert!(body["response"]["end_time"].is_string());
    let (answered, polled) = poll.await.unwrap();
    assert_eq!(polled["response"]["status"], "SUCCEEDED");
    assert!(
        answered - finished < Duration::from_millis(500),
        "woken {:?} after",
        answered - finished
    );
    let stored = app.store.traffic_ops_job(id).unwrap().unwrap();
    assert!(stored.end_time.is_some());
    // Finished: no further change, and Traffic Ops' jobs are never deleted.
    assert_alert(
        put(json!({"status": "FAILED"})).await.unwrap(),
        StatusCode::CONFLICT,
        "async status is already SUCCEEDED and can no longer be changed",
    )
    .await;
    let r = client
        .delete(app.job_url(id))
        .header(COOKIE, &ops)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET, PUT");
    // What the table cannot hold is refused, naming it; so are bad values and missing jobs.
    let r = client
        .post(app.api("/async_status"))
        .header(COOKIE, &ops)
        .json(&json!({"message": "x", "kind": "acme.renew"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = r.json::<Value>().await.unwrap()["alerts"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.starts_with("'kind' cannot be stored"), "{text}");
    let r = put(json!({"status": "DONE"})).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = client
        .put(app.job_url(id + 1000))
        .header(COOKIE, &ops)
        .json(&json!({"status": "FAILED"}))
        .send()
        .await
        .unwrap();
    assert_alert(r, StatusCode::NOT_FOUND, "Not Found").await;
    // A browser's cookie write from another site is refused; the same with a Bearer token
    // is not a browser's.
    let r = client
        .post(app.api("/async_status"))
        .header(COOKIE, &ops)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client
        .post(app.api("/async_status"))
        .bearer_auth(OPS_ACCESS_TOKEN)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // A role without the permission: Traffic Ops' text.
    let reader = format!("mojolicious={}", to_cookie("reader", FAR));
    let r = client
        .post(app.api("/async_status"))
        .header(COOKIE, reader)
        .send()
        .await
        .unwrap();
    assert_alert(
        r,
        StatusCode::FORBIDDEN,
        "missing required Permissions: ASYNC-STATUS:CREATE",
    )
    .await;
}

#[actix_web::test]
async fn postgres_the_list_pages_traffic_ops_jobs_by_id_and_refuses_what_would_scan() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    let ids: Vec<i64> = (0..5)
        .map(|n| db.insert_traffic_ops_job(&format!("job {n}")))
        .collect();
    db.execute_sql(&format!(
        "UPDATE async_status SET message = NULL WHERE id = {}",
        ids[1]
    ));
    let app = serve(db, |_| {}).await;
    let cookie = format!("mojolicious={OPS_COOKIE}");
    let page = |query: String| {
        let url = format!("{}?{query}", app.api("/async_status"));
        let cookie = cookie.clone();
        async move { get_as(&url, &cookie).await }
    };
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let r = page(query.clone()).await;
        assert_eq!(r.status(), StatusCode::OK, "{query}");
        let body: Value = r.json().await.unwrap();
        let jobs = body["response"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        for job in jobs {
            seen.push(job["id"].as_i64().unwrap());
            if job["id"] == ids[1] {
                assert!(
                    job.get("message").is_none(),
                    "a NULL message is omitted: {job}"
                );
            }
        }
        match body["summary"]["next"].as_str() {
            Some(next) => query = format!("cursor={next}&limit=2"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every job once, by id");
    let body: Value = page("sortOrder=desc&limit=3".into())
        .await
        .json()
        .await
        .unwrap();
    let desc: Vec<i64> = body["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(desc, [ids[4], ids[3], ids[2]]);
    let body: Value = page(format!("id={}", ids[2])).await.json().await.unwrap();
    assert_eq!(body["response"].as_array().unwrap().len(), 1);
    assert!(body.get("summary").is_none());
    for (query, name) in [
        ("status=PENDING", "status"),
        ("orderby=start_time", "orderby"),
        ("offset=2&limit=2", "offset"),
        ("newerThan=2026-01-01T00:00:00Z", "newerThan"),
        ("label=cdn:cdn1", "label"),
    ] {
        let r = page(query.into()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        let text = r.json::<Value>().await.unwrap()["alerts"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            text.starts_with(&format!("query parameter '{name}' is not available")),
            "{text}"
        );
    }
    assert_eq!(
        page("limit=1001".into()).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        page("cursor=garbage".into()).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[actix_web::test]
async fn postgres_times_read_in_the_database_sessions_zone_as_traffic_ops_shows_them() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    db.set_session_time_zone("America/New_York");
    let winter = db.insert_traffic_ops_job("winter");
    db.execute_sql(&format!(
        "UPDATE async_status SET start_time = '2021-02-18T17:13:56.30262Z', \
         end_time = '2021-07-01T12:00:00Z', status = 'SUCCEEDED' WHERE id = {winter}"
    ));
    let app = serve(db, |_| {}).await;
    let body: Value = get_as(&app.job_url(winter), &format!("mojolicious={OPS_COOKIE}"))
        .await
        .json()
        .await
        .unwrap();
    // Standard time in February, daylight saving time in July: each time its own offset.
    assert_eq!(
        body["response"]["start_time"],
        "2021-02-18T12:13:56.30262-05:00"
    );
    assert_eq!(body["response"]["end_time"], "2021-07-01T08:00:00-04:00");
}

#[actix_web::test]
async fn postgres_a_write_at_one_replica_wakes_a_long_poll_at_another_at_once() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    db.execute_sql(
        "INSERT INTO role_capability (role_id, cap_name) SELECT id, 'ASYNC-STATUS:UPDATE' \
         FROM role WHERE name = 'operations'",
    );
    let id = db.insert_traffic_ops_job("started");
    // A poll interval far beyond the test: only the announcement can wake the waiter.
    let a = serve(db, |s| {
        s.traffic_ops.poll_interval = Duration::from_secs(120)
    })
    .await;
    let b = a.replica(|_| {}).await;
    let url = b.job_url(id);
    let poll = actix_web::rt::spawn(async move {
        let r = reqwest::Client::new()
            .get(url)
            .header(COOKIE, format!("mojolicious={OPS_COOKIE}"))
            .header("Prefer", "wait=60")
            .send()
            .await
            .unwrap();
        (Instant::now(), r.json::<Value>().await.unwrap())
    });
    parked(&b, 1).await;
    let r = reqwest::Client::new()
        .put(a.job_url(id))
        .header(COOKIE, format!("mojolicious={OPS_COOKIE}"))
        .json(&json!({"status": "FAILED", "message": "ACME renewal failed."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let written = Instant::now();
    let (answered, body) = poll.await.unwrap();
    assert_eq!(body["response"]["status"], "FAILED");
    let took = answered - written;
    assert!(
        took < Duration::from_secs(1),
        "woken {took:?} after the write at the other replica"
    );
}

#[actix_web::test]
async fn postgres_a_list_page_is_cut_to_max_response_bytes_and_continues() {
    let Some(db) = traffic_ops_database() else {
        return;
    };
    let big = "m".repeat(60 * 1024);
    let ids: Vec<i64> = (0..24).map(|_| db.insert_traffic_ops_job(&big)).collect();
    let app = serve(db, |s| {
        s.server.max_response_bytes = asyncstatus_api::settings::MIN_RESPONSE_BYTES
    })
    .await;
    let cookie = format!("mojolicious={OPS_COOKIE}");
    let mut seen = Vec::new();
    let mut query = "limit=24".to_owned();
    let mut pages = 0;
    loop {
        let r = get_as(&format!("{}?{query}", app.api("/async_status")), &cookie).await;
        let body = r.bytes().await.unwrap();
        assert!(
            body.len() <= asyncstatus_api::settings::MIN_RESPONSE_BYTES,
            "{} bytes",
            body.len()
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        pages += 1;
        seen.extend(
            body["response"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_i64().unwrap()),
        );
        match body["summary"]["next"].as_str() {
            Some(next) => query = format!("cursor={next}&limit=24"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every job once");
    assert!(pages >= 2, "24 jobs of 60 KiB do not fit in 1 MiB");
}
