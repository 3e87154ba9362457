//! Sessions and the signing secret: a logout stores the session's id until the session could
//! not be used anyway; the generated signing secret is one row, created race-free.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::pool::DbConn;
use crate::schema::{revoked_session, signing_secret};
use crate::time::UtcTime;
use crate::{Store, StoreError};

impl Store {
    /// Refuses every token of the session `session_id` from now on (until `expires`, after
    /// which the session is refused anyway). Revoking twice is harmless.
    pub fn revoke_session(
        &self,
        session_id: &str,
        expires: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        StoreError::already_there(self.with_conn(|conn| {
            diesel::insert_into(revoked_session::table)
                .values((
                    revoked_session::sid.eq(session_id),
                    revoked_session::expires_at.eq(UtcTime(expires)),
                ))
                .execute(conn)
                .map_err(StoreError::query("revoking a session"))
        }))
    }

    /// Whether the session `session_id` was revoked.
    pub fn is_session_revoked(&self, session_id: &str) -> Result<bool, StoreError> {
        let n: i64 = self.read(|conn| {
            revoked_session::table
                .find(session_id)
                .count()
                .get_result(conn)
                .map_err(StoreError::query("checking a revoked session"))
        })?;
        Ok(n > 0)
    }

    /// Forgets revocations of sessions that have expired by `now`; returns how many.
    pub fn purge_expired_revocations(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.with_conn(|conn| {
            diesel::delete(
                revoked_session::table.filter(revoked_session::expires_at.lt(UtcTime(now))),
            )
            .execute(conn)
            .map_err(StoreError::query("purging expired revocations"))
        })
    }

    /// The stored signing secret; when there is none yet, `candidate` is stored and returned.
    /// Race-free: of several processes calling this at once on one database, the first
    /// insert wins (the others' meet the unique key) and every one reads back the same secret.
    pub fn signing_secret_or_insert(&self, candidate: &str) -> Result<String, StoreError> {
        fn stored(conn: &mut DbConn) -> QueryResult<String> {
            signing_secret::table
                .find(1)
                .select(signing_secret::secret)
                .first::<String>(conn)
        }
        const READING: &str = "reading the signing secret";
        self.with_conn(|conn| {
            if let Some(secret) = stored(conn)
                .optional()
                .map_err(StoreError::query(READING))?
            {
                return Ok(secret);
            }
            // Already there when another process stored its secret since we looked.
            StoreError::already_there(
                diesel::insert_into(signing_secret::table)
                    .values((
                        signing_secret::id.eq(1),
                        signing_secret::secret.eq(candidate),
                        signing_secret::created_at.eq(UtcTime(crate::now_micros())),
                    ))
                    .execute(conn)
                    .map_err(StoreError::query("storing the generated signing secret")),
            )?;
            stored(conn).map_err(StoreError::query(READING))
        })
    }
}
