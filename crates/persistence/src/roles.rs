//! Roles and their permissions (Traffic Ops' `role` and `role_capability`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::schema::{role, role_capability};
use crate::time::UtcTime;
use crate::{Store, StoreError};

/// A role with its granted permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
}

/// The id of the role named `$name` on `$conn`, or `NotFound` naming it (returns early).
macro_rules! role_id_of {
    ($conn:expr, $name:expr) => {
        $crate::schema::role::table
            .filter($crate::schema::role::name.eq($name))
            .select($crate::schema::role::id)
            .first::<i64>($conn)
            .optional()
            .map_err($crate::StoreError::query("finding a role"))?
            .ok_or_else(|| $crate::StoreError::NotFound(format!("role '{}'", $name)))?
    };
}
pub(crate) use role_id_of;

impl Store {
    /// Adds a role with no permissions. `Conflict` if the name is taken.
    pub fn add_role(
        &self,
        name: &str,
        description: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            let taken = role::table
                .filter(role::name.eq(name))
                .count()
                .get_result::<i64>(conn)
                .map_err(StoreError::query("checking a role name"))?;
            if taken > 0 {
                return Err(StoreError::Conflict(format!(
                    "role '{name}' already exists"
                )));
            }
            diesel::insert_into(role::table)
                .values((
                    role::name.eq(name),
                    role::description.eq(description),
                    role::last_updated.eq(UtcTime(now)),
                ))
                .execute(conn)
                .map_err(StoreError::query("adding a role"))?;
            Ok(())
        })
    }

    /// Grants a permission to a role; granting one it holds changes nothing. Returns whether
    /// it was newly granted.
    pub fn grant_permission(
        &self,
        role_name: &str,
        permission: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(|conn| {
            let rid = role_id_of!(conn, role_name);
            let held = role_capability::table
                .filter(role_capability::role_id.eq(rid))
                .filter(role_capability::cap_name.eq(permission))
                .count()
                .get_result::<i64>(conn)
                .map_err(StoreError::query("checking a permission"))?;
            if held > 0 {
                return Ok(false);
            }
            diesel::insert_into(role_capability::table)
                .values((
                    role_capability::role_id.eq(rid),
                    role_capability::cap_name.eq(permission),
                    role_capability::last_updated.eq(UtcTime(now)),
                ))
                .execute(conn)
                .map_err(StoreError::query("granting a permission"))?;
            Ok(true)
        })
    }

    /// Revokes a permission from a role. Returns whether the role held it.
    pub fn revoke_permission(&self, role_name: &str, permission: &str) -> Result<bool, StoreError> {
        self.write(|conn| {
            let rid = role_id_of!(conn, role_name);
            let removed = diesel::delete(
                role_capability::table
                    .filter(role_capability::role_id.eq(rid))
                    .filter(role_capability::cap_name.eq(permission)),
            )
            .execute(conn)
            .map_err(StoreError::query("revoking a permission"))?;
            Ok(removed > 0)
        })
    }

    /// Every role with its permissions, by name.
    pub fn list_roles(&self) -> Result<Vec<RoleRecord>, StoreError> {
        let rows: Vec<(String, String, Option<String>)> = self.with_conn(|conn| {
            role::table
                .left_join(role_capability::table)
                .select((
                    role::name,
                    role::description,
                    role_capability::cap_name.nullable(),
                ))
                .order((role::name.asc(), role_capability::cap_name.asc()))
                .load(conn)
                .map_err(StoreError::query("listing roles"))
        })?;
        let mut roles: Vec<RoleRecord> = Vec::new();
        for (name, description, cap) in rows {
            match roles.last_mut() {
                Some(last) if last.name == name => last.permissions.extend(cap),
                _ => roles.push(RoleRecord {
                    name,
                    description,
                    permissions: cap.into_iter().collect(),
                }),
            }
        }
        Ok(roles)
    }
}
