//! The tables, as the migrations in `migrations/{postgres,sqlite}` create them. A test
//! compares this with the migrated database of each backend.

diesel::table! {
    use diesel::sql_types::*;
    use crate::time::UtcTimestamp;

    async_status (id) {
        id -> BigInt,
        status -> Text,
        message -> Nullable<Text>,
        start_time -> UtcTimestamp,
        end_time -> Nullable<UtcTimestamp>,
        last_updated -> UtcTimestamp,
        kind -> Nullable<Text>,
        /// A JSON object of strings (`{}` when none).
        labels -> Text,
        created_by -> Nullable<Text>,
        progress_done -> Nullable<BigInt>,
        progress_total -> Nullable<BigInt>,
        deadline -> Nullable<UtcTimestamp>,
        /// Seconds.
        heartbeat_timeout -> Nullable<BigInt>,
        /// `last_updated + heartbeat_timeout`, for the reaper's index.
        heartbeat_due -> Nullable<UtcTimestamp>,
        cancel_requested -> Bool,
        cancel_reason -> Nullable<Text>,
        cancel_requested_by -> Nullable<Text>,
        /// The single-flight key; unique among `PENDING` jobs.
        flight_key -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::time::UtcTimestamp;

    role (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
        priv_level -> Integer,
        last_updated -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::time::UtcTimestamp;

    role_capability (role_id, cap_name) {
        role_id -> BigInt,
        cap_name -> Text,
        last_updated -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::time::UtcTimestamp;

    tm_user (id) {
        id -> BigInt,
        username -> Text,
        local_passwd -> Nullable<Text>,
        role -> BigInt,
        last_authenticated -> Nullable<UtcTimestamp>,
        last_updated -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::time::UtcTimestamp;

    revoked_session (sid) {
        sid -> Text,
        expires_at -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::time::UtcTimestamp;

    signing_secret (id) {
        id -> Integer,
        secret -> Text,
        created_at -> UtcTimestamp,
    }
}

diesel::table! {
    /// Jobs by status, in shards (PostgreSQL 16 per status, SQLite 1), kept by triggers on
    /// `async_status`: a status's count is the sum of its rows.
    job_count (status, shard) {
        status -> Text,
        shard -> Integer,
        n -> BigInt,
    }
}

diesel::table! {
    /// Differences to `job_count` not folded into it yet (PostgreSQL's triggers append them,
    /// [`Store::fold_job_counts`](crate::Store::fold_job_counts) moves them; empty on SQLite).
    /// No key: rows are only appended and moved whole.
    job_count_delta (status, n) {
        status -> Text,
        n -> BigInt,
    }
}

diesel::joinable!(tm_user -> role (role));
diesel::joinable!(role_capability -> role (role_id));
diesel::allow_tables_to_appear_in_same_query!(
    async_status,
    role,
    role_capability,
    tm_user,
    revoked_session,
    signing_secret,
    job_count,
    job_count_delta
);
