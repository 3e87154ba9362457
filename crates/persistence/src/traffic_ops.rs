//! Traffic Ops' own tables, for `database.layout = "traffic_ops"` (PostgreSQL only): its
//! `async_status` jobs, and its users with their role, privilege level and permissions.
//! Read as Traffic Ops defines them (shared/TRAFFIC_OPS.md §1), never altered: these tables are
//! declared here, apart from asyncstatus' own in [`crate::schema`], with Traffic Ops' column
//! types (`role.priv_level` is a bigint there, `tm_user.role` may be NULL), and named with
//! their schema, `public`, so that no table of the search path's other schemas (a schema
//! named after the database role comes first by default) can stand in for them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::PgConnection;

use crate::pool::DbConn;
use crate::{Store, StoreError};

mod tables {
    diesel::table! {
        public.async_status (id) {
            id -> BigInt,
            status -> Text,
            message -> Nullable<Text>,
            start_time -> Timestamptz,
            end_time -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        public.tm_user (id) {
            id -> BigInt,
            username -> Text,
            role -> Nullable<BigInt>,
            local_passwd -> Nullable<Text>,
        }
    }

    diesel::table! {
        public.role (id) {
            id -> BigInt,
            name -> Text,
            priv_level -> BigInt,
        }
    }

    diesel::table! {
        public.role_capability (role_id, cap_name) {
            role_id -> BigInt,
            cap_name -> Text,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(tm_user, role, role_capability);

    // asyncstatus' own, in its schema (migrations/traffic_ops).
    diesel::table! {
        asyncstatus.revoked_cookie (digest) {
            digest -> Text,
            username -> Text,
            expires -> Timestamptz,
        }
    }
}

use tables::{async_status, revoked_cookie, role, role_capability, tm_user};

/// The most revoked cookies kept for one user (the newest); see the migration.
pub const MAX_REVOKED_PER_USER: i64 = 1000;

/// The Traffic Ops tables asyncstatus needs in this layout; start-up names those missing.
pub const TRAFFIC_OPS_TABLES: [&str; 4] = ["async_status", "tm_user", "role", "role_capability"];

/// A row of Traffic Ops' `async_status`, as it is stored (its status is Traffic Ops' text),
/// with the UTC offset of each time in the database session's zone (the server's default),
/// in which Traffic Ops shows them.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct TrafficOpsJob {
    pub id: i64,
    pub status: String,
    pub message: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    /// Seconds east of UTC of `start_time` in the session's zone.
    pub start_offset: i32,
    /// Seconds east of UTC of `end_time` in the session's zone.
    pub end_offset: Option<i32>,
}

impl TrafficOpsJob {
    /// Whether the job has finished: Traffic Ops writes `SUCCEEDED` or `FAILED` when it does.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "SUCCEEDED" | "FAILED")
    }
}

/// A Traffic Ops user with a role (`tm_user` joined with `role` and its `role_capability`
/// names, as Traffic Ops loads a user for a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficOpsUser {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub priv_level: i64,
    /// The role's `role_capability` names, sorted.
    pub permissions: Vec<String>,
    /// `local_passwd`: a `SCRYPT:…` hash (or a legacy SHA-1), or none.
    pub local_passwd: Option<String>,
    /// The digests of the user's cookies revoked by a logout at asyncstatus and not yet
    /// expired (at most [`MAX_REVOKED_PER_USER`]).
    pub revoked: Vec<String>,
}

/// `EXTRACT(timezone FROM t)`: the offset of `t` in the session's zone, in seconds.
type Offset = diesel::expression::SqlLiteral<diesel::sql_types::Integer>;
type NullableOffset =
    diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Integer>>;

/// The columns a job is read with, in [`TrafficOpsJob`]'s order.
type JobColumns = (
    async_status::id,
    async_status::status,
    async_status::message,
    async_status::start_time,
    async_status::end_time,
    Offset,
    NullableOffset,
);

fn job_columns() -> JobColumns {
    (
        async_status::id,
        async_status::status,
        async_status::message,
        async_status::start_time,
        async_status::end_time,
        diesel::dsl::sql("EXTRACT(timezone FROM async_status.start_time)::integer"),
        diesel::dsl::sql("EXTRACT(timezone FROM async_status.end_time)::integer"),
    )
}

/// At most this many ids are read in one statement (PostgreSQL binds an array as one
/// parameter, so this only bounds each answer).
pub const MAX_IDS_PER_READ: usize = 10_000;

#[derive(QueryableByName)]
struct Missing {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// Announces changes to the jobs `ids` to every replica, in one statement, as asyncstatus' own
/// layout's trigger does (on channel `async_status`, at commit): no trigger may be added to
/// Traffic Ops' table, so asyncstatus' own writes say it themselves; Traffic Ops' writes are
/// found by the re-read of waited jobs.
fn notify_replicas(pg: &mut PgConnection, ids: &[i64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::sql_query("SELECT pg_notify('async_status', id::text) FROM unnest($1) AS id")
        .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(ids)
        .execute(pg)
        .map(|_| ())
        .map_err(StoreError::query("announcing changes to Traffic Ops' jobs"))
}

impl Store {
    /// Runs a read on the PostgreSQL connection; this layout has no other.
    fn read_traffic_ops<T>(
        &self,
        context: &'static str,
        read: impl Fn(&mut PgConnection) -> QueryResult<T>,
    ) -> Result<T, StoreError> {
        self.read(|conn| match conn {
            DbConn::Postgres(pg) => read(pg).map_err(StoreError::query(context)),
            DbConn::Sqlite(_) => Err(StoreError::Setup(
                "Traffic Ops' tables are on PostgreSQL only".into(),
            )),
        })
    }

    /// The tables of [`TRAFFIC_OPS_TABLES`] the database's `public` schema lacks.
    pub fn missing_traffic_ops_tables(&self) -> Result<Vec<String>, StoreError> {
        let names: Vec<String> = TRAFFIC_OPS_TABLES.iter().map(|t| t.to_string()).collect();
        let missing: Vec<Missing> =
            self.read_traffic_ops("looking for Traffic Ops' tables", |pg| {
                diesel::sql_query(
                    "SELECT t AS name FROM unnest($1::text[]) WITH ORDINALITY AS n (t, i) \
                 WHERE to_regclass('public.' || quote_ident(t)) IS NULL ORDER BY i",
                )
                .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(&names)
                .load(pg)
            })?;
        Ok(missing.into_iter().map(|m| m.name).collect())
    }

    /// Whether this PostgreSQL database is a Traffic Ops one that asyncstatus' own layout
    /// never migrated: it has Traffic Ops' `tenant` table (asyncstatus has none) and no
    /// migration bookkeeping in `public`. Migrating it in the default layout would fail on
    /// Traffic Ops' `role` and leave a table behind in its schema. `false` on SQLite.
    pub fn is_unmigrated_traffic_ops_database(&self) -> Result<bool, StoreError> {
        #[derive(QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            found: bool,
        }
        if self.backend() != crate::Backend::Postgres {
            return Ok(false);
        }
        self.read_traffic_ops("looking for Traffic Ops' tables", |pg| {
            diesel::sql_query(
                "SELECT to_regclass('public.tenant') IS NOT NULL \
                 AND to_regclass('public.__diesel_schema_migrations') IS NULL AS found",
            )
            .get_result::<Found>(pg)
            .map(|f| f.found)
        })
    }

    /// The Traffic Ops job `id`, if there is one.
    pub fn traffic_ops_job(&self, id: i64) -> Result<Option<TrafficOpsJob>, StoreError> {
        self.read_traffic_ops("reading a Traffic Ops job", |pg| {
            async_status::table
                .find(id)
                .select(job_columns())
                .first(pg)
                .optional()
        })
    }

    /// The Traffic Ops jobs among `ids`, on the primary key: one statement per
    /// [`MAX_IDS_PER_READ`] ids.
    pub fn traffic_ops_jobs(&self, ids: &[i64]) -> Result<Vec<TrafficOpsJob>, StoreError> {
        let mut jobs = Vec::new();
        for chunk in ids.chunks(MAX_IDS_PER_READ) {
            jobs.extend(self.read_traffic_ops("reading Traffic Ops jobs", |pg| {
                async_status::table
                    .filter(async_status::id.eq_any(chunk))
                    .select(job_columns())
                    .load::<TrafficOpsJob>(pg)
            })?);
        }
        Ok(jobs)
    }

    /// Fails, in one statement, at most `limit` Traffic Ops jobs still `PENDING` that started
    /// before `started_before`, as Traffic Ops finishes a job (status, message,
    /// `end_time = now()`); the message says it was abandoned and since when, followed by the
    /// job's last message. Returns the jobs failed.
    ///
    /// Traffic Ops' table has no index on `status` or `start_time` and none may be added, so
    /// this reads the table by its primary key from `from_id` up: the caller passes the
    /// lowest id still `PENDING` at its last sweep (Traffic Ops' ids grow with time and its
    /// finished jobs stay finished), so years of finished jobs below it are not read again.
    pub fn fail_stuck_traffic_ops_jobs(
        &self,
        from_id: i64,
        started_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<TrafficOpsJob>, StoreError> {
        use diesel::sql_types::{BigInt, Timestamptz};
        #[derive(QueryableByName)]
        struct Failed {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        self.write(|conn| {
            let DbConn::Postgres(pg) = conn else {
                return Err(StoreError::Setup(
                    "Traffic Ops' tables are on PostgreSQL only".into(),
                ));
            };
            let failed: Vec<Failed> = diesel::sql_query(
                "UPDATE public.async_status AS a \
                 SET status = 'FAILED', end_time = now(), \
                     message = 'abandoned: still PENDING since ' \
                        || to_char(a.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                        || ' (failed by asyncstatus, traffic_ops.fail_stuck_after)' \
                        || COALESCE('; last message: ' || a.message, '') \
                 WHERE a.id IN (SELECT s.id FROM public.async_status s \
                                WHERE s.id >= $1 AND s.status = 'PENDING' AND s.start_time < $2 \
                                ORDER BY s.id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                   AND a.status = 'PENDING' \
                 RETURNING a.id",
            )
            .bind::<BigInt, _>(from_id)
            .bind::<Timestamptz, _>(started_before)
            .bind::<BigInt, _>(limit)
            .load(pg)
            .map_err(StoreError::query("failing stuck Traffic Ops jobs"))?;
            let ids: Vec<i64> = failed.iter().map(|f| f.id).collect();
            notify_replicas(pg, &ids)?;
            let jobs = async_status::table
                .filter(async_status::id.eq_any(&ids))
                .select(job_columns())
                .load(pg)
                .map_err(StoreError::query("reading failed Traffic Ops jobs"))?;
            Ok(jobs)
        })
    }

    /// Where the next sweep for stuck jobs starts: the lowest id of a job still `PENDING` at
    /// or above `from_id`, else one past the highest id (else `from_id`). It reads the rows
    /// from `from_id` up once, along the primary key; a sweep that fails what is stuck keeps
    /// that range to the jobs of the last `traffic_ops.fail_stuck_after`.
    pub fn traffic_ops_sweep_cursor(&self, from_id: i64) -> Result<i64, StoreError> {
        use diesel::sql_types::BigInt;
        #[derive(QueryableByName)]
        struct Cursor {
            #[diesel(sql_type = BigInt)]
            cursor: i64,
        }
        self.read_traffic_ops("looking for pending Traffic Ops jobs", |pg| {
            diesel::sql_query(
                "SELECT COALESCE(MIN(id) FILTER (WHERE status = 'PENDING'), MAX(id) + 1, $1) \
                 AS cursor FROM public.async_status WHERE id >= $1",
            )
            .bind::<BigInt, _>(from_id)
            .get_result::<Cursor>(pg)
            .map(|c| c.cursor)
        })
    }

    /// A page of Traffic Ops' jobs along the primary key, the only index its table has: after
    /// the id `after` (in `descending` order, before it), at most `limit`, only the job `id`
    /// when given. Cheap at any size: one index range scan of `limit` rows.
    pub fn list_traffic_ops_jobs(
        &self,
        id: Option<i64>,
        after: Option<i64>,
        descending: bool,
        limit: i64,
    ) -> Result<Vec<TrafficOpsJob>, StoreError> {
        self.read_traffic_ops("listing Traffic Ops jobs", |pg| {
            let mut query = async_status::table.select(job_columns()).into_boxed();
            if let Some(id) = id {
                query = query.filter(async_status::id.eq(id));
            }
            query = match (after, descending) {
                (Some(after), false) => query.filter(async_status::id.gt(after)),
                (Some(after), true) => query.filter(async_status::id.lt(after)),
                (None, _) => query,
            };
            query = if descending {
                query.order(async_status::id.desc())
            } else {
                query.order(async_status::id.asc())
            };
            query.limit(limit).load(pg)
        })
    }

    /// Starts a job as Traffic Ops does: `PENDING` with `message`, `start_time` by the
    /// table's default, committed at once. The job as stored.
    pub fn create_traffic_ops_job(
        &self,
        message: Option<&str>,
    ) -> Result<TrafficOpsJob, StoreError> {
        let job: TrafficOpsJob = self.write(|conn| {
            let DbConn::Postgres(pg) = conn else {
                return Err(StoreError::Setup(
                    "Traffic Ops' tables are on PostgreSQL only".into(),
                ));
            };
            let job: TrafficOpsJob = diesel::insert_into(async_status::table)
                .values((
                    async_status::status.eq("PENDING"),
                    async_status::message.eq(message),
                ))
                .returning(job_columns())
                .get_result(pg)
                .map_err(StoreError::query("creating a Traffic Ops job"))?;
            notify_replicas(pg, &[job.id])?;
            Ok(job)
        })?;
        self.announce(crate::Change::Job(job.id));
        Ok(job)
    }

    /// Updates a `PENDING` job as Traffic Ops does (status, message when given, and
    /// `end_time = now()` when `status` finishes it), guarded: a job that has finished is not
    /// changed (`Ok(Err(status))` says which it is), nor a missing one (`Ok(Ok(None))`).
    pub fn update_traffic_ops_job(
        &self,
        id: i64,
        status: &str,
        message: Option<&str>,
    ) -> Result<Result<Option<TrafficOpsJob>, String>, StoreError> {
        let finishes = matches!(status, "SUCCEEDED" | "FAILED");
        let outcome = self.write(|conn| {
            let DbConn::Postgres(pg) = conn else {
                return Err(StoreError::Setup(
                    "Traffic Ops' tables are on PostgreSQL only".into(),
                ));
            };
            let target = async_status::table
                .find(id)
                .filter(async_status::status.eq("PENDING"));
            let end_time = diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >(if finishes { "now()" } else { "end_time" });
            let updated: Option<TrafficOpsJob> = match message {
                Some(m) => diesel::update(target)
                    .set((
                        async_status::status.eq(status),
                        async_status::message.eq(m),
                        async_status::end_time.eq(end_time),
                    ))
                    .returning(job_columns())
                    .get_result(pg)
                    .optional(),
                None => diesel::update(target)
                    .set((
                        async_status::status.eq(status),
                        async_status::end_time.eq(end_time),
                    ))
                    .returning(job_columns())
                    .get_result(pg)
                    .optional(),
            }
            .map_err(StoreError::query("updating a Traffic Ops job"))?;
            if let Some(job) = updated {
                notify_replicas(pg, &[job.id])?;
                return Ok(Ok(Some(job)));
            }
            let current: Option<String> = async_status::table
                .find(id)
                .select(async_status::status)
                .first(pg)
                .optional()
                .map_err(StoreError::query("reading a Traffic Ops job"))?;
            Ok(current.map_or(Ok(None), Err))
        })?;
        if let Ok(Some(job)) = &outcome {
            self.announce(crate::Change::Job(job.id));
        }
        Ok(outcome)
    }

    /// The Traffic Ops user `username` with its role, or `None` when there is no such user or
    /// it has no role (Traffic Ops joins the role, so such a user is "not found" there too).
    pub fn traffic_ops_user(&self, username: &str) -> Result<Option<TrafficOpsUser>, StoreError> {
        type Row = (i64, String, Option<String>, String, i64, Option<String>);
        let (rows, revoked): (Vec<Row>, Vec<String>) =
            self.read_traffic_ops("loading a Traffic Ops user", |pg| {
                let rows = tm_user::table
                    .inner_join(role::table.on(tm_user::role.eq(role::id.nullable())))
                    .left_join(role_capability::table.on(role_capability::role_id.eq(role::id)))
                    .filter(tm_user::username.eq(username))
                    .select((
                        tm_user::id,
                        tm_user::username,
                        tm_user::local_passwd,
                        role::name,
                        role::priv_level,
                        role_capability::cap_name.nullable(),
                    ))
                    .order(role_capability::cap_name.asc())
                    .load(pg)?;
                if rows.is_empty() {
                    return Ok((rows, Vec::new()));
                }
                let revoked = revoked_cookie::table
                    .filter(revoked_cookie::username.eq(username))
                    .filter(revoked_cookie::expires.ge(diesel::dsl::now))
                    .select(revoked_cookie::digest)
                    .limit(MAX_REVOKED_PER_USER)
                    .load(pg)?;
                Ok((rows, revoked))
            })?;
        let mut rows = rows.into_iter();
        let Some((id, username, local_passwd, role, priv_level, first)) = rows.next() else {
            return Ok(None);
        };
        let permissions = first.into_iter().chain(rows.filter_map(|r| r.5)).collect();
        Ok(Some(TrafficOpsUser {
            id,
            username,
            role,
            priv_level,
            permissions,
            local_passwd,
            revoked,
        }))
    }

    /// Refuses the cookie of `username` whose digest is `digest` until it `expires` (a logout
    /// at asyncstatus). Expired rows are removed meanwhile, and the user's oldest beyond
    /// [`MAX_REVOKED_PER_USER`].
    pub fn revoke_traffic_ops_cookie(
        &self,
        username: &str,
        digest: &str,
        expires: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            let DbConn::Postgres(pg) = conn else {
                return Err(StoreError::Setup(
                    "Traffic Ops' tables are on PostgreSQL only".into(),
                ));
            };
            diesel::delete(
                revoked_cookie::table.filter(revoked_cookie::expires.lt(diesel::dsl::now)),
            )
            .execute(pg)
            .map_err(StoreError::query("forgetting expired revoked cookies"))?;
            diesel::insert_into(revoked_cookie::table)
                .values((
                    revoked_cookie::digest.eq(digest),
                    revoked_cookie::username.eq(username),
                    revoked_cookie::expires.eq(expires),
                ))
                .on_conflict_do_nothing()
                .execute(pg)
                .map_err(StoreError::query("revoking a cookie"))?;
            diesel::sql_query(
                "DELETE FROM asyncstatus.revoked_cookie WHERE username = $1 AND digest NOT IN \
                 (SELECT digest FROM asyncstatus.revoked_cookie WHERE username = $1 \
                  ORDER BY expires DESC LIMIT $2)",
            )
            .bind::<diesel::sql_types::Text, _>(username)
            .bind::<diesel::sql_types::BigInt, _>(MAX_REVOKED_PER_USER)
            .execute(pg)
            .map(|_| ())
            .map_err(StoreError::query("trimming a user's revoked cookies"))
        })
    }
}
