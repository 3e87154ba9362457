//! asyncstatus-api: the Traffic Ops `async_status` API and asyncstatus' additions, served by
//! actix-web over the `persistence` and `auth` crates.
//!
//! Public: what the binary (`cli`) and the integration tests use (the settings, the
//! application, the OpenAPI document, and the shared state they inspect: the database gate,
//! the waiters, the login slots, the reaper's sweep); the rest is private.

mod bootstrap;
pub mod cli;
mod connections;
pub mod db;
pub mod events;
mod http;
pub mod logins;
mod metrics;
mod reads;
pub mod reaper;
pub mod settings;
pub mod startup;
pub mod state;
mod telemetry;
pub mod traffic_ops;
pub mod waiters;

/// The OpenAPI document the code generates (`docs/openapi.json` must equal it).
pub use http::openapi::document as openapi_document;
