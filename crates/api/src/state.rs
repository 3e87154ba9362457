//! What every handler shares.

use std::sync::Arc;

use asyncstatus_auth::Authenticator;
use asyncstatus_persistence::ChangeListener;

use crate::settings::Settings;

/// Shared application state (behind `web::Data`).
pub struct AppState {
    /// The way to the database (see [`crate::db::Db`]).
    pub db: crate::db::Db,
    pub auth: Arc<Authenticator>,
    /// Traffic Ops' sessions, with `database.layout = "traffic_ops"` only.
    pub traffic_ops: Option<Arc<asyncstatus_auth::TrafficOpsAuthenticator>>,
    pub settings: Settings,
    /// Bounds concurrent password derivations (16 MiB and ~50 ms of CPU each), so logins
    /// cannot starve other requests of threads, CPU or memory; and the queue waiting for them.
    pub login_slots: crate::logins::LoginSlots,
    /// Long-poll waiters, woken by the store's change feed.
    pub waiters: Arc<crate::waiters::Waiters>,
    /// The event streams' fan-out, fed by the store's change feed.
    pub events: Arc<crate::events::Events>,
    pub metrics: crate::metrics::Metrics,
    /// Keeps the change feed's listener running while the application lives.
    pub _listener: ChangeListener,
}
