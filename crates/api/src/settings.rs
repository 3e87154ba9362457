//! Typed configuration: built-in defaults (`config/default.toml`, compiled in), overlaid by
//! `config/<ASYNCSTATUS_ENV>.toml`, by `--config FILE`, and by `ASYNCSTATUS__SECTION__KEY`
//! environment variables; validated before anything starts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use asyncstatus_persistence::{Backend, DatabaseUrl, Layout};
use config::{Config, File, FileFormat};
use secrecy::ExposeSecret;
use serde::Deserialize;

/// A value that must never be printed or logged (`Debug` shows `[REDACTED]`); `expose_secret`
/// reads it.
pub use secrecy::SecretString as Secret;

/// The defaults, compiled in so the binary runs without a config folder.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");
/// The shortest configured signing secret accepted (in every environment).
pub const MIN_SECRET_LEN: usize = 32;
/// The signing secret earlier versions shipped in `config/default.toml`: refused anywhere.
const FORMER_DEVELOPMENT_SECRET: &str = "asyncstatus-development-secret-do-not-use-in-production";
/// The shortest password accepted (the CLI's rule, and `bootstrap.admin_password`'s).
pub const MIN_PASSWORD_LEN: usize = 8;
/// The smallest `server.max_response_bytes`: any one job (a 64 KiB message, escaped) fits.
pub const MIN_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthConfig,
    pub jobs: JobsSettings,
    pub bootstrap: BootstrapSettings,
    pub cors: CorsSettings,
    pub log: LogSettings,
    pub traffic_ops: TrafficOpsSettings,
    /// `ASYNCSTATUS_ENV` (development when unset).
    #[serde(skip)]
    pub environment: Environment,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The largest body of a list answer (`GET async_status`); longer lists are cut.
    pub max_response_bytes: usize,
    /// Peers whose `Forwarded` / `X-Forwarded-For` name the client (CIDRs or addresses).
    #[serde(default, deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The most connections open at once, over all workers (lowered to fit the open-file limit).
    pub max_connections: usize,
    /// The most connections open at once from one client address (IPv6: one /64); trusted
    /// proxies are exempt.
    pub max_connections_per_client: usize,
    /// The longest a request body may take to arrive; 408 past it.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
}

/// `ASYNCSTATUS_ENV`: which `config/<name>.toml` overlays the defaults. Every environment is
/// held to the same safety checks; the name chooses the file, and is shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Environment {
    #[default]
    Development,
    Production,
    /// Any other name (`staging`, `ci`, …).
    Named(String),
}

impl Environment {
    pub fn from_name(name: &str) -> Environment {
        match name {
            "development" => Environment::Development,
            "production" => Environment::Production,
            other => Environment::Named(other.to_owned()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Environment::Development => "development",
            Environment::Production => "production",
            Environment::Named(name) => name,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// May hold a password: `Debug` and `Display` redact it.
    #[serde(deserialize_with = "database_url")]
    pub url: DatabaseUrl,
    pub pool_size: u32,
    #[serde(with = "humantime_serde")]
    pub checkout_timeout: Duration,
    /// The longest start-up waits for another process's migration (PostgreSQL).
    #[serde(with = "humantime_serde")]
    pub migration_lock_timeout: Duration,
    /// Whose tables: asyncstatus' own, or a Traffic Ops database's.
    #[serde(deserialize_with = "database_layout")]
    pub layout: Layout,
}

/// `database.layout`: `asyncstatus` or `traffic_ops`.
fn database_layout<'de, D>(deserializer: D) -> Result<Layout, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match String::deserialize(deserializer)?.as_str() {
        "asyncstatus" => Ok(Layout::Asyncstatus),
        "traffic_ops" => Ok(Layout::TrafficOps),
        other => Err(serde::de::Error::custom(format!(
            "unknown layout {other:?}: expected \"asyncstatus\" or \"traffic_ops\""
        ))),
    }
}

/// `[traffic_ops]`: used with `database.layout = "traffic_ops"` only.
#[derive(Debug, Clone, Deserialize)]
pub struct TrafficOpsSettings {
    /// Traffic Ops' `secrets[0]` from cdn.conf, which signs its cookies and access tokens.
    pub secret: Option<Secret>,
    /// cdn.conf's `role_based_permissions`: the role's permissions decide (`true`), or its
    /// `priv_level` (`false`).
    pub role_based_permissions: bool,
    /// How often the Traffic Ops jobs someone waits on are re-read.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A Traffic Ops job still `PENDING` this long after its start is failed; 0 = never.
    #[serde(with = "humantime_serde")]
    pub fail_stuck_after: Duration,
}

/// The shortest `traffic_ops.poll_interval`: one query per interval, whatever the waiters.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// `database.url`, parsed once: `sqlite://PATH` or `postgres://…`.
fn database_url<'de, D>(deserializer: D) -> Result<DatabaseUrl, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = Secret::deserialize(deserializer)?;
    // The config crate adds "for key `database.url`".
    DatabaseUrl::parse(text.expose_secret()).map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthConfig {
    #[serde(deserialize_with = "comma_list")]
    pub secrets: Vec<Secret>,
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// The longest a session (a login and every token refreshed from it) lives.
    #[serde(with = "humantime_serde")]
    pub session_max_age: Duration,
    #[serde(with = "humantime_serde")]
    pub user_cache_ttl: Duration,
    pub cookie_secure: bool,
    pub login_max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    pub login_max_failures_per_address: u32,
    #[serde(with = "humantime_serde")]
    pub login_max_delay: Duration,
    /// Logins that may wait for a password-derivation slot; 503 past it.
    pub login_queue: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobsSettings {
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    #[serde(with = "humantime_serde")]
    pub reaper_interval: Duration,
    /// Zero keeps finished jobs forever.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    #[serde(with = "humantime_serde")]
    pub poll_hint: Duration,
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// The most jobs one list answer holds.
    pub max_page: i64,
    /// Long-poll waiters at once, overall; past it `Prefer: wait` is ignored.
    pub max_waiters: usize,
    /// Long-poll waiters at once of one user; past it `Prefer: wait` is ignored.
    pub max_waiters_per_user: usize,
    /// The longest `timeout` a job may be given.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// The longest `heartbeat_timeout` a job may be given; `None` is `stale_after`.
    #[serde(default, with = "humantime_serde")]
    pub max_heartbeat_timeout: Option<Duration>,
    /// A `: keep-alive` comment is sent on an event stream silent this long.
    #[serde(default = "event_keepalive", with = "humantime_serde")]
    pub event_keepalive: Duration,
    /// How often an open event stream re-checks its token; it ends when the check fails.
    #[serde(default = "event_recheck", with = "humantime_serde")]
    pub event_recheck: Duration,
}

fn event_recheck() -> Duration {
    Duration::from_secs(60)
}

fn event_keepalive() -> Duration {
    Duration::from_secs(15)
}

impl JobsSettings {
    /// The longest `heartbeat_timeout` a job may be given.
    pub fn heartbeat_timeout_cap(&self) -> Duration {
        self.max_heartbeat_timeout.unwrap_or(self.stale_after)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct BootstrapSettings {
    pub admin_username: String,
    pub admin_password: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CorsSettings {
    #[serde(deserialize_with = "comma_list")]
    pub allowed_origins: Vec<String>,
}

/// A list from a TOML array, or from comma-separated text (environment variables).
fn comma_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText<T> {
        List(Vec<T>),
        Text(String),
    }
    match ListOrText::<T>::deserialize(deserializer)? {
        ListOrText::List(items) => Ok(items),
        ListOrText::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| T::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(item)))
            .collect(),
    }
}

/// `server.trusted_proxies`: a [`comma_list`] of CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or
/// single addresses (`192.0.2.7`, taken as /32 or /128).
fn cidr_list<'de, D>(deserializer: D) -> Result<Vec<ipnet::IpNet>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    comma_list::<D, String>(deserializer)?
        .iter()
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    // The config crate adds "for key `server.trusted_proxies`".
                    serde::de::Error::custom(format!(
                        "'{item}' is not a CIDR (10.0.0.0/8) or an IP address"
                    ))
                })
        })
        .collect()
}

/// Why `value` is not an origin `scheme://host[:port]` (scheme http or https; no path,
/// trailing slash, userinfo, query or fragment; written as browsers send it).
fn origin_problem(value: &str) -> Option<String> {
    if value == "*" || value.eq_ignore_ascii_case("null") {
        return Some("a wildcard or 'null' origin would let any site in".into());
    }
    let Ok(url) = url::Url::parse(value) else {
        return Some("not a URL".into());
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Some("the scheme must be http or https".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("no user or password may be given".into());
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || url.path() != "/"
        || value.ends_with('/')
    {
        return Some("no path, trailing slash, query or fragment may be given".into());
    }
    let canonical = url.origin().ascii_serialization();
    (canonical != value).then(|| format!("write it as browsers send it: '{canonical}'"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// Where settings come from besides the built-in defaults.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The config folder (`ASYNCSTATUS_CONFIG_DIR`, else `config/` in the working directory).
    pub config_dir: Option<PathBuf>,
    /// `ASYNCSTATUS_ENV`.
    pub environment: Option<String>,
    /// `--config FILE`.
    pub file: Option<PathBuf>,
    /// Read `ASYNCSTATUS__…` variables.
    pub env_vars: bool,
}

impl Sources {
    /// The sources of a normal run: the process environment and the working directory.
    pub fn from_process(file: Option<PathBuf>) -> Self {
        let config_dir = std::env::var_os("ASYNCSTATUS_CONFIG_DIR")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("config")));
        Sources {
            config_dir,
            environment: std::env::var("ASYNCSTATUS_ENV")
                .ok()
                .filter(|e| !e.is_empty()),
            file,
            env_vars: true,
        }
    }
}

/// A configuration problem, with the key it concerns.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct SettingsError(String);

fn invalid(msg: impl Into<String>) -> SettingsError {
    SettingsError(msg.into())
}

impl Settings {
    /// The built-in defaults alone (what tests start from).
    pub fn defaults() -> Result<Settings, SettingsError> {
        Settings::load(&Sources::default())
    }

    /// Loads and validates settings from `sources`.
    pub fn load(sources: &Sources) -> Result<Settings, SettingsError> {
        let environment = sources
            .environment
            .as_deref()
            .map_or(Environment::Development, Environment::from_name);
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(dir) = &sources.config_dir {
            builder = builder
                .add_source(File::from(dir.join("default.toml")).required(false))
                .add_source(File::from(dir.join(format!("{environment}.toml"))).required(false));
        }
        if let Some(file) = &sources.file {
            if !Path::new(file).is_file() {
                return Err(invalid(format!(
                    "--config {}: no such file",
                    file.display()
                )));
            }
            builder = builder.add_source(File::from(file.as_path()));
        }
        if sources.env_vars {
            builder = builder.add_source(
                config::Environment::with_prefix("ASYNCSTATUS")
                    .prefix_separator("__")
                    .separator("__")
                    // Values stay text (a password "0012" must not become 12); typed keys
                    // parse from text, and the list keys split themselves (`comma_list`).
                    .try_parsing(false),
            );
        }
        let mut settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| invalid(e.to_string()))?;
        settings.environment = environment;
        settings.validate()?;
        Ok(settings)
    }

    /// `database.layout = "traffic_ops"` needs PostgreSQL and Traffic Ops' secret.
    fn validate_traffic_ops(&self) -> Result<(), SettingsError> {
        if self.database.layout != Layout::TrafficOps {
            return Ok(());
        }
        if self.database.url.backend() != Backend::Postgres {
            return Err(invalid(
                "database.layout = \"traffic_ops\" needs PostgreSQL (Traffic Ops' own \
                 database), and database.url is a SQLite file",
            ));
        }
        if self
            .traffic_ops
            .secret
            .as_ref()
            .is_none_or(|s| s.expose_secret().is_empty())
        {
            return Err(invalid(
                "database.layout = \"traffic_ops\" needs traffic_ops.secret: Traffic Ops' \
                 secrets[0] from its cdn.conf, which signs its session cookies",
            ));
        }
        if self.traffic_ops.poll_interval < MIN_POLL_INTERVAL {
            return Err(invalid(format!(
                "traffic_ops.poll_interval must be at least {MIN_POLL_INTERVAL:?}"
            )));
        }
        Ok(())
    }

    /// Checks what serde cannot: ranges, combinations, and safety (the same in every
    /// environment).
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size must be at least 1"));
        }
        if self.database.checkout_timeout.is_zero() {
            return Err(invalid("database.checkout_timeout must be more than 0s"));
        }
        if self.database.migration_lock_timeout.is_zero() {
            return Err(invalid(
                "database.migration_lock_timeout must be more than 0s",
            ));
        }
        self.validate_traffic_ops()?;
        // The development secret of earlier versions is public: a token signed with it is
        // anyone's to forge.
        if self
            .auth
            .secrets
            .iter()
            .any(|s| s.expose_secret() == FORMER_DEVELOPMENT_SECRET)
        {
            return Err(invalid(
                "auth.secrets holds the development secret of earlier versions, which is \
                 public; remove it (an empty list makes the service generate and keep one)",
            ));
        }
        // Empty: the secret generated on the first start and kept in the database serves.
        if self
            .auth
            .secrets
            .iter()
            .any(|s| s.expose_secret().chars().count() < MIN_SECRET_LEN)
        {
            return Err(invalid(format!(
                "auth.secrets must be at least {MIN_SECRET_LEN} characters each \
                 (or empty: a secret is generated and kept in the database)"
            )));
        }
        if self.auth.token_ttl < Duration::from_secs(60) {
            return Err(invalid("auth.token_ttl must be at least 1m"));
        }
        if self.auth.session_max_age < self.auth.token_ttl {
            return Err(invalid(
                "auth.session_max_age must be at least auth.token_ttl",
            ));
        }
        if self.server.max_response_bytes < MIN_RESPONSE_BYTES {
            return Err(invalid(format!(
                "server.max_response_bytes must be at least {MIN_RESPONSE_BYTES} (one job of \
                 the longest message must fit)"
            )));
        }
        if self.jobs.max_page < 1 {
            return Err(invalid("jobs.max_page must be at least 1"));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes must be at least 1024"));
        }
        match (&self.server.tls_cert, &self.server.tls_key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                for (name, path) in [("server.tls_cert", cert), ("server.tls_key", key)] {
                    if !path.is_file() {
                        return Err(invalid(format!("{name}: no such file {}", path.display())));
                    }
                }
            }
            _ => {
                return Err(invalid(
                    "server.tls_cert and server.tls_key must be set together",
                ))
            }
        }
        for (key, value) in [
            ("server.max_connections", self.server.max_connections),
            (
                "server.max_connections_per_client",
                self.server.max_connections_per_client,
            ),
            ("jobs.max_waiters", self.jobs.max_waiters),
            ("jobs.max_waiters_per_user", self.jobs.max_waiters_per_user),
            ("auth.login_queue", self.auth.login_queue),
        ] {
            if value == 0 {
                return Err(invalid(format!("{key} must be at least 1")));
            }
        }
        if self.server.max_connections_per_client > self.server.max_connections {
            return Err(invalid(
                "server.max_connections_per_client must not be more than server.max_connections",
            ));
        }
        if self.jobs.max_waiters_per_user > self.jobs.max_waiters {
            return Err(invalid(
                "jobs.max_waiters_per_user must not be more than jobs.max_waiters",
            ));
        }
        if self.jobs.max_waiters >= self.server.max_connections {
            return Err(invalid(
                "jobs.max_waiters must be less than server.max_connections, so other requests \
                 still find a connection when every waiter is taken",
            ));
        }
        for (key, value) in [
            ("server.body_timeout", self.server.body_timeout),
            ("jobs.stale_after", self.jobs.stale_after),
            ("jobs.reaper_interval", self.jobs.reaper_interval),
            ("jobs.max_timeout", self.jobs.max_timeout),
            ("jobs.event_keepalive", self.jobs.event_keepalive),
            ("jobs.event_recheck", self.jobs.event_recheck),
            ("auth.login_window", self.auth.login_window),
            ("auth.login_max_delay", self.auth.login_max_delay),
        ] {
            if value.is_zero() {
                return Err(invalid(format!("{key} must be more than 0s")));
            }
        }
        if self
            .jobs
            .max_heartbeat_timeout
            .is_some_and(|cap| cap < Duration::from_secs(1))
        {
            return Err(invalid("jobs.max_heartbeat_timeout must be at least 1s"));
        }
        if self.auth.login_max_delay < Duration::from_secs(1) {
            return Err(invalid(
                "auth.login_max_delay must be at least 1s (the first block)",
            ));
        }
        for origin in &self.cors.allowed_origins {
            if let Some(problem) = origin_problem(origin) {
                return Err(invalid(format!(
                    "cors.allowed_origins: '{origin}' is not an origin scheme://host[:port]: {problem}"
                )));
            }
        }
        asyncstatus_domain::validate_username(&self.bootstrap.admin_username)
            .map_err(|e| invalid(format!("bootstrap.admin_username: {e}")))?;
        // Empty means "generate one"; otherwise the CLI's rule.
        if let Some(password) = &self.bootstrap.admin_password {
            let length = password.expose_secret().chars().count();
            if length > 0 && length < MIN_PASSWORD_LEN {
                return Err(invalid(format!(
                    "bootstrap.admin_password must be at least {MIN_PASSWORD_LEN} characters \
                     (or empty: one is generated)"
                )));
            }
        }
        Ok(())
    }

    /// Whether the `access_token` cookie carries `Secure`.
    pub fn cookie_secure(&self) -> bool {
        self.auth.cookie_secure || self.server.tls_cert.is_some()
    }

    /// What the authenticator needs, signing with `secrets` (the configured ones, else the
    /// one kept in the database: see [`crate::bootstrap::signing_secrets`]).
    pub fn auth_settings(&self, secrets: Vec<String>) -> asyncstatus_auth::AuthSettings {
        asyncstatus_auth::AuthSettings {
            secrets,
            token_ttl: self.auth.token_ttl,
            session_max_age: self.auth.session_max_age,
            user_cache_ttl: self.auth.user_cache_ttl,
            login_max_failures: self.auth.login_max_failures,
            login_window: self.auth.login_window,
            login_max_failures_per_address: self.auth.login_max_failures_per_address,
            login_max_delay: self.auth.login_max_delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_defaults_match_the_documented_table() {
        let s = Settings::defaults().unwrap();
        assert_eq!((s.server.host.as_str(), s.server.port), ("127.0.0.1", 8080));
        assert_eq!(s.server.max_body_bytes, 1_048_576);
        assert_eq!(s.database.url.to_string(), "sqlite://data/asyncstatus.db");
        assert_eq!(s.database.pool_size, 8);
        assert_eq!(s.database.checkout_timeout, Duration::from_secs(5));
        assert_eq!(s.auth.token_ttl, Duration::from_secs(6 * 3600));
        assert_eq!(s.auth.user_cache_ttl, Duration::from_secs(5));
        assert_eq!(s.jobs.stale_after, Duration::from_secs(15 * 60));
        assert_eq!(s.jobs.retention, Duration::from_secs(30 * 86400));
        assert_eq!(s.auth.session_max_age, Duration::from_secs(24 * 3600));
        assert_eq!(s.jobs.max_page, 1000);
        assert_eq!(s.server.max_response_bytes, 8 << 20);
        assert_eq!(s.bootstrap.admin_username, "admin");
        assert!(s.bootstrap.admin_password.is_none());
        assert_eq!(s.log.format, LogFormat::Text);
        assert_eq!(s.server.max_connections, 8192);
        assert_eq!(s.server.max_connections_per_client, 256);
        assert_eq!(s.server.body_timeout, Duration::from_secs(10));
        assert_eq!(s.jobs.max_waiters, 4000);
        assert_eq!(s.jobs.max_waiters_per_user, 100);
        assert_eq!(s.auth.login_queue, 64);
        assert_eq!(s.environment, Environment::Development);
    }

    #[test]
    fn no_secret_is_built_in_and_production_needs_none() {
        assert!(Settings::defaults().unwrap().auth.secrets.is_empty());
        let sources = Sources {
            environment: Some("production".into()),
            ..Sources::default()
        };
        assert!(Settings::load(&sources).unwrap().auth.secrets.is_empty());
    }

    #[test]
    fn files_overlay_defaults() {
        let dir = std::env::temp_dir().join(format!("asyncstatus-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("staging.toml"), "[server]\nport = 9000\n").unwrap();
        let file = dir.join("extra.toml");
        std::fs::write(&file, "[jobs]\nstale_after = \"2m\"\n").unwrap();
        let s = Settings::load(&Sources {
            config_dir: Some(dir.clone()),
            environment: Some("staging".into()),
            file: Some(file),
            env_vars: false,
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(s.server.port, 9000);
        assert_eq!(s.jobs.stale_after, Duration::from_secs(120));
        assert_eq!(s.database.pool_size, 8, "untouched keys keep their default");
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir =
            std::env::temp_dir().join(format!("asyncstatus-settings-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (toml, key) in [
            ("[database]\nurl = \"mysql://x\"\n", "database.url"),
            ("[database]\npool_size = 0\n", "database.pool_size"),
            ("[jobs]\nstale_after = \"soon\"\n", "stale_after"),
            ("[auth]\nsecrets = [\"short\"]\n", "auth.secrets"),
            ("[auth]\nsession_max_age = \"1h\"\n", "auth.session_max_age"),
            (
                "[bootstrap]\nadmin_password = \"seven77\"\n",
                "bootstrap.admin_password",
            ),
            (
                "[server]\nmax_response_bytes = 1000\n",
                "server.max_response_bytes",
            ),
            ("[jobs]\nmax_page = 0\n", "jobs.max_page"),
            ("[server]\ntls_cert = \"/x.pem\"\n", "tls_key"),
            ("[server]\nmax_connections = 0\n", "server.max_connections"),
            (
                "[server]\nmax_connections_per_client = 0\n",
                "server.max_connections_per_client",
            ),
            (
                "[server]\nmax_connections_per_client = 9000\n",
                "server.max_connections_per_client",
            ),
            ("[server]\nbody_timeout = \"0s\"\n", "server.body_timeout"),
            ("[jobs]\nmax_waiters = 0\n", "jobs.max_waiters"),
            ("[jobs]\nevent_keepalive = \"0s\"\n", "jobs.event_keepalive"),
            ("[jobs]\nevent_recheck = \"0s\"\n", "jobs.event_recheck"),
            (
                "[jobs]\nmax_waiters_per_user = 5000\n",
                "jobs.max_waiters_per_user",
            ),
            ("[jobs]\nmax_waiters = 9000\n", "server.max_connections"),
            ("[auth]\nlogin_queue = 0\n", "auth.login_queue"),
        ] {
            let file = dir.join("bad.toml");
            std::fs::write(&file, toml).unwrap();
            let err = Settings::load(&Sources {
                file: Some(file),
                ..Sources::default()
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains(key), "{toml:?} gave {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Environment values are text: a numeric-looking password or secret stays exactly as
    /// given, while typed keys (ports, sizes, booleans, durations, lists) still parse.
    #[test]
    fn environment_variables_keep_their_text_and_parse_typed_keys() {
        let vars = [
            ("ASYNCSTATUS__BOOTSTRAP__ADMIN_PASSWORD", "0012345678"),
            (
                "ASYNCSTATUS__AUTH__SECRETS",
                "00123456789012345678901234567890123,true",
            ),
            ("ASYNCSTATUS__SERVER__PORT", "9090"),
            ("ASYNCSTATUS__SERVER__MAX_BODY_BYTES", "4096"),
            ("ASYNCSTATUS__AUTH__COOKIE_SECURE", "true"),
            ("ASYNCSTATUS__JOBS__STALE_AFTER", "2m"),
            (
                "ASYNCSTATUS__CORS__ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
        ];
        let source = config::Environment::with_prefix("ASYNCSTATUS")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(false)
            .source(Some(
                vars.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ));
        let settings: Settings = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .add_source(source)
            .build()
            .and_then(Config::try_deserialize)
            .unwrap();
        let password = settings.bootstrap.admin_password.unwrap();
        assert_eq!(password.expose_secret(), "0012345678");
        let secrets: Vec<&str> = settings
            .auth
            .secrets
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        assert_eq!(secrets, ["00123456789012345678901234567890123", "true"]);
        assert_eq!(settings.server.port, 9090);
        assert_eq!(settings.server.max_body_bytes, 4096);
        assert!(settings.auth.cookie_secure);
        assert_eq!(settings.jobs.stale_after, Duration::from_secs(120));
        assert_eq!(settings.cors.allowed_origins.len(), 2);
    }

    #[test]
    fn cors_origins_must_be_scheme_host_port() {
        for good in [
            "https://a.example",
            "http://localhost:3000",
            "https://[::1]:8443",
            "http://192.0.2.1",
        ] {
            assert_eq!(origin_problem(good), None, "{good}");
        }
        let mut s = Settings::defaults().unwrap();
        for bad in [
            "*",
            "null",
            "NULL",
            "a.example",
            "ftp://a.example",
            "https://a.example/",
            "https://a.example/app",
            "https://user:pw@a.example",
            "https://a.example?x=1",
            "https://a.example#top",
            "https://A.example",
            "https://a.example:443",
            "https://",
        ] {
            s.cors.allowed_origins = vec!["https://ok.example".into(), bad.into()];
            let err = s.validate().unwrap_err().to_string();
            assert!(
                err.contains("cors.allowed_origins") && err.contains(&format!("'{bad}'")),
                "{bad:?} gave {err}"
            );
        }
    }

    #[test]
    fn trusted_proxies_are_cidrs_named_in_errors() {
        let dir =
            std::env::temp_dir().join(format!("asyncstatus-settings-tp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tp.toml");
        std::fs::write(
            &file,
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::1/32\"]\n",
        )
        .unwrap();
        let s = Settings::load(&Sources {
            file: Some(file.clone()),
            ..Sources::default()
        })
        .unwrap();
        let shown: Vec<String> = s
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        std::fs::write(
            &file,
            "[server]\ntrusted_proxies = \"10.0.0.0/8, 10.0.0.300\"\n",
        )
        .unwrap();
        let err = Settings::load(&Sources {
            file: Some(file),
            ..Sources::default()
        })
        .unwrap_err()
        .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.contains("server.trusted_proxies") && err.contains("'10.0.0.300'"),
            "{err}"
        );
        assert!(Settings::defaults()
            .unwrap()
            .server
            .trusted_proxies
            .is_empty());
    }

    #[test]
    fn secrets_never_print() {
        let mut s = Settings::defaults().unwrap();
        s.auth.secrets = vec![Secret::from("a-configured-secret-0123456789abcdef")];
        let shown = format!("{s:?}");
        assert!(!shown.contains("a-configured-secret"), "{shown}");
    }

    /// No safety rule depends on `ASYNCSTATUS_ENV`: a short secret or password is refused
    /// under any name of environment.
    #[test]
    fn short_or_public_secrets_and_short_passwords_are_refused_in_every_environment() {
        let dir =
            std::env::temp_dir().join(format!("asyncstatus-settings-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("short.toml");
        for (toml, key) in [
            (
                "[auth]\nsecrets = [\"0123456789abcdef0123456789abcde\"]\n",
                "auth.secrets",
            ),
            (
                "[bootstrap]\nadmin_password = \"1234567\"\n",
                "bootstrap.admin_password",
            ),
            (
                "[auth]\nsecrets = [\"asyncstatus-development-secret-do-not-use-in-production\"]\n",
                "development secret of earlier versions",
            ),
        ] {
            std::fs::write(&file, toml).unwrap();
            for environment in [
                None,
                Some("development"),
                Some("staging"),
                Some("production"),
            ] {
                let err = Settings::load(&Sources {
                    file: Some(file.clone()),
                    environment: environment.map(str::to_owned),
                    ..Sources::default()
                })
                .unwrap_err()
                .to_string();
                assert!(err.contains(key), "{environment:?}: {err}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
