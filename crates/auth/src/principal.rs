//! The authenticated user and what it may do.

use asyncstatus_domain::{Permission, ADMIN_ROLE};

/// Which rule decides what a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessRule {
    /// The role's permissions (a role named `admin` holds all): asyncstatus' rule, and
    /// Traffic Ops' under `role_based_permissions = true`.
    #[default]
    Permissions,
    /// Traffic Ops' rule under `role_based_permissions = false`: the role's `priv_level`
    /// must reach [`crate::traffic_ops::ASYNC_STATUS_PRIV_LEVEL`]; permissions are ignored.
    PrivLevel(i64),
}

/// Who is asking: a user, its role, and the role's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub role: String,
    /// Sorted permission names of the role (the `admin` role holds all regardless).
    pub permissions: Vec<String>,
    pub rule: AccessRule,
}

impl Principal {
    /// Whether the principal holds `permission`.
    pub fn has(&self, permission: &Permission) -> bool {
        match self.rule {
            AccessRule::PrivLevel(level) => level >= crate::traffic_ops::ASYNC_STATUS_PRIV_LEVEL,
            AccessRule::Permissions => {
                self.role == ADMIN_ROLE || self.permissions.iter().any(|p| p == permission.as_str())
            }
        }
    }

    /// `Ok` when every permission is held, else `Forbidden` naming each one missing.
    pub fn require(&self, needed: &[Permission]) -> Result<(), crate::AuthError> {
        if let AccessRule::PrivLevel(_) = self.rule {
            return if needed.iter().all(|p| self.has(p)) {
                Ok(())
            } else {
                Err(crate::AuthError::PrivLevel)
            };
        }
        let missing: Vec<Permission> = needed.iter().filter(|p| !self.has(p)).cloned().collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(crate::AuthError::Forbidden(missing))
        }
    }

    /// The permissions to show: the role's, or every known one for `admin`.
    pub fn effective_permissions(&self) -> Vec<String> {
        let mut all = self.permissions.clone();
        if self.role == ADMIN_ROLE {
            all.extend(Permission::KNOWN.iter().map(|p| p.as_str().to_owned()));
            all.sort();
            all.dedup();
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthError;

    fn principal(role: &str, perms: &[&str]) -> Principal {
        Principal {
            user_id: 1,
            username: "u".into(),
            role: role.into(),
            permissions: perms.iter().map(|p| p.to_string()).collect(),
            rule: AccessRule::Permissions,
        }
    }

    #[test]
    fn admin_holds_everything() {
        let admin = principal("admin", &[]);
        assert!(admin.require(&Permission::KNOWN).is_ok());
        assert!(admin.has(&Permission::new("SERVER:READ").unwrap()));
        assert_eq!(admin.effective_permissions().len(), Permission::KNOWN.len());
    }

    #[test]
    fn others_hold_their_grants_and_missing_ones_are_named() {
        let reader = principal("watcher", &["ASYNC-STATUS:READ"]);
        assert!(reader.require(&[Permission::ASYNC_STATUS_READ]).is_ok());
        match reader.require(&[
            Permission::ASYNC_STATUS_READ,
            Permission::ASYNC_STATUS_CREATE,
            Permission::ASYNC_STATUS_DELETE,
        ]) {
            Err(AuthError::Forbidden(missing)) => assert_eq!(
                missing,
                vec![
                    Permission::ASYNC_STATUS_CREATE,
                    Permission::ASYNC_STATUS_DELETE
                ]
            ),
            other => panic!("{other:?}"),
        }
    }
}
