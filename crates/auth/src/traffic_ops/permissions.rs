//! Traffic Ops' authorization rule for a route (`traffic_ops_golang/routing/routes.go`,
//! `routing/middleware/wrappers.go`), chosen by cdn.conf's `role_based_permissions`:
//!
//! - `false` (Go's default): the role's `priv_level` must reach the route's (20, operations,
//!   for `async_status`); permissions are ignored. Below it: 403 `Forbidden.`.
//! - `true` (the shipped cdn.conf): `priv_level` is ignored; a role *named* `admin` passes
//!   (its `ALL` grant means nothing in code); any other role must hold every required
//!   permission, else 403 `missing required Permissions: <missing, joined by ", ">`.
//!
//! [`crate::Principal::require`] is asyncstatus' own rule (its `admin` role and grants); this
//! is the rule for users read from Traffic Ops' `tm_user`/`role`/`role_capability`.

use asyncstatus_domain::{Permission, ADMIN_ROLE};

/// The `priv_level` of Traffic Ops' `operations` role, which its `async_status` routes need
/// (`PrivLevelOperations`).
pub const ASYNC_STATUS_PRIV_LEVEL: i64 = 20;

/// A Traffic Ops 403; `Display` is Traffic Ops' exact text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrafficOpsForbidden {
    /// `role_based_permissions = false` and the role's priv_level is too low.
    #[error("Forbidden.")]
    PrivLevel,
    /// `role_based_permissions = true` and the role lacks these (in the order required).
    /// The same text as [`crate::AuthError::Forbidden`].
    #[error("missing required Permissions: {}", .0.iter().map(Permission::as_str).collect::<Vec<_>>().join(", "))]
    Missing(Vec<Permission>),
}

/// Whether a Traffic Ops user whose role is `role` (with `priv_level` and the role's
/// `role_capability` names `permissions`) may use a route that needs `required` and
/// [`ASYNC_STATUS_PRIV_LEVEL`], under `role_based_permissions = role_based`.
pub fn authorize_traffic_ops(
    role: &str,
    priv_level: i64,
    permissions: &[String],
    required: &[Permission],
    role_based: bool,
) -> Result<(), TrafficOpsForbidden> {
    authorize_at(
        role,
        priv_level,
        permissions,
        required,
        role_based,
        ASYNC_STATUS_PRIV_LEVEL,
    )
}

/// [`authorize_traffic_ops`] for a route that needs `required_priv_level` instead.
pub fn authorize_at(
    role: &str,
    priv_level: i64,
    permissions: &[String],
    required: &[Permission],
    role_based: bool,
    required_priv_level: i64,
) -> Result<(), TrafficOpsForbidden> {
    if !role_based {
        return if priv_level < required_priv_level {
            Err(TrafficOpsForbidden::PrivLevel)
        } else {
            Ok(())
        };
    }
    if role == ADMIN_ROLE {
        return Ok(());
    }
    let missing: Vec<Permission> = required
        .iter()
        .filter(|needed| !permissions.iter().any(|held| held == needed.as_str()))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TrafficOpsForbidden::Missing(missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: &[Permission] = &[Permission::ASYNC_STATUS_READ];

    fn perms(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// Traffic Ops' seeded roles (`app/db/seeds.sql`) and `trouter` (a later migration).
    fn seeded() -> Vec<(&'static str, i64, Vec<String>)> {
        vec![
            ("admin", 30, perms(&["ALL"])),
            (
                "operations",
                20,
                perms(&["ASYNC-STATUS:READ", "SERVER:READ"]),
            ),
            ("read-only", 10, perms(&["ASYNC-STATUS:READ"])),
            ("steering", 15, perms(&["ASYNC-STATUS:READ"])),
            ("federation", 15, perms(&["ASYNC-STATUS:READ"])),
            ("portal", 2, perms(&["ASYNC-STATUS:READ"])),
            ("trouter", 10, perms(&["SERVER:READ"])),
            ("disallowed", 0, perms(&[])),
        ]
    }

    #[test]
    fn priv_level_rule_passes_operations_and_admin_only() {
        for (role, priv_level, permissions) in seeded() {
            let got = authorize_traffic_ops(role, priv_level, &permissions, READ, false);
            if priv_level >= 20 {
                assert_eq!(got, Ok(()), "{role}");
            } else {
                assert_eq!(got, Err(TrafficOpsForbidden::PrivLevel), "{role}");
                assert_eq!(got.unwrap_err().to_string(), "Forbidden.");
            }
        }
        // Permissions are ignored: priv_level alone decides.
        assert_eq!(authorize_traffic_ops("ops2", 25, &[], READ, false), Ok(()));
        assert_eq!(
            authorize_traffic_ops("admin", 19, &perms(&["ALL"]), READ, false),
            Err(TrafficOpsForbidden::PrivLevel)
        );
    }

    #[test]
    fn role_based_rule_passes_the_holders_and_admin_by_name() {
        for (role, priv_level, permissions) in seeded() {
            let got = authorize_traffic_ops(role, priv_level, &permissions, READ, true);
            match role {
                "trouter" | "disallowed" => {
                    assert_eq!(
                        got.unwrap_err().to_string(),
                        "missing required Permissions: ASYNC-STATUS:READ",
                        "{role}"
                    )
                }
                _ => assert_eq!(got, Ok(()), "{role}"),
            }
        }
        // Priv level is ignored; `ALL` is only a name; `admin` is the role's name.
        assert_eq!(authorize_traffic_ops("admin", 0, &[], READ, true), Ok(()));
        assert!(authorize_traffic_ops("root", 30, &perms(&["ALL"]), READ, true).is_err());
        assert!(authorize_traffic_ops("Admin", 30, &[], READ, true).is_err());
        assert!(
            authorize_traffic_ops("reader", 0, &perms(&["async-status:read"]), READ, true).is_err()
        );
    }

    #[test]
    fn every_missing_permission_is_named_in_order() {
        let got = authorize_traffic_ops(
            "reader",
            30,
            &perms(&["ASYNC-STATUS:READ"]),
            &[
                Permission::ASYNC_STATUS_UPDATE,
                Permission::ASYNC_STATUS_READ,
                Permission::ASYNC_STATUS_CREATE,
            ],
            true,
        );
        assert_eq!(
            got.unwrap_err().to_string(),
            "missing required Permissions: ASYNC-STATUS:UPDATE, ASYNC-STATUS:CREATE"
        );
        assert_eq!(authorize_traffic_ops("nobody", 0, &[], &[], true), Ok(()));
    }

    #[test]
    fn the_missing_text_is_the_one_asyncstatus_already_shows() {
        let missing = vec![Permission::ASYNC_STATUS_READ];
        assert_eq!(
            TrafficOpsForbidden::Missing(missing.clone()).to_string(),
            crate::AuthError::Forbidden(missing).to_string()
        );
    }

    #[test]
    fn another_priv_level_can_be_required() {
        assert_eq!(authorize_at("read-only", 10, &[], READ, false, 10), Ok(()));
        assert_eq!(
            authorize_at("read-only", 10, &[], READ, false, 30),
            Err(TrafficOpsForbidden::PrivLevel)
        );
    }
}
