//! The command line: `serve` (the default), `migrate`, `config`, `healthcheck`, and user and
//! role administration.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use asyncstatus_auth::password::hash_password;
use asyncstatus_domain::{validate_role_name, validate_username, Permission};
use asyncstatus_persistence::{now_micros, Store, StoreError};

use crate::settings::{ServerSettings, Settings, Sources};
use crate::startup::{open_store, Application};

#[derive(Debug, Parser)]
#[command(
    name = "asyncstatus-api",
    version,
    about = "Tracks long-running jobs and serves their status over the Traffic Ops API.",
    long_about = "Tracks long-running jobs and serves their status over the Traffic Ops API \
(GET /api/4.0/async_status/{id}), on an embedded SQLite file or on PostgreSQL.\n\n\
Configuration: built-in defaults, then config/default.toml and config/<ASYNCSTATUS_ENV>.toml \
from ASYNCSTATUS_CONFIG_DIR (default: ./config), then --config FILE, then environment \
variables ASYNCSTATUS__<SECTION>__<KEY> (e.g. ASYNCSTATUS__DATABASE__URL=postgres://…). \
Every command opens the configured database and applies pending migrations first."
)]
pub struct Cli {
    /// A TOML file overlaid on the config folder's files.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default). On a database with no users, creates the first admin and
    /// prints how to log in.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check the configuration and print the settings in effect (secrets hidden), without
    /// touching the database.
    Config,
    /// Probe the running service, for container health checks: GET /healthz where `serve`
    /// listens (server.host and server.port; 127.0.0.1 for 0.0.0.0 and ::1 for ::; https when
    /// server.tls_cert is set, the certificate not verified since the probe is local). Exits 0
    /// on a 2xx answer, 1 otherwise. Does not touch the database.
    Healthcheck {
        /// The longest to wait for the answer, connecting included (e.g. 500ms, 2s).
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Print the OpenAPI document the service serves at /api/openapi.json (generated from the
    /// code), pretty-printed; `make openapi` writes it to docs/openapi.json. Reads no
    /// configuration and touches no database.
    Openapi,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage roles and their permissions.
    #[command(subcommand)]
    Role(RoleCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. Prompts for the password (twice, without echo) unless --password-stdin.
    Add {
        /// The username (letters, digits, '.', '_', '@', '-').
        name: String,
        /// The user's role (see `role list`): admin, operations, read-only, disallowed, or your own.
        #[arg(long)]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user. Its sessions stop working within auth.user_cache_ttl.
    Remove { name: String },
    /// Give a user another role. Takes effect within auth.user_cache_ttl.
    SetRole { name: String, role: String },
    /// List users and their roles.
    List,
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Add a role with no permissions.
    Add {
        name: String,
        /// A description shown by `role list`.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Grant a permission (e.g. ASYNC-STATUS:READ) to a role.
    Grant { role: String, permission: String },
    /// Revoke a permission from a role.
    Revoke { role: String, permission: String },
    /// List roles and their permissions.
    List,
}

/// Prints a line to stdout. Unlike `println!` it never panics: a closed or
/// full stdout must not take the service down.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        use std::io::Write as _;
        std::io::stdout()
            .write_all(crate::http::openapi::document().as_bytes())
            .context("writing the OpenAPI document")?;
        return Ok(());
    }
    let settings = Settings::load(&Sources::from_process(cli.config.clone()))?;
    // Held until exit: dropping it writes the log lines still queued.
    let _log = crate::telemetry::init(settings.log.format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Config => {
            say!("environment: {}", settings.environment);
            say!("{settings:#?}");
            Ok(())
        }
        Command::Healthcheck { timeout } => healthcheck(&settings.server, timeout),
        Command::Migrate => {
            open_store(&settings)?;
            println!("database {} is up to date", settings.database.url);
            Ok(())
        }
        Command::Openapi => Ok(()),
        Command::User(cmd) => {
            refuse_traffic_ops_change(&settings, !matches!(cmd, UserCommand::List))?;
            user(&open_store(&settings)?, cmd)
        }
        Command::Role(cmd) => {
            refuse_traffic_ops_change(&settings, !matches!(cmd, RoleCommand::List))?;
            role(&open_store(&settings)?, cmd)
        }
    }
}

/// With `database.layout = "traffic_ops"` the users and roles are Traffic Ops': listing them
/// reads its tables, and a command that would change them is refused.
fn refuse_traffic_ops_change(settings: &Settings, changes: bool) -> anyhow::Result<()> {
    if changes && settings.database.layout == asyncstatus_persistence::Layout::TrafficOps {
        anyhow::bail!(
            "database.layout = \"traffic_ops\": users and roles are Traffic Ops' own (tm_user, \
             role, role_capability), which asyncstatus only reads; change them in Traffic Ops \
             (Traffic Portal or its API). `user list` and `role list` show them."
        );
    }
    Ok(())
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let host = match settings.server.host.as_str() {
            "0.0.0.0" | "::" => "localhost".to_owned(),
            h if h.contains(':') => format!("[{h}]"),
            h => h.to_owned(),
        };
        let scheme = if settings.server.tls_cert.is_some() { "https" } else { "http" };
        let database = settings.database.url.to_string();
        let traffic_ops = settings.database.layout == asyncstatus_persistence::Layout::TrafficOps;
        let app = Application::build(settings).await?;
        let base = format!("{scheme}://{host}:{}/api/4.0", app.port());
        say!("asyncstatus is serving {base}/ (database {database})");
        match app.created_admin() {
            Some(admin) => {
                let password = admin
                    .generated_password
                    .as_deref()
                    .unwrap_or("<bootstrap.admin_password>");
                say!("First start: created the admin user '{}'.", admin.username);
                if admin.generated_password.is_some() {
                    say!("Its password, shown only this once: {password}");
                }
                say!("Log in:");
                say!(
                    "  curl -c cookies.txt -d '{{\"u\":\"{}\",\"p\":\"{password}\"}}' {base}/user/login",
                    admin.username
                );
                say!("  curl -b cookies.txt {base}/async_status");
            }
            None if traffic_ops => {
                say!(
                    "Traffic Ops mode (database.layout = \"traffic_ops\"): Traffic Ops' jobs, users \
                     and session cookies. Log in as a Traffic Ops user: curl -c cookies.txt -d \
                     '{{\"u\":\"NAME\",\"p\":\"PASSWORD\"}}' {base}/user/login"
                );
                say!("  (users and roles are Traffic Ops'; see docs/traffic-ops.md)");
            }
            None => {
                say!(
                    "Log in with an existing user: curl -c cookies.txt -d '{{\"u\":\"NAME\",\"p\":\"PASSWORD\"}}' {base}/user/login"
                );
                say!("  (add users with `asyncstatus-api user add NAME --role admin`)");
            }
        }
        app.run_until_stopped().await.context("serving")
    })
}

/// Where a client on this host reaches the service's `/healthz`.
fn healthz_url(server: &ServerSettings) -> String {
    let host = match server.host.as_str() {
        "0.0.0.0" => "127.0.0.1".to_owned(),
        "::" => "[::1]".to_owned(),
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_owned(),
    };
    let scheme = if server.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}:{}/healthz", server.port)
}

/// `healthcheck`: one GET of `/healthz`; an error (exit status 1) unless it answers 2xx in time.
fn healthcheck(server: &ServerSettings, timeout: Duration) -> anyhow::Result<()> {
    let url = healthz_url(server);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        // The probe runs beside the service and talks to its own certificate, which names the
        // public host rather than the loopback address: verifying it would prove nothing here.
        .danger_accept_invalid_certs(true)
        .build()
        .context("building the HTTP client")?;
    let status = actix_web::rt::System::new()
        .block_on(async { client.get(&url).send().await })
        .with_context(|| {
            format!(
                "GET {url} (timeout {})",
                humantime::format_duration(timeout)
            )
        })?
        .status();
    if !status.is_success() {
        bail!("GET {url} answered {status}");
    }
    say!("GET {url}: {status}");
    Ok(())
}

/// Names the unknown thing in words a CLI user can act on.
fn explain(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(what) if what.starts_with("role") => {
            anyhow::anyhow!("{what} not found; see `asyncstatus-api role list`")
        }
        StoreError::NotFound(what) => {
            anyhow::anyhow!("{what} not found; see `asyncstatus-api user list`")
        }
        other => other.into(),
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        if !std::io::stdin().is_terminal() {
            bail!("standard input is not a terminal; use --password-stdin to pipe the password");
        }
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again =
            rpassword::prompt_password("Password (again): ").context("reading the password")?;
        if first != again {
            bail!("the passwords do not match");
        }
        first
    };
    if password.chars().count() < crate::settings::MIN_PASSWORD_LEN {
        bail!(
            "the password must be at least {} characters",
            crate::settings::MIN_PASSWORD_LEN
        );
    }
    Ok(password)
}

fn user(store: &Store, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            validate_username(&name)?;
            let password = read_password(password_stdin)?;
            store
                .add_user(&name, &hash_password(&password), &role, now_micros())
                .map_err(explain)?;
            println!("added user '{name}' with role '{role}'");
        }
        UserCommand::Remove { name } => {
            store.remove_user(&name).map_err(explain)?;
            println!("removed user '{name}'");
        }
        UserCommand::SetRole { name, role } => {
            store
                .set_user_role(&name, &role, now_micros())
                .map_err(explain)?;
            println!("user '{name}' now has role '{role}'");
        }
        UserCommand::List => {
            let users = store.list_users()?;
            println!("{:<32} ROLE", "USERNAME");
            for (name, role) in users {
                println!("{name:<32} {role}");
            }
        }
    }
    Ok(())
}

fn role(store: &Store, cmd: RoleCommand) -> anyhow::Result<()> {
    match cmd {
        RoleCommand::Add { name, description } => {
            validate_role_name(&name)?;
            store.add_role(&name, &description, now_micros())?;
            println!("added role '{name}'");
        }
        RoleCommand::Grant { role, permission } => {
            let permission = Permission::new(permission)?;
            let new = store
                .grant_permission(&role, permission.as_str(), now_micros())
                .map_err(explain)?;
            if new {
                println!("granted {permission} to '{role}'");
            } else {
                println!("'{role}' already holds {permission}");
            }
        }
        RoleCommand::Revoke { role, permission } => {
            let permission = Permission::new(permission)?;
            if store
                .revoke_permission(&role, permission.as_str())
                .map_err(explain)?
            {
                println!("revoked {permission} from '{role}'");
            } else {
                println!("'{role}' did not hold {permission}");
            }
        }
        RoleCommand::List => {
            println!("{:<20} {:<52} DESCRIPTION", "ROLE", "PERMISSIONS");
            for r in store.list_roles()? {
                let perms = if r.name == asyncstatus_domain::ADMIN_ROLE {
                    "(all)".to_owned()
                } else {
                    r.permissions.join(",")
                };
                println!("{:<20} {:<52} {}", r.name, perms, r.description);
            }
        }
    }
    Ok(())
}
