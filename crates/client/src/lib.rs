//! A typed client for the `async_status` API of asyncstatus — and of Traffic Ops, whose API
//! asyncstatus serves — and the `asyncstatus` command built on it (`src/bin/asyncstatus`).
//!
//! ```no_run
//! use std::time::Duration;
//! use asyncstatus_client::{Client, Credentials, NewJob, WaitOutcome};
//!
//! # fn main() -> Result<(), asyncstatus_client::Error> {
//! let client = Client::builder("https://to.example.net")
//!     .credentials(Credentials::Password { user: "builder".into(), password: "secret".into() })
//!     .build()?;
//! let created = client.create(
//!     NewJob::new().message("Refreshing DNS").kind("dns.refresh").key("dns-refresh"),
//! )?;
//! client.update(created.job.id, asyncstatus_domain::JobStatus::Succeeded, Some("done"))?;
//! match client.wait(created.job.id, Duration::from_secs(600))? {
//!     WaitOutcome::Finished(job) => println!("{} {}", job.id, job.status),
//!     WaitOutcome::TimedOut(job) => println!("{} still {}", job.id, job.status),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Among this workspace's crates it depends on `asyncstatus-domain` only (the job statuses);
//! it pulls in no database or server code, so Rust producers can use it directly.
//!
//! **Blocking, by choice.** The client is reqwest's blocking client: every user so far — the
//! command line, a shell script's producer, a synchronous worker — does one request at a
//! time, and `run` needs threads anyway (the command's two output pipes, the heartbeat, the
//! signals). A blocking API imposes no async runtime on its callers (reqwest keeps a small
//! one on a thread of its own). It must not be called from inside an async runtime's task;
//! async callers use `spawn_blocking`.

mod client;
mod error;
mod events;
mod job;

pub use client::{
    Client, ClientBuilder, Created, Credentials, JobUpdate, ListFilter, NewJob, Polled, WaitOutcome,
};
pub use error::Error;
pub use events::{Event, Events};
pub use job::{job_id_of, Job, Progress};

pub use asyncstatus_domain::JobStatus;
