//! A stand-in for the service: a few lines of HTTP/1.1 that keep jobs in memory and follow the
//! job lifecycle's wire contract (the keys, `PUT` answering the job, `POST …/cancel`), and
//! record every request body. It lets the client's side of that contract — what `run` sends,
//! and what it does with the answers — be checked exactly, apart from the real service's own
//! behaviour (which the other tests run against).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};

use serde_json::{json, Value};

/// One request the stand-in received: method, path and JSON body (`null` when none).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<i64, Value>,
    requests: Vec<Request>,
    /// The open event streams: each gets every event's text.
    streams: Vec<mpsc::Sender<String>>,
}

impl State {
    /// Sends an event to every open stream.
    fn publish(&mut self, name: &str, data: &Value) {
        let text = format!("event: {name}\ndata: {data}\n\n");
        self.streams
            .retain(|stream| stream.send(text.clone()).is_ok());
    }
}

pub struct StandIn {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl StandIn {
    pub fn start() -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        StandIn { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `asyncstatus` command, pointed at the stand-in.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_asyncstatus"));
        cmd.env("ASYNCSTATUS_URL", self.url())
            .env("ASYNCSTATUS_USER", "admin")
            .env("ASYNCSTATUS_PASSWORD", "whatever")
            .env_remove("ASYNCSTATUS_TOKEN")
            .env_remove("ASYNCSTATUS_API_VERSION")
            .stdin(Stdio::null());
        cmd
    }

    pub fn job(&self, id: i64) -> Value {
        self.state.lock().unwrap().jobs[&id].clone()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many event streams are open.
    pub fn streams(&self) -> usize {
        self.state.lock().unwrap().streams.len()
    }

    /// Ends every event stream (as the service does when it shuts down).
    pub fn close_streams(&self) {
        self.state.lock().unwrap().streams.clear();
    }
}

/// `GET …/events`: a comment, then every event published, until the stream is closed.
fn stream_events(mut writer: TcpStream, state: &Mutex<State>) {
    let (tx, rx) = mpsc::channel();
    state.lock().unwrap().streams.push(tx);
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n: stream open\n\n";
    if writer.write_all(head.as_bytes()).is_err() {
        return;
    }
    for text in rx {
        if writer.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = match (parts.next(), parts.next()) {
            (Some(m), Some(p)) => (m.to_owned(), p.to_owned()),
            _ => return,
        };
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if method == "GET" && path.starts_with("/api/4.0/async_status/events") {
            state
                .lock()
                .unwrap()
                .requests
                .push(Request { method, path, body });
            stream_events(writer, state);
            return;
        }
        let (status, headers, answer) = answer(state, &method, &path, &body);
        let text = answer.to_string();
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            text.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(text.as_bytes()).is_err()
        {
            return;
        }
    }
}

fn alert(text: &str) -> Value {
    json!({"alerts": [{"level": "error", "text": text}]})
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn answer(
    state: &Mutex<State>,
    method: &str,
    path: &str,
    body: &Value,
) -> (u16, Vec<(&'static str, String)>, Value) {
    let mut state = state.lock().unwrap();
    state.requests.push(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        body: body.clone(),
    });
    let path = path.split('?').next().unwrap_or_default();
    let rest = path.strip_prefix("/api/4.0/").unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["user", "login"]) => (
            200,
            vec![("Set-Cookie", "access_token=stand-in; Path=/".into())],
            json!({"alerts": [{"level": "success", "text": "Successfully logged in."}]}),
        ),
        ("GET", ["async_status"]) => {
            let jobs: Vec<Value> = state.jobs.values().cloned().collect();
            (200, vec![], json!({"response": jobs}))
        }
        ("POST", ["async_status"]) => {
            let id = state.jobs.len() as i64 + 1;
            let job = json!({
                "id": id, "status": "PENDING", "start_time": now(), "end_time": null,
                "message": body["message"], "kind": body["kind"],
                "labels": body.get("labels").cloned().unwrap_or(json!({})),
                "created_by": "admin", "progress": null, "deadline": null,
                "heartbeat_timeout": null, "cancel_requested": false, "cancel_reason": null,
                "cancel_requested_by": null, "last_updated": now(),
            });
            state.jobs.insert(id, job.clone());
            state.publish("job", &job);
            (
                202,
                vec![("Location", format!("/api/4.0/async_status/{id}"))],
                json!({"response": job}),
            )
        }
        ("DELETE", ["async_status", id]) => {
            match id.parse().ok().and_then(|id| state.jobs.remove(&id)) {
                Some(job) => {
                    state.publish("deleted", &json!({"id": job["id"]}));
                    (200, vec![], json!({"alerts": []}))
                }
                None => (404, vec![], alert("async status not found")),
            }
        }
        (_, ["async_status", id, tail @ ..]) => {
            let state = &mut *state;
            let Some(job) = id.parse().ok().and_then(|id| state.jobs.get_mut(&id)) else {
                return (404, vec![], alert("async status not found"));
            };
            let finished = job["status"] != "PENDING";
            match (method, tail) {
                ("GET", []) => (200, vec![], json!({"response": job})),
                (_, []) | ("POST", ["cancel"]) if finished => {
                    let text = format!(
                        "async status is already {} and can no longer be changed",
                        job["status"].as_str().unwrap_or_default()
                    );
                    (409, vec![], alert(&text))
                }
                ("PUT", []) => {
                    job["status"] = body["status"].clone();
                    if !body["message"].is_null() {
                        job["message"] = body["message"].clone();
                    }
                    if !body["progress"].is_null() {
                        job["progress"] = body["progress"].clone();
                    }
                    if job["status"] != "PENDING" {
                        job["end_time"] = json!(now());
                    }
                    job["last_updated"] = json!(now());
                    let job = job.clone();
                    state.publish("job", &job);
                    (200, vec![], json!({"response": job}))
                }
                ("POST", ["cancel"]) => {
                    job["cancel_requested"] = json!(true);
                    job["cancel_reason"] = body["reason"].clone();
                    job["cancel_requested_by"] = json!("admin");
                    if body["force"] == true {
                        job["status"] = json!("FAILED");
                        job["end_time"] = json!(now());
                        let reason = body["reason"].as_str().unwrap_or_default();
                        job["message"] = json!(format!("cancelled by admin: {reason}"));
                    }
                    let job = job.clone();
                    state.publish("job", &job);
                    (202, vec![], json!({"response": job}))
                }
                _ => (405, vec![], alert("method not allowed")),
            }
        }
        _ => (404, vec![], alert("not found")),
    }
}
