//! Building and running the application: open and migrate the database, create the first
//! admin, bind (port 0 in tests), serve until SIGTERM/SIGINT, which drain in-flight requests.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, HttpServer};
use anyhow::Context;

use asyncstatus_auth::Authenticator;
use asyncstatus_persistence::{DatabaseUrl, PoolOptions, Store};

use crate::bootstrap::{ensure_admin, CreatedAdmin};
use crate::http;
use crate::settings::Settings;
use crate::state::AppState;

/// Opens the database of `settings` and applies pending migrations.
pub fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let url = DatabaseUrl::parse(settings.database.url.expose())?;
    let store = Store::open(
        &url,
        &PoolOptions {
            size: settings.database.pool_size,
            checkout_timeout: settings.database.checkout_timeout,
        },
    )
    .with_context(|| format!("opening the database {url}"))?;
    let applied = store
        .run_migrations()
        .with_context(|| format!("migrating the database {url}"))?;
    if !applied.is_empty() {
        tracing::info!(migrations = ?applied, database = %url, "applied migrations");
    }
    Ok(store)
}

/// A built application, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    created_admin: Option<CreatedAdmin>,
}

impl Application {
    /// Opens and migrates the database, bootstraps the admin, binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let store = open_store(&settings)?;
        let created_admin = ensure_admin(&store, &settings).context("creating the first admin")?;
        let auth = Authenticator::new(store.clone(), &settings.auth_settings())
            .context("setting up authentication")?;
        let socket = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!("binding {}:{}", settings.server.host, settings.server.port)
            })?;
        let port = socket.local_addr()?.port();
        let logins = std::thread::available_parallelism().map_or(2, |n| n.get());
        let waiters = std::sync::Arc::new(crate::waiters::Waiters::default());
        let wake = waiters.clone();
        let listener = store
            .on_job_change(move |change| wake.wake(change))
            .context("starting the change listener")?;
        let state = web::Data::new(AppState {
            store,
            auth,
            login_slots: tokio::sync::Semaphore::new(logins),
            waiters,
            _listener: listener,
            settings,
        });
        let app_state = state.clone();
        let shutdown = state.settings.jobs.max_wait + Duration::from_secs(5);
        let server = HttpServer::new(move || http::app(app_state.clone()))
            .listen(socket)?
            .shutdown_timeout(shutdown.as_secs())
            .run();
        // Jobs abandoned while no replica ran (the process was killed, say) are failed before
        // the first request is answered.
        match crate::reaper::sweep(&state).await {
            Ok(sweep) if sweep.abandoned > 0 || sweep.purged > 0 => {
                tracing::info!(
                    abandoned = sweep.abandoned,
                    purged = sweep.purged,
                    "start-up sweep"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "start-up sweep failed; the reaper retries"),
        }
        actix_web::rt::spawn(crate::reaper::run(state.clone()));
        Ok(Application {
            port,
            server,
            state,
            created_admin,
        })
    }

    /// The port bound (the real one when 0 was asked for).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin created on this start, if the database had no users.
    pub fn created_admin(&self) -> Option<&CreatedAdmin> {
        self.created_admin.as_ref()
    }

    /// The shared state (for tests and the CLI).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM/SIGINT or the handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
