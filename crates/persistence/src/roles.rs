//! Roles and their permissions (Traffic Ops' `role` and `role_capability`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use diesel::sql_types::Text;

use crate::pool::DbConn;
use crate::schema::{role, role_capability};
use crate::time::{UtcTime, UtcTimestamp};
use crate::{Store, StoreError};

/// A role with its granted permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
}

/// The id of the role named `name`, or `NotFound` naming it.
pub(crate) fn role_id(conn: &mut DbConn, name: &str) -> Result<i64, StoreError> {
    role::table
        .filter(role::name.eq(name))
        .select(role::id)
        .first::<i64>(conn)
        .optional()
        .map_err(StoreError::query("finding a role"))?
        .ok_or_else(|| StoreError::NotFound(format!("role '{name}'")))
}

impl Store {
    /// Adds a role with no permissions. `Conflict` if the name is taken.
    pub fn add_role(
        &self,
        name: &str,
        description: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            diesel::insert_into(role::table)
                .values((
                    role::name.eq(name),
                    role::description.eq(description),
                    role::last_updated.eq(UtcTime(now)),
                ))
                .execute(conn)
                .map_err(StoreError::query("adding a role"))
        })
        .map_err(|e| e.conflict_says(|| format!("role '{name}' already exists")))?;
        Ok(())
    }

    /// Grants a permission to a role; granting one it holds changes nothing. Returns whether
    /// it was newly granted.
    pub fn grant_permission(
        &self,
        role_name: &str,
        permission: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // One statement: the role's row, if there is one, gives the new grant's.
        let granted = self.with_conn(|conn| {
            diesel::insert_into(role_capability::table)
                .values(role::table.filter(role::name.eq(role_name)).select((
                    role::id,
                    permission.into_sql::<Text>(),
                    UtcTime(now).into_sql::<UtcTimestamp>(),
                )))
                .into_columns((
                    role_capability::role_id,
                    role_capability::cap_name,
                    role_capability::last_updated,
                ))
                .execute(conn)
                .map_err(StoreError::query("granting a permission"))
        });
        match granted {
            Ok(0) => Err(StoreError::NotFound(format!("role '{role_name}'"))),
            Ok(_) => Ok(true),
            // A unique violation: the role holds it already.
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Revokes a permission from a role. Returns whether the role held it.
    pub fn revoke_permission(&self, role_name: &str, permission: &str) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            let removed = diesel::delete(
                role_capability::table
                    .filter(
                        role_capability::role_id.eq_any(
                            role::table
                                .filter(role::name.eq(role_name))
                                .select(role::id),
                        ),
                    )
                    .filter(role_capability::cap_name.eq(permission)),
            )
            .execute(conn)
            .map_err(StoreError::query("revoking a permission"))?;
            if removed == 0 {
                // Not held, or no such role: only then look.
                role_id(conn, role_name)?;
            }
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
