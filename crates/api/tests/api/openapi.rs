//! The OpenAPI document (`docs/openapi.json`): the one the code generates, served as it is in
//! the repository, well formed, in agreement with the routes the application really has, and
//! describing its real answers (status, headers and body schema of each).

use std::collections::BTreeSet;
use std::time::Duration;

use asyncstatus_persistence::Backend;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::helpers::{TestApp, ADMIN, ADMIN_PASSWORD};

/// The methods an OpenAPI path item can hold; every documented path is probed with each.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE",
];

/// The document as it is in the repository.
fn repository_document() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    std::fs::read_to_string(path).expect("docs/openapi.json is readable")
}

#[test]
fn the_committed_document_is_the_one_the_code_generates() {
    assert!(
        asyncstatus_api::openapi_document() == repository_document(),
        "docs/openapi.json differs from the code: run `make openapi`"
    );
}

/// Whether a concrete path falls under a path template, where `{name}` matches one non-empty
/// segment.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

/// OpenAPI 3.0 schema → JSON Schema (draft 4): `nullable: true` becomes a `null` type (and a
/// `null` in `enum`); OpenAPI's own keywords (`example`, `readOnly`, …) are dropped. `enum`
/// and `default` hold data, not schemas, and are copied as they are.
fn json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                match key.as_str() {
                    "nullable" | "example" | "discriminator" | "xml" | "externalDocs"
                    | "deprecated" | "readOnly" | "writeOnly" => {}
                    "enum" | "default" => {
                        out.insert(key.clone(), value.clone());
                    }
                    "properties" => {
                        let properties = value
                            .as_object()
                            .expect("properties is an object")
                            .iter()
                            .map(|(name, s)| (name.clone(), json_schema(s)))
                            .collect();
                        out.insert(key.clone(), Value::Object(properties));
                    }
                    _ => {
                        out.insert(key.clone(), json_schema(value));
                    }
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), json!([t, "null"]));
                }
                if let Some(Value::Array(values)) = out.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

/// Every `$ref` in `value`, with the JSON pointer of where it stands.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    out.push((at.to_owned(), v.as_str().unwrap_or_default().to_owned()));
                } else {
                    let escaped = key.replace('~', "~0").replace('/', "~1");
                    refs(v, &format!("{at}/{escaped}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The document, and checks of real answers against it.
struct Contract {
    doc: Value,
}

impl Contract {
    fn load() -> Contract {
        Contract {
            doc: serde_json::from_str(&repository_document()).expect("docs/openapi.json is JSON"),
        }
    }

    fn paths(&self) -> &Map<String, Value> {
        self.doc["paths"].as_object().expect("paths is an object")
    }

    /// `value`, or what its `$ref` (local, possibly chained) points at.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(target) = value.get("$ref").and_then(Value::as_str) {
            let pointer = target.strip_prefix('#').expect("a local $ref");
            value = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("$ref {target} resolves"));
        }
        value
    }

    /// The methods the document lists for a path template, upper case.
    fn methods(&self, template: &str) -> BTreeSet<String> {
        self.paths()[template]
            .as_object()
            .expect("a path item is an object")
            .keys()
            .filter(|k| METHODS.contains(&k.to_uppercase().as_str()))
            .map(|k| k.to_uppercase())
            .collect()
    }

    /// The path parameters of a path item (path level and operation level), resolved.
    fn path_parameters<'a>(
        &'a self,
        item: &'a Value,
        operation: Option<&'a Value>,
    ) -> Vec<&'a Value> {
        let mut all: Vec<&Value> = Vec::new();
        for holder in [Some(item), operation].into_iter().flatten() {
            if let Some(list) = holder.get("parameters").and_then(Value::as_array) {
                all.extend(list.iter().map(|p| self.resolve(p)));
            }
        }
        all.into_iter().filter(|p| p["in"] == "path").collect()
    }

    /// The concrete paths of a template: each `{version}` of its enum, `1` for an integer.
    fn concrete_paths(&self, template: &str) -> Vec<String> {
        let item = &self.paths()[template];
        let mut paths = vec![template.to_owned()];
        for parameter in self.path_parameters(item, None) {
            let name = parameter["name"].as_str().expect("a parameter name");
            let schema = self.resolve(&parameter["schema"]);
            let values: Vec<String> = match schema.get("enum").and_then(Value::as_array) {
                Some(values) => values
                    .iter()
                    .map(|v| v.as_str().expect("string enum").to_owned())
                    .collect(),
                None => {
                    assert_eq!(schema["type"], "integer", "{template}: {name}");
                    vec!["1".to_owned()]
                }
            };
            paths = paths
                .iter()
                .flat_map(|p| {
                    values
                        .iter()
                        .map(move |v| p.replace(&format!("{{{name}}}"), v))
                })
                .collect();
        }
        paths
    }

    /// The template of the document that a concrete path falls under. As OpenAPI says, a
    /// concrete segment is matched before a templated one (`async_status/events` before
    /// `async_status/{id}`): of the templates that match, the one with the fewest templated
    /// segments.
    fn template_of(&self, path: &str) -> &str {
        let templated = |t: &str| t.split('/').filter(|s| s.starts_with('{')).count();
        let found: Vec<&String> = self.paths().keys().filter(|t| matches(t, path)).collect();
        let fewest = found.iter().map(|t| templated(t)).min().unwrap_or(0);
        let found: Vec<&String> = found
            .into_iter()
            .filter(|t| templated(t) == fewest)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "exactly one documented path matches {path} best: {found:?}"
        );
        found[0]
    }

    /// A JSON Schema validator of an OpenAPI schema; `$ref`s to `#/components/schemas/…`
    /// resolve within it.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let root = json!({
            "allOf": [json_schema(schema)],
            "components": {"schemas": json_schema(&self.doc["components"]["schemas"])},
        });
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {schema} compiles: {e}"))
    }

    fn assert_valid(&self, schema: &Value, instance: &Value, what: &str) {
        let validator = self.validator(schema);
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: {instance} does not match {schema}: {errors:?}"
        );
    }

    /// Checks a real answer to `method` against the operation the document gives for its path:
    /// the status is documented, the documented headers are there and match their schemas,
    /// the content type is documented and the body matches its schema. Returns the body
    /// (`Value::Null` when there is none).
    async fn check(&self, method: &str, r: Response) -> Value {
        let path = r.url().path().to_owned();
        let template = self.template_of(&path).to_owned();
        let operation = self.paths()[&template]
            .get(method.to_lowercase())
            .unwrap_or_else(|| panic!("{method} {template} is documented"));
        let status = r.status().as_str().to_owned();
        let response = operation["responses"].get(&status).unwrap_or_else(|| {
            panic!(
                "{method} {path} answered {status}, which {template} does not document: {}",
                r.status()
            )
        });
        let what = format!("{method} {path} {status}");
        self.check_response(self.resolve(response), r, &what).await
    }

    /// Checks a real answer against a documented response object.
    async fn check_response(&self, response: &Value, r: Response, what: &str) -> Value {
        let headers = r.headers().clone();
        if let Some(documented) = response.get("headers").and_then(Value::as_object) {
            for (name, header) in documented {
                let header = self.resolve(header);
                let Some(value) = headers.get(name.as_str()) else {
                    assert_ne!(
                        header["required"], true,
                        "{what}: required header {name} is missing"
                    );
                    continue;
                };
                let value = value.to_str().expect("a visible ASCII header");
                let schema = self.resolve(&header["schema"]);
                let instance = if schema["type"] == "integer" {
                    json!(value
                        .parse::<i64>()
                        .unwrap_or_else(|_| panic!("{what}: {name}: {value} is an integer")))
                } else {
                    json!(value)
                };
                self.assert_valid(schema, &instance, &format!("{what}: header {name}"));
            }
        }
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = r.bytes().await.expect("a body");
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            assert!(body.is_empty(), "{what}: no body is documented");
            return Value::Null;
        };
        let content_type = content_type.unwrap_or_else(|| panic!("{what}: a Content-Type"));
        let essence = |t: &str| t.split(';').next().unwrap_or_default().trim().to_owned();
        let (media, entry) = content
            .iter()
            .find(|(media, _)| essence(media) == essence(&content_type))
            .unwrap_or_else(|| panic!("{what}: {content_type} is documented"));
        for parameter in media.split(';').skip(1) {
            assert!(
                content_type.contains(parameter.trim()),
                "{what}: {content_type} carries {parameter}"
            );
        }
        let instance: Value = if essence(media) == "application/json" {
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{what}: JSON body: {e}"))
        } else {
            Value::String(String::from_utf8(body.to_vec()).expect("a UTF-8 body"))
        };
        self.assert_valid(self.resolve(&entry["schema"]), &instance, what);
        instance
    }

    /// Checks an answer against a response of `#/components/responses`.
    async fn check_component(&self, name: &str, r: Response) -> Value {
        let what = format!("{} {}", r.url().path(), r.status());
        let response = &self.doc["components"]["responses"][name];
        assert!(response.is_object(), "components/responses/{name} exists");
        self.check_response(response, r, &what).await
    }
}

async fn the_served_document_is_the_one_in_the_repository_and_is_well_formed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let r = reqwest::get(format!("{}/api/openapi.json", app.address))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served = r.text().await.unwrap();
    assert_eq!(served, format!("{}\n", repository_document().trim_end()));

    let contract = Contract::load();
    let doc = &contract.doc;
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["info"]["title"], "asyncstatus");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(!contract.paths().is_empty());

    let mut references = Vec::new();
    refs(doc, "#", &mut references);
    assert!(references.len() > 50, "the document uses its components");
    for (at, target) in &references {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: $ref {target} is local"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: $ref {target} resolves"
        );
    }

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(
        schemes.keys().collect::<Vec<_>>(),
        ["bearerAuth", "cookieAuth"]
    );
    assert_eq!(schemes["cookieAuth"]["in"], "cookie");
    assert_eq!(schemes["cookieAuth"]["name"], "access_token");
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");

    let mut operation_ids = BTreeSet::new();
    for (template, item) in contract.paths() {
        assert!(template.starts_with('/'), "{template}");
        let methods = contract.methods(template);
        assert!(!methods.is_empty(), "{template} has operations");
        for method in &methods {
            let operation = &item[method.to_lowercase()];
            let id = operation["operationId"].as_str().unwrap();
            assert!(operation_ids.insert(id), "operationId {id} is unique");
            for requirement in operation
                .get("security")
                .or(doc.get("security"))
                .and_then(Value::as_array)
                .unwrap()
            {
                for scheme in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(scheme), "{id}: scheme {scheme}");
                }
            }
            let declared: BTreeSet<String> = contract
                .path_parameters(item, Some(operation))
                .iter()
                .inspect(|p| assert_eq!(p["required"], true, "{id}: path parameters are required"))
                .map(|p| format!("{{{}}}", p["name"].as_str().unwrap()))
                .collect();
            let in_template: BTreeSet<String> = template
                .split('/')
                .filter(|s| s.starts_with('{'))
                .map(str::to_owned)
                .collect();
            assert_eq!(declared, in_template, "{id}: path parameters");
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{id} has responses");
            for (status, response) in responses {
                assert!(
                    status.len() == 3 && status.parse::<u16>().is_ok(),
                    "{id}: status {status}"
                );
                let response = contract.resolve(response);
                assert!(response["description"].is_string(), "{id} {status}");
                for entry in response
                    .get("content")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|c| c.values())
                {
                    contract.validator(contract.resolve(&entry["schema"]));
                }
            }
        }
    }
    let job = json!({"id": 1, "status": "PENDING", "start_time": "2021-02-18T17:13:56.352261Z", "end_time": null, "message": "Async job has started."});
    let job_schema = &doc["components"]["schemas"]["Job"];
    contract.assert_valid(job_schema, &job, "the reference page's job");
    for (key, bad) in [
        ("id", json!("1")),
        ("status", json!("DONE")),
        ("start_time", json!("yesterday")),
        ("end_time", json!(5)),
        ("message", json!(["a"])),
    ] {
        let mut wrong = job.clone();
        wrong[key] = bad;
        assert!(
            !contract.validator(job_schema).is_valid(&wrong),
            "{key}: {wrong}"
        );
        let mut missing = job.clone();
        missing.as_object_mut().unwrap().remove(key);
        assert!(
            !contract.validator(job_schema).is_valid(&missing),
            "{key} is required"
        );
    }
}

async fn every_documented_operation_is_served_and_every_other_method_answers_405(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let contract = Contract::load();
    let client = reqwest::Client::new();
    let mut probed = 0;
    for template in contract.paths().keys() {
        let documented = contract.methods(template);
        for path in contract.concrete_paths(template) {
            for method in METHODS {
                let r = client
                    .request(
                        Method::from_bytes(method.as_bytes()).unwrap(),
                        format!("{}{path}", app.address),
                    )
                    .send()
                    .await
                    .unwrap();
                probed += 1;
                if documented.contains(method) {
                    assert_ne!(
                        r.status(),
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path}"
                    );
                    let body = contract.check(method, r).await;
                    assert!(
                        !body["alerts"][0]["text"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("does not exist"),
                        "{method} {path} is served: {body}"
                    );
                } else {
                    assert_eq!(
                        r.status(),
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path}"
                    );
                    let allow: BTreeSet<String> = r.headers()["allow"]
                        .to_str()
                        .unwrap()
                        .split(", ")
                        .map(str::to_owned)
                        .collect();
                    assert_eq!(allow, documented, "Allow of {path}");
                    if method != "HEAD" {
                        let body = contract.check_component("MethodNotAllowed", r).await;
                        assert_eq!(
                            body["alerts"][0]["text"],
                            format!(
                                "method {method} is not allowed here; allowed: {}",
                                allow_text(&documented)
                            )
                        );
                    }
                }
            }
        }
    }
    // 3 versions × 8 API paths, and 4 paths outside /api/{version}.
    assert_eq!(
        probed,
        METHODS.len() * (3 * 8 + 4),
        "every documented path was probed"
    );
}

/// The `Allow` value the service sends for a set of methods, in its own order.
fn allow_text(methods: &BTreeSet<String>) -> String {
    ["GET", "PUT", "POST", "DELETE"]
        .into_iter()
        .filter(|m| methods.contains(*m))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn undocumented_paths_answer_404(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let contract = Contract::load();
    for path in [
        "/api/4.0/nope",
        "/api/4.0/openapi.json",
        "/api/4.0/healthz",
        "/api/4.0/metrics",
        "/api/4.0/user",
        "/api/4.0/async_status/1/extra",
        "/api/4.0/async_status/",
        "/openapi.json",
        "/metrics/extra",
    ] {
        let documented = contract.paths().keys().filter(|t| matches(t, path)).count();
        assert_eq!(documented, 0, "{path} is not in the document");
        let r = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let body = contract.check_component("NoSuchPath", r).await;
        assert_eq!(
            body,
            json!({"alerts": [{"level": "error", "text": format!("The requested path '{path}' does not exist.")}]})
        );
    }
}

/// Sends a request and checks its answer against the document; returns the status, the body
/// (`Value::Null` when there is none) and the headers.
async fn call(
    contract: &Contract,
    request: reqwest::RequestBuilder,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let (client, request) = request.build_split();
    let request = request.unwrap();
    let method = request.method().as_str().to_owned();
    let r = client.execute(request).await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let body = contract.check(&method, r).await;
    (status, body, headers)
}

async fn real_answers_match_the_documented_schemas(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.server.max_body_bytes = 2048).await else {
        return;
    };
    let contract = Contract::load();
    let c = &contract;
    let anonymous = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", app.address);

    for version in ["4.0", "4.1", "5.0"] {
        let (status, body, _) = call(c, anonymous.get(url(&format!("/api/{version}/ping")))).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"ping": "pong"})));
    }
    let (status, body, _) = call(c, anonymous.get(url("/api/9.0/ping"))).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert_eq!(
        call(c, anonymous.get(url("/healthz"))).await.1,
        json!({"status": "ok"})
    );
    assert_eq!(
        call(c, anonymous.get(url("/readyz"))).await.1,
        json!({"status": "ready"})
    );
    let (_, document, _) = call(c, anonymous.get(url("/api/openapi.json"))).await;
    assert_eq!(document, contract.doc);

    // Logging in: bad bodies, bad credentials, then the admin.
    let login = || app.client.post(app.api("/user/login"));
    let (status, _, _) = call(c, login().body("u=admin")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body, _) = call(c, login().json(&json!({"u": ADMIN}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["alerts"][0]["text"],
        "username and password are required"
    );
    let (status, body, _) = call(c, login().json(&json!({"u": ADMIN, "p": "wrong"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["alerts"][0]["text"], "Invalid username or password.");
    let (status, _, _) = call(
        c,
        login().body(format!("{{\"u\":\"{}\"}}", "x".repeat(4096))),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body, headers) =
        call(c, login().json(&json!({"u": ADMIN, "p": ADMIN_PASSWORD}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["alerts"][0]["text"], "Successfully logged in.");
    assert!(headers.contains_key("set-cookie"));

    let (status, body, _) = call(c, app.client.get(app.api("/user/current"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response"]["username"], ADMIN);

    // 401 and 403.
    let (status, _, _) = call(c, anonymous.get(app.api("/async_status/1"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(c, anonymous.get(app.api("/user/current"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.add_user("viewer", "viewer-password", "read-only").await;
    let viewer = app.token("viewer", "viewer-password").await;
    let (status, body, _) = call(
        c,
        anonymous.get(app.api("/async_status")).bearer_auth(&viewer),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["alerts"][0]["text"],
        "missing required Permissions: ASYNC-STATUS:READ"
    );
    let (status, _, _) = call(
        c,
        anonymous
            .post(app.api("/async_status"))
            .bearer_auth(&viewer),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(
        c,
        anonymous
            .delete(app.api("/async_status/1"))
            .bearer_auth(&viewer),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A job's life: create, heartbeat, conditional GET, finish, conflict.
    let (status, body, headers) = call(
        c,
        app.client
            .post(format!("{}/api/5.0/async_status", app.address))
            .json(&json!({"message": "started"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["response"]["id"].as_i64().unwrap();
    assert_eq!(
        headers["location"],
        format!("/api/5.0/async_status/{id}").as_str()
    );
    let (status, body, _) = call(c, app.client.post(app.api("/async_status"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["response"]["message"], Value::Null);
    let job = app.api(&format!("/async_status/{id}"));
    let (status, body, headers) = call(
        c,
        app.client
            .put(&job)
            .json(&json!({"status": "PENDING", "message": "half way"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response"]["message"], "half way");
    assert_eq!(headers["retry-after"], "5");
    let (status, body, headers) = call(c, app.client.get(&job)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response"]["end_time"], Value::Null);
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (status, body, headers) =
        call(c, app.client.get(&job).header("if-none-match", &etag)).await;
    assert_eq!((status, body), (StatusCode::NOT_MODIFIED, Value::Null));
    assert_eq!(headers["etag"], etag.as_str());
    let (status, _, headers) = call(c, app.client.get(&job).header("prefer", "wait=0")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["preference-applied"], "wait=0");
    let (status, body, headers) = call(
        c,
        app.client.put(&job).json(&json!({"status": "SUCCEEDED"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response"]["status"], "SUCCEEDED");
    assert_eq!(body["response"]["message"], "half way");
    assert!(body["response"]["end_time"].is_string());
    assert!(
        !headers.contains_key("retry-after"),
        "a finished job has no poll hint"
    );
    let (status, body, _) = call(c, app.client.put(&job).json(&json!({"status": "FAILED"}))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["alerts"][0]["text"],
        "async status is already SUCCEEDED and can no longer be changed"
    );
    let (status, body, _) =
        call(c, app.client.get(app.api("/async_status?status=SUCCEEDED"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["summary"]["count"], 1);
    assert_eq!(body["response"][0]["id"], id);
    let (status, body, _) = call(
        c,
        app.client
            .get(app.api("/async_status?orderby=end_time&sortOrder=desc&limit=1&page=2")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["summary"]["count"], 2);

    // 400s.
    for bad in [
        "/async_status?limit=0",
        "/async_status?limit=1001",
        "/async_status?status=DONE",
        "/async_status/abc",
        "/async_status/1.5",
    ] {
        let (status, _, _) = call(c, app.client.get(app.api(bad))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _, _) = call(c, app.client.get(&job).header("prefer", "wait=soon")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for bad in [
        json!({"status": "DONE"}),
        json!({"message": "no status"}),
        json!({"status": 1}),
    ] {
        let (status, _, _) = call(c, app.client.put(&job).json(&bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _, _) = call(c, app.client.post(app.api("/async_status")).body("[]")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = call(
        c,
        app.client
            .put(app.api("/async_status/x"))
            .json(&json!({"status": "FAILED"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = call(c, app.client.delete(app.api("/async_status/x"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 413.
    let big = json!({"message": "m".repeat(4096)});
    let (status, _, _) = call(c, app.client.post(app.api("/async_status")).json(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, _) = call(c, app.client.put(&job).json(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // 404s, delete, 405, logout.
    let missing = app.api("/async_status/987654321");
    let (status, body, _) = call(c, app.client.get(&missing)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["alerts"][0]["text"], "async status not found");
    let (status, _, _) = call(
        c,
        app.client.put(&missing).json(&json!({"status": "FAILED"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body, _) = call(c, app.client.delete(&job)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["alerts"][0]["text"],
        format!("Async job {id} deleted.")
    );
    let (status, _, _) = call(c, app.client.delete(&job)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = app.client.patch(&job).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    contract.check_component("MethodNotAllowed", r).await;
    let (status, body, headers) = call(c, app.client.post(app.api("/user/logout"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["alerts"][0]["text"], "You are logged out.");
    assert!(headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("access_token=;"));
    let (status, _, _) = call(c, anonymous.post(app.api("/user/logout"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let r = anonymous.get(url("/metrics")).send().await.unwrap();
    let metrics = contract.check("GET", r).await;
    assert!(
        metrics.as_str().unwrap().contains("# TYPE "),
        "Prometheus text"
    );

    // 406: an Accept-Encoding that refuses everything the server can send.
    let refusing = reqwest::Client::builder().no_gzip().build().unwrap();
    for path in ["/api/4.0/ping", "/healthz", "/metrics"] {
        let (status, body, _) = call(
            c,
            refusing
                .get(url(path))
                .header("accept-encoding", "identity;q=0"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE, "{path}: {body}");
    }
}

async fn throttled_logins_and_an_unavailable_database_answer_as_documented(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| {
        s.auth.login_max_failures = 3;
        s.database.pool_size = 1;
        s.database.checkout_timeout = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let contract = Contract::load();
    let c = &contract;
    app.login_admin().await;
    let id = app.create_job("held").await;

    let guard = app.hold_connection().await;
    let (status, _, headers) =
        call(c, app.client.get(app.api(&format!("/async_status/{id}")))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    let (status, _, _) = call(c, app.client.get(app.api("/async_status"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = call(
        c,
        reqwest::Client::new().get(format!("{}/readyz", app.address)),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    drop(guard);

    let login = || {
        reqwest::Client::new()
            .post(app.api("/user/login"))
            .json(&json!({"u": "nobody", "p": "guess"}))
    };
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(call(c, login()).await.0);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

crate::both_backends!(
    the_served_document_is_the_one_in_the_repository_and_is_well_formed,
    every_documented_operation_is_served_and_every_other_method_answers_405,
    undocumented_paths_answer_404,
    real_answers_match_the_documented_schemas,
    throttled_logins_and_an_unavailable_database_answer_as_documented,
);

/// The answers of the exhaustion defences (a long poll past its user's cap, a full login
/// queue) are the documented ones.
#[actix_web::test]
async fn a_capped_long_poll_and_a_full_login_queue_answer_as_documented() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.jobs.max_waiters_per_user = 1;
        s.auth.login_queue = 1;
    })
    .await
    else {
        return;
    };
    let contract = Contract::load();
    let c = &contract;
    app.login_admin().await;
    let id = app.create_job("held").await;
    let job = app.api(&format!("/async_status/{id}"));
    let (client, url) = (app.client.clone(), job.clone());
    let parked =
        actix_web::rt::spawn(
            async move { client.get(url).header("prefer", "wait=30").send().await },
        );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.state.waiters.len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiter never parked"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body, headers) = call(c, app.client.get(&job).header("prefer", "wait=30")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response"]["status"], "PENDING");
    assert!(headers.get("preference-applied").is_none());
    parked.abort();

    let slots = app.state.login_slots.semaphore().clone();
    let all = u32::try_from(slots.available_permits()).unwrap();
    let held = slots.acquire_many_owned(all).await.unwrap();
    let login = || {
        reqwest::Client::new()
            .post(app.api("/user/login"))
            .json(&json!({"u": ADMIN, "p": ADMIN_PASSWORD}))
    };
    let queued = actix_web::rt::spawn(login().send());
    while app.state.login_slots.waiting() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the login never queued"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, body, headers) = call(c, login()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["retry-after"], "1");
    drop(held);
    assert_eq!(queued.await.unwrap().unwrap().status(), StatusCode::OK);
}
