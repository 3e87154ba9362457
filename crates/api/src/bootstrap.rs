//! The first admin: on a database with no users, create `bootstrap.admin_username` with the
//! configured password, or with a generated one that is shown once. And the signing secret
//! when none is configured: generated once, kept in the database.

use asyncstatus_auth::password::hash_password;
use asyncstatus_domain::ADMIN_ROLE;
use asyncstatus_persistence::{now_micros, Store, StoreError};
use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;
use secrecy::ExposeSecret;

use crate::settings::Settings;

/// The admin created on this start, if any.
#[derive(Debug, Clone)]
pub struct CreatedAdmin {
    pub username: String,
    /// Set when the password was generated (it is shown once, then only its hash exists).
    pub generated_password: Option<String>,
}

/// Creates the first admin when there are no users; `None` when users already exist.
pub fn ensure_admin(
    store: &Store,
    settings: &Settings,
) -> Result<Option<CreatedAdmin>, StoreError> {
    if store.count_users()? > 0 {
        return Ok(None);
    }
    let username = settings.bootstrap.admin_username.clone();
    let (password, generated) = match &settings.bootstrap.admin_password {
        Some(p) if !p.expose_secret().is_empty() => (p.expose_secret().to_owned(), false),
        _ => (Alphanumeric.sample_string(&mut rand::rng(), 24), true),
    };
    match store.add_user(
        &username,
        &hash_password(&password),
        ADMIN_ROLE,
        now_micros(),
    ) {
        Ok(()) => {}
        // Another replica bootstrapped at the same moment: theirs stands.
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok(Some(CreatedAdmin {
        username,
        generated_password: generated.then_some(password),
    }))
}

/// 256 random bits, hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The secrets tokens are signed (the first) and verified with: `auth.secrets` when set,
/// else the secret kept in the database, which the first start generates (256 random bits,
/// hex) and stores race-free, so every replica and every restart uses the same one.
pub fn signing_secrets(store: &Store, settings: &Settings) -> Result<Vec<String>, StoreError> {
    if !settings.auth.secrets.is_empty() {
        return Ok(settings
            .auth
            .secrets
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect());
    }
    let candidate = random_secret();
    let stored = store.signing_secret_or_insert(&candidate)?;
    if stored == candidate {
        tracing::info!("generated a signing secret and stored it in the database");
    }
    Ok(vec![stored])
}
