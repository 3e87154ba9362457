//! Permissions and the roles that are seeded.

use std::borrow::Cow;
use std::fmt;

/// A permission name such as `ASYNC-STATUS:READ`. Roles may hold any name (Traffic Ops has
/// many more); asyncstatus checks the five below.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(Cow<'static, str>);

impl Permission {
    pub const ASYNC_STATUS_READ: Permission = Permission(Cow::Borrowed("ASYNC-STATUS:READ"));
    pub const ASYNC_STATUS_CREATE: Permission = Permission(Cow::Borrowed("ASYNC-STATUS:CREATE"));
    pub const ASYNC_STATUS_UPDATE: Permission = Permission(Cow::Borrowed("ASYNC-STATUS:UPDATE"));
    pub const ASYNC_STATUS_DELETE: Permission = Permission(Cow::Borrowed("ASYNC-STATUS:DELETE"));
    pub const ASYNC_STATUS_CANCEL: Permission = Permission(Cow::Borrowed("ASYNC-STATUS:CANCEL"));

    /// The permissions asyncstatus itself checks.
    pub const KNOWN: [Permission; 5] = [
        Permission::ASYNC_STATUS_READ,
        Permission::ASYNC_STATUS_CREATE,
        Permission::ASYNC_STATUS_UPDATE,
        Permission::ASYNC_STATUS_DELETE,
        Permission::ASYNC_STATUS_CANCEL,
    ];

    /// A permission by name. Names are 1–100 characters of `A-Z a-z 0-9 - _ : .`.
    pub fn new(name: impl Into<String>) -> Result<Self, crate::ValidationError> {
        let name = name.into();
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_:.".contains(c);
        if name.is_empty() || name.len() > 100 || !name.chars().all(ok_char) {
            return Err(crate::ValidationError::Permission(name));
        }
        Ok(Permission(Cow::Owned(name)))
    }

    /// The name as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The role that holds every permission, whatever its stored grants.
pub const ADMIN_ROLE: &str = "admin";
/// The role whose users cannot log in.
pub const DISALLOWED_ROLE: &str = "disallowed";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_permissions_are_spelled_as_traffic_ops_does() {
        let names: Vec<&str> = Permission::KNOWN.iter().map(Permission::as_str).collect();
        assert_eq!(
            names,
            [
                "ASYNC-STATUS:READ",
                "ASYNC-STATUS:CREATE",
                "ASYNC-STATUS:UPDATE",
                "ASYNC-STATUS:DELETE",
                "ASYNC-STATUS:CANCEL"
            ]
        );
    }

    #[test]
    fn permission_names_are_checked() {
        assert_eq!(
            Permission::new("ASYNC-STATUS:READ"),
            Ok(Permission::ASYNC_STATUS_READ)
        );
        assert!(Permission::new("SERVER:READ").is_ok());
        for bad in ["", "has space", "semi;colon", &"X".repeat(101)] {
            assert!(Permission::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
