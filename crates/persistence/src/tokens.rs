//! Revoked tokens: a logout stores the token's `jti` until the token would have expired.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::pool::{with_conn, WriteTransaction};
use crate::schema::revoked_token::dsl::*;
use crate::time::UtcTime;
use crate::{Store, StoreError};

impl Store {
    /// Refuses the token `token_id` from now on (until `expires`, after which it is refused
    /// anyway). Revoking twice is harmless.
    pub fn revoke_token(&self, token_id: &str, expires: DateTime<Utc>) -> Result<(), StoreError> {
        with_conn!(self, |conn| conn.write_transaction(|conn| {
            let known = revoked_token
                .find(token_id)
                .count()
                .get_result::<i64>(conn)
                .map_err(StoreError::query("checking a revoked token"))?;
            if known == 0 {
                diesel::insert_into(revoked_token)
                    .values((jti.eq(token_id), expires_at.eq(UtcTime(expires))))
                    .execute(conn)
                    .map_err(StoreError::query("revoking a token"))?;
            }
            Ok(())
        }))
    }

    /// Whether the token `token_id` was revoked.
    pub fn is_token_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        let n: i64 = self.read(|| {
            with_conn!(self, |conn| revoked_token
                .find(token_id)
                .count()
                .get_result(conn)
                .map_err(StoreError::query("checking a revoked token")))
        })?;
        Ok(n > 0)
    }

    /// Forgets revocations of tokens that have expired by `now`; returns how many.
    pub fn purge_expired_revocations(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        with_conn!(self, |conn| diesel::delete(
            revoked_token.filter(expires_at.lt(UtcTime(now)))
        )
        .execute(conn)
        .map_err(StoreError::query("purging expired revocations")))
    }
}
