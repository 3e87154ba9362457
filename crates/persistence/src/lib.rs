//! The database: one diesel schema and one set of repository functions, written and compiled
//! once, over SQLite (the embedded default) and PostgreSQL through diesel's `MultiConnection`,
//! behind an r2d2 pool with a size and a checkout timeout.
//!
//! Everything here is synchronous; callers run it off their async workers. No web framework,
//! no async runtime. Every failure is a [`StoreError`]; nothing is turned into `None`
//! except "no such row".

mod changes;
mod error;
mod jobs;
mod migrations;
mod pool;
mod roles;
pub mod schema;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod tokens;
mod traffic_ops;
mod users;

pub use changes::{Change, ChangeListener, LISTEN_POLL};
pub use error::StoreError;
pub use jobs::{
    purge_batch, reap_batch, CancelOutcome, CreateOutcome, Overdue, Page, SweepBatch,
    UpdateOutcome, DELTA_SETTLED_BYTES,
};
pub use migrations::{MIGRATION_LOCK_ID, MIGRATION_LOCK_TIMEOUT, OWN_SCHEMA};
pub use pool::{Backend, DatabaseUrl, PoolOptions, PoolState};
pub use roles::RoleRecord;
pub use store::{Layout, Store};
pub use time::{now_micros, UtcTime};
pub use traffic_ops::{TrafficOpsJob, TrafficOpsUser, TRAFFIC_OPS_TABLES};
pub use users::UserRecord;
