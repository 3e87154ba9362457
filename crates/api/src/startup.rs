//! Building and running the application: open and migrate the database, create the first
//! admin, bind (port 0 in tests), serve until SIGTERM/SIGINT, which drain in-flight requests.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, HttpServer};
use anyhow::Context;

use asyncstatus_auth::Authenticator;
use asyncstatus_persistence::{Backend, Layout, PoolOptions, Store};

use crate::bootstrap::{ensure_admin, CreatedAdmin};
use crate::http;
use crate::settings::Settings;
use crate::state::AppState;

/// Opens the database of `settings` and applies pending migrations.
pub fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let url = &settings.database.url;
    let layout = settings.database.layout;
    let store = Store::open_layout(
        url,
        &PoolOptions {
            size: settings.database.pool_size,
            checkout_timeout: settings.database.checkout_timeout,
        },
        layout,
    )
    .with_context(|| format!("opening the database {url}"))?;
    if layout == Layout::Asyncstatus
        && store
            .is_unmigrated_traffic_ops_database()
            .with_context(|| format!("looking at the database {url}"))?
    {
        anyhow::bail!(
            "the database {url} is a Traffic Ops database (it has Traffic Ops' tables): \
             asyncstatus' own layout would not fit in it; set database.layout = \"traffic_ops\" \
             to serve Traffic Ops' jobs, users and sessions from it (see docs/traffic-ops.md), or \
             give asyncstatus a database of its own"
        );
    }
    if layout == Layout::TrafficOps {
        let missing = store
            .missing_traffic_ops_tables()
            .with_context(|| format!("looking for Traffic Ops' tables in {url}"))?;
        if !missing.is_empty() {
            anyhow::bail!(
                "database.layout = \"traffic_ops\", but the database {url} lacks Traffic Ops' \
                 tables {}: is database.url Traffic Ops' own database (its database.conf)?",
                missing.join(", ")
            );
        }
    }
    let applied = store
        .run_migrations_waiting(settings.database.migration_lock_timeout)
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
        let traffic_ops = settings.database.layout == Layout::TrafficOps;
        let (created_admin, secrets) = if traffic_ops {
            // Traffic Ops' users and sessions serve; asyncstatus issues no token of its own,
            // so its token service gets a key nobody knows.
            (None, vec![crate::bootstrap::random_secret()])
        } else {
            let created_admin =
                ensure_admin(&store, &settings).context("creating the first admin")?;
            let secrets = crate::bootstrap::signing_secrets(&store, &settings)
                .context("reading the signing secret from the database")?;
            (created_admin, secrets)
        };
        let auth = Authenticator::new(store.clone(), &settings.auth_settings(secrets))
            .context("setting up authentication")?;
        let traffic_ops_auth = match (&settings.traffic_ops.secret, traffic_ops) {
            (Some(secret), true) => Some(std::sync::Arc::new(
                asyncstatus_auth::TrafficOpsAuthenticator::new(
                    store.clone(),
                    secret.clone(),
                    settings.traffic_ops.role_based_permissions,
                    asyncstatus_auth::LoginThrottle::new(
                        settings.auth_settings(Vec::new()).throttle_policy(),
                    ),
                    settings.auth.user_cache_ttl,
                ),
            )),
            _ => None,
        };
        let socket = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!("binding {}:{}", settings.server.host, settings.server.port)
            })?;
        let port = socket.local_addr()?.port();
        // Password derivations may use all cores but one, so reads always have a core.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let logins = cores.saturating_sub(1).max(1);
        let waiters = std::sync::Arc::new(crate::waiters::Waiters::with_caps(
            settings.jobs.max_waiters,
            settings.jobs.max_waiters_per_user,
        ));
        let events = std::sync::Arc::new(crate::events::Events::default());
        let (wake, note) = (waiters.clone(), events.clone());
        let listener = store
            .on_job_change(move |change| {
                wake.wake(change);
                note.note(change);
            })
            .context("starting the change listener")?;
        let db = crate::db::Db::new(
            store,
            settings.database.pool_size as usize,
            settings.server.request_timeout,
        );
        let state = web::Data::new(AppState {
            db,
            auth: std::sync::Arc::new(auth),
            traffic_ops: traffic_ops_auth,
            login_slots: crate::logins::LoginSlots::new(logins, settings.auth.login_queue),
            waiters,
            events,
            metrics: crate::metrics::Metrics::new().context("registering metrics")?,
            _listener: listener,
            settings,
        });
        let app_state = state.clone();
        let shutdown = state.settings.jobs.max_wait + Duration::from_secs(5);
        let workers = cores;
        let connections = connection_limit(state.settings.server.max_connections);
        let per_client = crate::connections::ClientConnections::new(
            state.settings.server.max_connections_per_client,
            state.settings.server.trusted_proxies.clone(),
        );
        let server = HttpServer::new(move || http::app(app_state.clone()))
            // Before anything is read: one client address holds at most its share.
            .on_connect(move |conn, data| per_client.on_connect(conn, data))
            .workers(workers)
            // actix's limit is per worker; connections are spread over the workers.
            .max_connections(connections.div_ceil(workers))
            // A client's EOF ends its connection at once, dropping the handler's future: a
            // long-poll or a queued login whose client hung up stops waiting and its socket
            // is closed (actix's default keeps half-closed connections until the answer).
            .h1_allow_half_closed(false)
            // Request headers must arrive within 5 s (actix's default, kept explicit); bodies
            // within server.body_timeout (see `read_body`).
            .client_request_timeout(Duration::from_secs(5))
            .shutdown_timeout(shutdown.as_secs())
            // Signals are handled in `run_until_stopped`, which first releases long-polls.
            .disable_signals();
        let server = match tls_config(&state.settings)? {
            Some(tls) => server.listen_rustls_0_23(socket, tls)?,
            None => server.listen(socket)?,
        }
        .run();
        if traffic_ops {
            // Traffic Ops' jobs: re-read for their waiters, failed when stuck; never purged.
            actix_web::rt::spawn(crate::traffic_ops::poll_waited(state.clone()));
            actix_web::rt::spawn(crate::traffic_ops::fail_stuck(state.clone()));
        } else {
            // Jobs abandoned while no replica ran (the process was killed, say) are failed
            // before the first request is answered; the purge of expired jobs waits for the
            // reaper.
            match crate::reaper::fail_stale(&state).await {
                Ok(0) => {}
                Ok(abandoned) => tracing::info!(abandoned, "start-up sweep"),
                Err(e) => tracing::warn!(error = %e, "start-up sweep failed; the reaper retries"),
            }
            actix_web::rt::spawn(crate::reaper::run(state.clone()));
            if state.settings.database.url.backend() == Backend::Postgres {
                actix_web::rt::spawn(crate::reaper::fold_counts(state.clone()));
            }
            actix_web::rt::spawn(state.events.clone().run(state.db.clone()));
        }
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

    /// Serves until SIGTERM or SIGINT (or the handle) stops it. On a signal: long-polls answer
    /// at once with the current state, no new connections are accepted, requests in flight
    /// finish (within `jobs.max_wait` + 5 s), then the pool closes.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let waiters = self.state.waiters.clone();
        let events = self.state.events.clone();
        actix_web::rt::spawn(async move {
            match shutdown_signal().await {
                Ok(signal) => tracing::info!(signal, "stopping: finishing requests in flight"),
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for shutdown signals");
                    return;
                }
            }
            waiters.stop();
            // Event streams end now: graceful shutdown does not wait for them.
            events.stop();
            handle.stop(true).await;
        });
        let result = self.server.await;
        tracing::info!("stopped");
        result
    }
}

/// File descriptors kept free of client connections: the database pool, the listener, log
/// and data files.
const RESERVED_FDS: u64 = 256;

/// Raises the soft open-file limit to the hard one and returns the number of connections to
/// allow: `max_connections`, lowered to fit the limit (with a warning) if need be.
fn connection_limit(max_connections: usize) -> usize {
    let files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => files,
        Err(e) => {
            let soft = rlimit::Resource::NOFILE
                .get()
                .map_or(1024, |(soft, _)| soft);
            tracing::warn!(error = %e, open_files = soft, "cannot raise the open-file limit");
            soft
        }
    };
    let fit = usize::try_from(files.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
    let connections = max_connections.min(fit);
    if connections < max_connections {
        tracing::warn!(
            open_files = files,
            max_connections,
            allowed = connections,
            "the open-file limit is too low for server.max_connections; allowing fewer"
        );
    } else {
        tracing::info!(open_files = files, max_connections, "open-file limit");
    }
    connections
}

/// Waits for SIGTERM or SIGINT; returns its name.
async fn shutdown_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// The rustls configuration when `server.tls_cert` and `server.tls_key` are set.
fn tls_config(settings: &Settings) -> anyhow::Result<Option<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&settings.server.tls_cert, &settings.server.tls_key) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading server.tls_cert {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("server.tls_cert {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading server.tls_key {}", key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("server.tls_cert and server.tls_key do not form a usable pair")?;
    Ok(Some(config))
}
