//! The real service, as a process: the `asyncstatus-api` binary of this build on a free port
//! and a fresh database, stopped and started again at will; and the `asyncstatus` command
//! pointed at it.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use asyncstatus_client::{Client, Credentials};
use asyncstatus_persistence::testing::TestDatabase;
use asyncstatus_persistence::Backend;

pub const ADMIN_PASSWORD: &str = "client-test-admin-password";
const SECRET: &str = "client-test-secret-0123456789abcdef0123";
/// Every wait on a condition gives up after this long.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The api binary the workspace build put next to this test's executable.
fn api_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/debug/deps/cli-HASH → target/debug/asyncstatus-api
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the target folder");
    let bin = dir.join("asyncstatus-api");
    assert!(
        bin.is_file(),
        "{} is missing: these tests run the service's binary; build it first \
         (`cargo build -p asyncstatus-api`; `make test` builds the whole workspace)",
        bin.display()
    );
    bin
}

/// A child process killed and reaped when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Service {
    process: Option<Reaped>,
    pub port: u16,
    /// `http`, or `https` when the environment configures TLS.
    scheme: &'static str,
    env: Vec<(String, String)>,
    // Dropped after the process: the database outlives the server using it.
    db: TestDatabase,
}

impl Service {
    /// The service on a fresh database of `backend`, with extra environment variables; `None`
    /// when PostgreSQL tests are skipped.
    pub fn start(backend: Backend, env: &[(&str, &str)]) -> Option<Service> {
        let db = TestDatabase::new(backend)?;
        let tls = env
            .iter()
            .any(|(k, _)| *k == "ASYNCSTATUS__SERVER__TLS_CERT");
        let mut service = Service {
            process: None,
            port: 0,
            scheme: if tls { "https" } else { "http" },
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            db,
        };
        service.start_again();
        Some(service)
    }

    /// Starts the (stopped) service, on the port it had if it ran before.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "already running");
        let mut child = Command::new(api_binary())
            .arg("serve")
            .env(
                "ASYNCSTATUS_CONFIG_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
            )
            .env_remove("ASYNCSTATUS_ENV")
            .env("RUST_LOG", "warn")
            .env("ASYNCSTATUS__DATABASE__URL", self.db.url_string())
            .env("ASYNCSTATUS__DATABASE__POOL_SIZE", "3")
            .env("ASYNCSTATUS__SERVER__PORT", self.port.to_string())
            .env("ASYNCSTATUS__AUTH__SECRETS", SECRET)
            .env("ASYNCSTATUS__BOOTSTRAP__ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting asyncstatus-api");
        let stdout = child.stdout.take().expect("piped stdout");
        let child = Reaped(child);
        let lines = lines_of(stdout);
        let deadline = Instant::now() + DEADLINE;
        let port = loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("asyncstatus-api announces the URL it serves");
            if let Some(rest) = line.split("://127.0.0.1:").nth(1) {
                break rest
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("a port in the banner");
            }
        };
        // The rest of its output is read and dropped, so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.port = port;
        self.process = Some(child);
    }

    /// Stops the service at once (SIGKILL: a crash, or a machine going away).
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// `http://127.0.0.1:PORT` (`https` with TLS)
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// The `asyncstatus` command, pointed at this service as the admin.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_asyncstatus"));
        cmd.env("ASYNCSTATUS_URL", self.url())
            .env("ASYNCSTATUS_USER", "admin")
            .env("ASYNCSTATUS_PASSWORD", ADMIN_PASSWORD)
            .env_remove("ASYNCSTATUS_TOKEN")
            .env_remove("ASYNCSTATUS_API_VERSION")
            .stdin(Stdio::null());
        cmd
    }

    /// A library client, logged in as the admin.
    pub fn client(&self) -> Client {
        Client::builder(self.url())
            .credentials(Credentials::Password {
                user: "admin".into(),
                password: ADMIN_PASSWORD.into(),
            })
            .build()
            .expect("a client")
    }

    /// The value of the metric line starting with `name` (labels included) on `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let text = reqwest::blocking::get(format!("{}/metrics", self.url()))
            .and_then(|r| r.text())
            .expect("GET /metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// The lines of `from`, read on a thread of their own.
pub fn lines_of(from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line of `lines` containing `part`; all lines read so far, for messages.
pub fn wait_for_line(lines: &mpsc::Receiver<String>, part: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                let found = line.contains(part);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(_) => panic!("no line with {part:?} within {DEADLINE:?}; got {seen:#?}"),
        }
    }
}

/// Waits until `condition` holds, checking every 20 ms, failing after [`DEADLINE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit, failing (and killing it) after [`DEADLINE`]; its exit code.
pub fn exit_code(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the command did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
