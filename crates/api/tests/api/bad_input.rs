//! The bad-input corpus: malformed paths and ids, percent-encoding, NUL bytes, huge and
//! numerous headers, broken tokens, malformed, deep, huge and duplicate-key JSON, wrong types,
//! invalid UTF-8, conflicting headers, and protocol-level garbage. Each gets its documented
//! 4xx (with an alert wherever a request reaches the application); nothing gets a 5xx; the
//! process answers normally afterwards.

use asyncstatus_persistence::Backend;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::TestApp;

/// One malformed request and what it must get.
struct Case {
    name: String,
    method: Method,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    /// Send the admin's token (so the case reaches past authentication).
    auth: bool,
    status: u16,
    /// A part of the alert text; `None` where the documented answer is not an error.
    alert: Option<&'static str>,
}

fn case(name: &str, method: Method, path: &str, status: u16, alert: Option<&'static str>) -> Case {
    Case {
        name: name.into(),
        method,
        path: path.into(),
        headers: vec![],
        body: None,
        auth: true,
        status,
        alert,
    }
}

impl Case {
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
    fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    fn anonymous(mut self) -> Self {
        self.auth = false;
        self
    }
}

const NOT_INT: &str = "getting integer parameters: parameter 'id' not an integer";
const UNAUTHORIZED: &str = "unauthorized, please log in.";
const NOT_JSON: &str = "request body is not valid JSON";

fn corpus() -> Vec<Case> {
    use Method as M;
    let mut cases = Vec::new();
    for id in [
        "abc",
        "1.5",
        "1e3",
        "9223372036854775808",
        "-9223372036854775809",
        "%00",
        "1%00",
        "%FF",
        "%20",
        "1%20",
        "%201",
        "0x1",
        "+-1",
        "--1",
        "%D9%A1",
        "1_000",
        "Infinity",
        "NaN",
        &"9".repeat(1000),
        "%E2%80%8B1",
    ] {
        cases.push(case(
            &format!("id {id:.20}"),
            M::GET,
            &format!("/api/4.0/async_status/{id}"),
            400,
            Some(NOT_INT),
        ));
    }
    cases.push(
        case(
            "PUT id with NUL",
            M::PUT,
            "/api/4.0/async_status/%00",
            400,
            Some(NOT_INT),
        )
        .body(r#"{"status":"FAILED"}"#),
    );
    cases.push(case(
        "DELETE id overflow",
        M::DELETE,
        "/api/4.0/async_status/99999999999999999999",
        400,
        Some(NOT_INT),
    ));
    for path in [
        "//api/4.0/ping",
        "/api/4.0//ping",
        "/api/4.0/ping/",
        "/api/4.0/async_status/",
        "/api/4.0/async_status/1/",
        "/api/4.0/user",
        "/api/4.0/USER/login",
    ] {
        cases.push(case(
            &format!("path {path}"),
            M::GET,
            path,
            404,
            Some("does not exist"),
        ));
    }
    cases.push(case(
        "a very long path",
        M::GET,
        &format!("/api/4.0/{}", "a".repeat(6000)),
        404,
        Some("does not exist"),
    ));
    // `%34` is an encoded unreserved "4": the same path (RFC 3986 §6.2.2.2), so it is served.
    cases.push(case(
        "version spelled %34.0",
        M::GET,
        "/api/%34.0/ping",
        200,
        None,
    ));
    for path in ["/api/4/ping", "/api/v4.0/ping", "/api/4.0.0/ping"] {
        cases.push(case(
            &format!("version {path}"),
            M::GET,
            path,
            501,
            Some("not implemented"),
        ));
    }
    for (method, path) in [
        (M::PATCH, "/api/4.0/async_status/1"),
        (M::TRACE, "/api/4.0/ping"),
        (M::OPTIONS, "/api/4.0/user/login"),
        (M::from_bytes(b"BREW").unwrap(), "/api/4.0/async_status"),
    ] {
        cases.push(case(
            &format!("method {method} {path}"),
            method,
            path,
            405,
            Some("not allowed"),
        ));
    }
    let tokens: Vec<(&str, Vec<u8>)> = vec![
        ("empty bearer", b"Bearer ".to_vec()),
        ("bearer without token", b"Bearer".to_vec()),
        ("basic scheme", b"Basic YWRtaW46YWRtaW4=".to_vec()),
        ("two-part token", b"Bearer abc.def".to_vec()),
        ("four-part token", b"Bearer a.b.c.d".to_vec()),
        ("base64 garbage", b"Bearer ####.####.####".to_vec()),
        (
            "huge token",
            format!("Bearer {}", "A".repeat(8000)).into_bytes(),
        ),
        ("non-ASCII bytes", b"Bearer \xff\xfe.\xfd.\xfc".to_vec()),
        (
            "JSON instead of a token",
            br#"Bearer {"sub":"admin"}"#.to_vec(),
        ),
        ("token with spaces", b"Bearer a b c".to_vec()),
    ];
    for (name, value) in tokens {
        cases.push(
            case(
                &format!("token: {name}"),
                M::GET,
                "/api/4.0/user/current",
                401,
                Some(UNAUTHORIZED),
            )
            .anonymous()
            .header("authorization", value),
        );
    }
    for cookie in [
        &b"access_token="[..],
        b"access_token=%%%; ===; ;;",
        b"access_token=\xff\xfe",
        b"access_token",
    ] {
        cases.push(
            case(
                &format!("cookie {:?}", String::from_utf8_lossy(cookie)),
                M::GET,
                "/api/4.0/user/current",
                401,
                Some(UNAUTHORIZED),
            )
            .anonymous()
            .header("cookie", cookie),
        );
    }
    let create = "/api/4.0/async_status";
    let update = "/api/4.0/async_status/1";
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
    for (name, method, path, body, status, alert) in [
        (
            "unclosed object",
            M::POST,
            create,
            b"{".to_vec(),
            400,
            NOT_JSON,
        ),
        (
            "missing value",
            M::POST,
            create,
            br#"{"message":}"#.to_vec(),
            400,
            NOT_JSON,
        ),
        (
            "trailing garbage",
            M::POST,
            create,
            br#"{"message":"a"} x"#.to_vec(),
            400,
            NOT_JSON,
        ),
        (
            "single quotes",
            M::POST,
            create,
            b"{'message':'a'}".to_vec(),
            400,
            NOT_JSON,
        ),
        (
            "deep array",
            M::POST,
            create,
            deep.into_bytes(),
            400,
            NOT_JSON,
        ),
        (
            "deep object",
            M::POST,
            create,
            deep_object.into_bytes(),
            400,
            NOT_JSON,
        ),
        (
            "duplicate key",
            M::PUT,
            update,
            br#"{"status":"PENDING","status":"FAILED"}"#.to_vec(),
            400,
            "given more than once",
        ),
        (
            "duplicate message",
            M::POST,
            create,
            br#"{"message":"a","message":"b"}"#.to_vec(),
            400,
            "given more than once",
        ),
        (
            "array body",
            M::POST,
            create,
            b"[]".to_vec(),
            400,
            "JSON object",
        ),
        (
            "string body",
            M::POST,
            create,
            br#""hello""#.to_vec(),
            400,
            "JSON object",
        ),
        (
            "number body",
            M::PUT,
            update,
            b"42".to_vec(),
            400,
            "JSON object",
        ),
        (
            "null body",
            M::PUT,
            update,
            b"null".to_vec(),
            400,
            "JSON object",
        ),
        (
            "invalid UTF-8",
            M::POST,
            create,
            b"{\"message\":\"\xff\xfe\"}".to_vec(),
            400,
            NOT_JSON,
        ),
        (
            "lone surrogate",
            M::POST,
            create,
            br#"{"message":"\ud800"}"#.to_vec(),
            400,
            NOT_JSON,
        ),
        (
            "NUL in message",
            M::POST,
            create,
            br#"{"message":"a\u0000b"}"#.to_vec(),
            400,
            "'message'",
        ),
        (
            "raw control byte",
            M::POST,
            create,
            b"{\"message\":\"a\x01b\"}".to_vec(),
            400,
            NOT_JSON,
        ),
        (
            "message too long",
            M::POST,
            create,
            format!(r#"{{"message":"{}"}}"#, "m".repeat(70_000)).into_bytes(),
            400,
            "'message'",
        ),
        (
            "message a number",
            M::POST,
            create,
            br#"{"message":1}"#.to_vec(),
            400,
            "'message' must be a string",
        ),
        (
            "message an object",
            M::PUT,
            update,
            br#"{"status":"PENDING","message":{}}"#.to_vec(),
            400,
            "'message' must be a string",
        ),
        (
            "status a number",
            M::PUT,
            update,
            br#"{"status":2}"#.to_vec(),
            400,
            "'status' must be a string",
        ),
        (
            "status null",
            M::PUT,
            update,
            br#"{"status":null}"#.to_vec(),
            400,
            "'status' is required",
        ),
        (
            "status empty",
            M::PUT,
            update,
            br#"{"status":""}"#.to_vec(),
            400,
            "'status'",
        ),
        (
            "status lower-case",
            M::PUT,
            update,
            br#"{"status":"failed"}"#.to_vec(),
            400,
            "'status'",
        ),
        (
            "status unknown",
            M::PUT,
            update,
            br#"{"status":"CANCELLED"}"#.to_vec(),
            400,
            "'status'",
        ),
        (
            "status with space",
            M::PUT,
            update,
            br#"{"status":"FAILED "}"#.to_vec(),
            400,
            "'status'",
        ),
        ("empty update", M::PUT, update, b"".to_vec(), 400, NOT_JSON),
        (
            "login u an object",
            M::POST,
            "/api/4.0/user/login",
            br#"{"u":{},"p":"x"}"#.to_vec(),
            400,
            "'u' must be a string",
        ),
        (
            "login p an array",
            M::POST,
            "/api/4.0/user/login",
            br#"{"u":"admin","p":["x"]}"#.to_vec(),
            400,
            "'p' must be a string",
        ),
        (
            "login form body",
            M::POST,
            "/api/4.0/user/login",
            b"u=admin&p=x".to_vec(),
            400,
            NOT_JSON,
        ),
        (
            "body over the limit",
            M::POST,
            create,
            vec![b' '; 1_100_000],
            413,
            "larger than the limit",
        ),
    ] {
        cases.push(case(&format!("json: {name}"), method, path, status, Some(alert)).body(body));
    }
    let get = "/api/4.0/async_status/1";
    for (name, header, value, status, alert) in [
        (
            "Prefer wait not a number",
            "prefer",
            &b"wait=soon"[..],
            400,
            Some("Prefer: wait"),
        ),
        (
            "Prefer wait negative",
            "prefer",
            b"wait=-5",
            400,
            Some("Prefer: wait"),
        ),
        (
            "Prefer wait fraction",
            "prefer",
            b"wait=0.5",
            400,
            Some("Prefer: wait"),
        ),
        (
            "Prefer waits conflict",
            "prefer",
            b"wait=1, wait=9",
            400,
            Some("Prefer: wait"),
        ),
        (
            "Prefer wait overflow",
            "prefer",
            b"wait=99999999999999999999999",
            400,
            Some("Prefer: wait"),
        ),
        (
            "Prefer non-ASCII",
            "prefer",
            b"wait=\xff",
            400,
            Some("Prefer"),
        ),
        (
            "Accept-Encoding refuses all",
            "accept-encoding",
            b"identity;q=0",
            406,
            Some("Accept-Encoding"),
        ),
        (
            "Accept-Encoding refuses gzip and all",
            "accept-encoding",
            b"gzip;q=0, *;q=0",
            406,
            Some("Accept-Encoding"),
        ),
        (
            "If-None-Match garbage is ignored",
            "if-none-match",
            b"\"unterminated",
            200,
            None,
        ),
        (
            "If-Modified-Since garbage is ignored",
            "if-modified-since",
            b"yesterday",
            200,
            None,
        ),
        (
            "Accept-Encoding garbage falls back to identity",
            "accept-encoding",
            b"%%%;q=x",
            200,
            None,
        ),
        (
            "Content-Type nonsense is ignored",
            "content-type",
            b"image/png",
            200,
            None,
        ),
    ] {
        cases.push(
            case(&format!("header: {name}"), Method::GET, get, status, alert).header(header, value),
        );
    }
    // The lifecycle's fields, parameters and route.
    let create = "/api/4.0/async_status";
    let deep_labels = format!(
        "{{\"labels\":{}1{}}}",
        "{\"a\":".repeat(200),
        "}".repeat(200)
    );
    for (name, body, alert) in [
        (
            "labels nested deep",
            deep_labels,
            "recursion limit exceeded",
        ),
        (
            "labels not an object",
            r#"{"labels":"cdn=cdn1"}"#.to_owned(),
            "'labels'",
        ),
        (
            "labels null value",
            r#"{"labels":{"a":null}}"#.to_owned(),
            "'labels.a'",
        ),
        (
            "kind with NUL",
            r#"{"kind":"a\u0000b"}"#.to_owned(),
            "'kind'",
        ),
        ("key with newline", r#"{"key":"a\nb"}"#.to_owned(), "'key'"),
        (
            "key a number",
            r#"{"key":7}"#.to_owned(),
            "'key' must be a string",
        ),
        (
            "timeout huge",
            r#"{"timeout":1e308}"#.to_owned(),
            "'timeout' must be at least",
        ),
        (
            "timeout NaN text",
            r#"{"timeout":"NaN"}"#.to_owned(),
            "'timeout' must be a number",
        ),
        (
            "timeout overflowing text",
            r#"{"timeout":"99999999999999999999y"}"#.to_owned(),
            "'timeout'",
        ),
        (
            "heartbeat_timeout array",
            r#"{"heartbeat_timeout":[1]}"#.to_owned(),
            "'heartbeat_timeout'",
        ),
    ] {
        cases.push(
            case(
                &format!("create: {name}"),
                M::POST,
                create,
                400,
                Some(alert),
            )
            .body(body),
        );
    }
    cases.push(
        case(
            "Idempotency-Key not ASCII",
            M::POST,
            create,
            400,
            Some("Idempotency-Key"),
        )
        .header("idempotency-key", b"\xff\xfe".to_vec())
        .body("{}"),
    );
    for (name, body, alert) in [
        (
            "progress as text",
            r#"{"status":"PENDING","progress":"1/3"}"#,
            "'progress'",
        ),
        (
            "progress huge",
            r#"{"status":"PENDING","progress":{"done":1e30,"total":1}}"#,
            "'progress.done'",
        ),
        (
            "progress missing total",
            r#"{"status":"PENDING","progress":{"done":1}}"#,
            "'progress'",
        ),
    ] {
        cases.push(
            case(
                &format!("update: {name}"),
                M::PUT,
                "/api/4.0/async_status/1",
                400,
                Some(alert),
            )
            .body(body),
        );
    }
    for (name, path, status, alert) in [
        ("cancel id", "/api/4.0/async_status/x/cancel", 400, NOT_INT),
        (
            "cancel id overflow",
            "/api/4.0/async_status/99999999999999999999/cancel",
            400,
            NOT_INT,
        ),
        (
            "cancel a missing job",
            "/api/4.0/async_status/424242/cancel",
            404,
            "not found",
        ),
    ] {
        cases.push(case(name, M::POST, path, status, Some(alert)));
    }
    cases.push(
        case(
            "cancel body not JSON",
            M::POST,
            "/api/4.0/async_status/1/cancel",
            400,
            Some(NOT_JSON),
        )
        .body("reason=stuck"),
    );
    for (query, alert) in [
        ("label=%00:%00", "'label'"),
        ("label=a:%00", "'label'"),
        ("newerThan=99999-01-01T00:00:00Z", "'newerThan'"),
        ("olderThan=%FF", "'olderThan'"),
        ("created_by=%07", "'created_by'"),
        ("kind=%E2%80%8B", "'kind'"),
    ] {
        cases.push(case(
            &format!("list {query}"),
            M::GET,
            &format!("/api/4.0/async_status?{query}"),
            400,
            Some(alert),
        ));
    }
    cases
}

async fn run(app: &TestApp, token: &str, c: &Case) -> (u16, Value) {
    let mut req = reqwest::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .request(c.method.clone(), format!("{}{}", app.address, c.path));
    if c.auth {
        req = req.bearer_auth(token);
    }
    for (name, value) in &c.headers {
        req = req.header(
            name.as_str(),
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    if let Some(body) = &c.body {
        req = req.body(body.clone());
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Raw bytes to the port; returns the status code of the answer (0 when none came).
async fn raw(app: &TestApp, request: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

async fn every_bad_request_gets_its_4xx_and_never_a_5xx(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app
        .token(crate::helpers::ADMIN, crate::helpers::ADMIN_PASSWORD)
        .await;
    app.login_admin().await;
    let job = app.create_job("target").await;
    assert_eq!(job, 1, "the corpus aims at job 1");
    let cases = corpus();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let (status, body) = run(&app, &token, c).await;
        let text = body["alerts"][0]["text"].as_str().unwrap_or_default();
        let ok = status == c.status
            && match c.alert {
                Some(part) => body["alerts"][0]["level"] == "error" && text.contains(part),
                None => true,
            };
        let unexpected_5xx = status >= 500 && c.status < 500;
        if !ok || unexpected_5xx {
            failures.push(format!(
                "{}: got {status} {body}, want {} {:?}",
                c.name, c.status, c.alert
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Below the application: the HTTP layer refuses these before any route sees them.
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (name, request) in [
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
        ("NUL in the request line", b"GET /api/4.0/ping\x00 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("header without a colon", b"GET /api/4.0/ping HTTP/1.1\r\nHost x\r\n\r\n".to_vec()),
        ("unparsable Content-Length", b"POST /api/4.0/user/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec()),
        ("two different Content-Lengths", b"POST /api/4.0/user/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec()),
        ("too many headers", format!("GET /api/4.0/ping HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes()),
        ("an enormous header", format!("GET /api/4.0/ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000)).into_bytes()),
    ] {
        let status = raw(&app, &request).await;
        assert!((400..500).contains(&status), "{name}: answered {status}");
    }

    let r = reqwest::get(app.api("/ping")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "still serving");
    let r = app.get(app.api("/async_status/1")).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["response"]["status"], "PENDING",
        "nothing the corpus sent changed the job"
    );
    assert_eq!(body["response"]["message"], "target");
}

crate::both_backends!(every_bad_request_gets_its_4xx_and_never_a_5xx);
