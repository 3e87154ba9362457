//! Users: the user with role and permissions in one query, add, remove, set-role, list.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};

use crate::roles::role_id;
use crate::schema::{role, role_capability, tm_user};
use crate::time::{UtcTime, UtcTimestamp};
use crate::{Store, StoreError};

/// A user with the name and permissions of its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    /// Traffic Ops' `local_passwd`: a `SCRYPT:…` hash, or none (cannot log in).
    pub password_hash: Option<String>,
    pub role: String,
    pub permissions: Vec<String>,
    pub last_authenticated: Option<DateTime<Utc>>,
}

type UserRow = (
    i64,
    String,
    Option<String>,
    String,
    Option<UtcTime>,
    Option<String>,
);

impl Store {
    /// A user by name, with its role's name and permissions, in one query.
    pub fn find_user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let rows: Vec<UserRow> = self.read(|conn| {
            tm_user::table
                .inner_join(role::table)
                .left_join(role_capability::table.on(role_capability::role_id.eq(role::id)))
                .filter(tm_user::username.eq(name))
                .select((
                    tm_user::id,
                    tm_user::username,
                    tm_user::local_passwd,
                    role::name,
                    tm_user::last_authenticated,
                    role_capability::cap_name.nullable(),
                ))
                .order(role_capability::cap_name.asc())
                .load(conn)
                .map_err(StoreError::query("loading a user"))
        })?;
        let mut rows = rows.into_iter();
        let Some((id, username, password_hash, role, last_auth, first_cap)) = rows.next() else {
            return Ok(None);
        };
        let permissions = first_cap
            .into_iter()
            .chain(rows.filter_map(|row| row.5))
            .collect();
        Ok(Some(UserRecord {
            id,
            username,
            password_hash,
            role,
            permissions,
            last_authenticated: last_auth.map(|t| t.0),
        }))
    }

    /// How many users exist.
    pub fn count_users(&self) -> Result<i64, StoreError> {
        self.with_conn(|conn| {
            tm_user::table
                .count()
                .get_result(conn)
                .map_err(StoreError::query("counting users"))
        })
    }

    /// Adds a user with a role. `Conflict` if the name is taken, `NotFound` if the role is.
    pub fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        role_name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // One statement: the role's row, if there is one, gives the new user's.
        let added = self
            .with_conn(|conn| {
                diesel::insert_into(tm_user::table)
                    .values(role::table.filter(role::name.eq(role_name)).select((
                        name.into_sql::<Text>(),
                        Some(password_hash).into_sql::<Nullable<Text>>(),
                        role::id,
                        UtcTime(now).into_sql::<UtcTimestamp>(),
                    )))
                    .into_columns((
                        tm_user::username,
                        tm_user::local_passwd,
                        tm_user::role,
                        tm_user::last_updated,
                    ))
                    .execute(conn)
                    .map_err(StoreError::query("adding a user"))
            })
            .map_err(|e| e.conflict_says(|| format!("user '{name}' already exists")))?;
        if added == 0 {
            return Err(StoreError::NotFound(format!("role '{role_name}'")));
        }
        Ok(())
    }

    /// Removes a user. `NotFound` if there is none.
    pub fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let removed = self.with_conn(|conn| {
            diesel::delete(tm_user::table.filter(tm_user::username.eq(name)))
                .execute(conn)
                .map_err(StoreError::query("removing a user"))
        })?;
        if removed == 0 {
            return Err(StoreError::NotFound(format!("user '{name}'")));
        }
        Ok(())
    }

    /// Gives a user another role. `NotFound` for an unknown user or role.
    pub fn set_user_role(
        &self,
        name: &str,
        role_name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            let rid = role_id(conn, role_name)?;
            let changed = diesel::update(tm_user::table.filter(tm_user::username.eq(name)))
                .set((
                    tm_user::role.eq(rid),
                    tm_user::last_updated.eq(UtcTime(now)),
                ))
                .execute(conn)
                .map_err(StoreError::query("setting a user's role"))?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("user '{name}'")));
            }
            Ok(())
        })
    }

    /// Every user as (username, role), by username.
    pub fn list_users(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.with_conn(|conn| {
            tm_user::table
                .inner_join(role::table)
                .select((tm_user::username, role::name))
                .order(tm_user::username.asc())
                .load(conn)
                .map_err(StoreError::query("listing users"))
        })
    }

    /// Notes a successful login.
    pub fn record_login(&self, user_id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            diesel::update(tm_user::table.find(user_id))
                .set(tm_user::last_authenticated.eq(Some(UtcTime(now))))
                .execute(conn)
                .map(|_| ())
                .map_err(StoreError::query("recording a login"))
        })
    }
}
