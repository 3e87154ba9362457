//! asyncstatus-api: the Traffic Ops `async_status` API and asyncstatus' additions, served by
//! actix-web over the `persistence` and `auth` crates.

pub mod bootstrap;
pub mod cli;
pub mod connections;
pub mod db;
pub mod http;
pub mod logins;
pub mod metrics;
pub mod reads;
pub mod reaper;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod waiters;
