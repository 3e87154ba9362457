//! Jobs: get, list, create (single-flight), update while pending, cancel, delete, fail the
//! stale and the overdue, purge the old.

use asyncstatus_domain::job::{abandoned_message, check_transition, deadline_message};
use asyncstatus_domain::{
    After, AsyncStatus, CancelRequest, JobStatus, JobUpdate, Labels, ListQuery, NewJob, OrderBy,
    Progress, SortOrder,
};
use chrono::{DateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};

use crate::pool::{DbConn, MultiBackend};
use crate::schema::async_status::dsl::*;
use crate::time::{UtcTime, UtcTimestamp};
use crate::Backend;
use crate::{Change, Store, StoreError};

/// How many of the first jobs, whose messages have these lengths in bytes, fit a JSON body
/// of about `max_bytes` (always at least one when there is one).
fn rows_that_fit(lengths: &[Option<i32>], max_bytes: usize) -> i64 {
    let mut used = 0usize;
    let mut fit = 0i64;
    for length in lengths {
        let size = JOB_JSON_OVERHEAD + length.map_or(0, |n| usize::try_from(n).unwrap_or(0));
        if fit > 0 && used + size > max_bytes {
            break;
        }
        used += size;
        fit += 1;
    }
    fit
}

/// A row as stored.
#[derive(Queryable)]
struct JobRow {
    id: i64,
    status: String,
    message: Option<String>,
    start_time: UtcTime,
    end_time: Option<UtcTime>,
    last_updated: UtcTime,
    kind: Option<String>,
    labels: String,
    created_by: Option<String>,
    progress_done: Option<i64>,
    progress_total: Option<i64>,
    deadline: Option<UtcTime>,
    heartbeat_timeout: Option<i64>,
    // Read with the row, used only by the reaper's queries.
    _heartbeat_due: Option<UtcTime>,
    cancel_requested: bool,
    cancel_reason: Option<String>,
    cancel_requested_by: Option<String>,
    // Used only by creation.
    _flight_key: Option<String>,
}

impl TryFrom<JobRow> for AsyncStatus {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self, StoreError> {
        let job_status = row
            .status
            .parse::<JobStatus>()
            .map_err(|e| StoreError::Corrupt(format!("async_status {}: {e}", row.id)))?;
        let corrupt = |what: &str| StoreError::Corrupt(format!("async_status {}: {what}", row.id));
        let job_labels: Labels = serde_json::from_str(&row.labels)
            .map_err(|e| corrupt(&format!("labels are not a JSON object of strings: {e}")))?;
        let job_progress = match (row.progress_done, row.progress_total) {
            (Some(done), Some(total)) => Some(
                Progress::new(done, total)
                    .map_err(|_| corrupt(&format!("progress {done}/{total}")))?,
            ),
            _ => None,
        };
        Ok(AsyncStatus {
            id: row.id,
            status: job_status,
            message: row.message,
            start_time: row.start_time.0,
            end_time: row.end_time.map(|t| t.0),
            last_updated: row.last_updated.0,
            kind: row.kind,
            labels: job_labels,
            created_by: row.created_by,
            progress: job_progress,
            deadline: row.deadline.map(|t| t.0),
            heartbeat_timeout: row.heartbeat_timeout,
            cancel_requested: row.cancel_requested,
            cancel_reason: row.cancel_reason,
            cancel_requested_by: row.cancel_requested_by,
        })
    }
}

fn to_jobs(rows: Vec<JobRow>) -> Result<Vec<AsyncStatus>, StoreError> {
    rows.into_iter().map(AsyncStatus::try_from).collect()
}

/// The result of [`Store::update_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The job was pending and now holds the update.
    Updated(Box<AsyncStatus>),
    /// No job has that id.
    NotFound,
    /// The job had already finished; nothing changed.
    Finished(JobStatus),
    /// The update's progress is below the job's; nothing changed.
    ProgressBehind(Progress),
}

/// What a conditional write to one job found: the row it changed, else the row as it is.
enum Written {
    Changed(JobRow),
    Unchanged(JobRow),
    Missing,
}

/// `changed`, or when the write changed nothing, the job as it is (if it exists).
fn or_current(
    conn: &mut DbConn,
    job_id: i64,
    changed: Option<JobRow>,
) -> Result<Written, StoreError> {
    if let Some(row) = changed {
        return Ok(Written::Changed(row));
    }
    let current = async_status
        .find(job_id)
        .first::<JobRow>(conn)
        .optional()
        .map_err(StoreError::query("loading an async status"))?;
    Ok(current.map_or(Written::Missing, Written::Unchanged))
}

/// The result of [`Store::create_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new job.
    Created(AsyncStatus),
    /// A `PENDING` job with the new job's key already runs; nothing was created.
    Running(AsyncStatus),
}

/// The result of [`Store::cancel_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job is pending with `cancel_requested`, or (forced) finished as `FAILED`.
    Cancelled(Box<AsyncStatus>),
    /// No job has that id.
    NotFound,
    /// The job had already finished; nothing changed.
    Finished(JobStatus),
}

diesel::define_sql_function! {
    /// SQL `COALESCE` of two nullable big integers.
    #[sql_name = "coalesce"]
    fn coalesce_i64(x: diesel::sql_types::Nullable<diesel::sql_types::BigInt>, y: diesel::sql_types::Nullable<diesel::sql_types::BigInt>) -> diesel::sql_types::Nullable<diesel::sql_types::BigInt>;
}

diesel::define_sql_function! {
    /// SQL `COALESCE` of two nullable texts.
    fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::Text>, y: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Ids looked up per statement by [`Store::get_jobs`]: well under SQLite's limit on bound
/// variables (32 766), so a coalesced batch of any size is split instead of failing whole.
const READ_CHUNK: usize = 1000;

diesel::define_sql_function! {
    /// SQL `octet_length`: the bytes of a text (PostgreSQL; SQLite 3.43 and later).
    fn octet_length(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Integer>;
}

/// The bytes of a job's JSON besides its message, labels and cancel reason (keys, id, status,
/// timestamps, progress, and kind and usernames at their longest), with a margin.
const JOB_JSON_OVERHEAD: usize = 1600;

/// A list query's filters, as a query. A label filter is a containment test on the labels as
/// `jsonb` on PostgreSQL (served by its GIN index) and a `json_each` lookup per label on
/// SQLite, both limited to the labelled jobs (`labels <> '{}'`, the indexes' predicate).
fn filtered(query: &ListQuery, backend: Backend) -> JobsQuery {
    let mut q = async_status.into_boxed();
    if let Some(wanted) = query.status {
        q = q.filter(status.eq(wanted.as_str()));
    }
    if let Some(wanted) = query.id {
        q = q.filter(id.eq(wanted));
    }
    if let Some(wanted) = &query.kind {
        q = q.filter(kind.eq(wanted.clone()));
    }
    if let Some(wanted) = &query.created_by {
        q = q.filter(created_by.eq(wanted.clone()));
    }
    if backend == Backend::Sqlite
        && query.order_by != OrderBy::StartTime
        && (query.newer_than.is_some() || query.older_than.is_some())
    {
        // SQLite, without statistics, would walk the order's index over the whole table and
        // test each job's start_time; the window's ids come from the start_time index instead
        // (O(jobs in the window), then sorted).
        // Open ends as the earliest and latest times RFC 3339 text spells (and so compares).
        let newer = query.newer_than.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let older = query.older_than.unwrap_or_else(|| {
            DateTime::from_timestamp_micros(253_402_300_799_999_999).unwrap_or_default()
        });
        q = q.filter(
            sql::<Bool>(
                "id IN (SELECT w.id FROM async_status AS w \
                 INDEXED BY async_status_start_time_idx WHERE w.start_time > ",
            )
            .bind::<UtcTimestamp, _>(UtcTime(newer))
            .sql(" AND w.start_time < ")
            .bind::<UtcTimestamp, _>(UtcTime(older))
            .sql(")"),
        );
    } else {
        if let Some(t) = query.newer_than {
            q = q.filter(start_time.gt(UtcTime(t)));
        }
        if let Some(t) = query.older_than {
            q = q.filter(start_time.lt(UtcTime(t)));
        }
    }
    if !query.labels.is_empty() {
        q = q.filter(sql::<Bool>("labels <> '{}'"));
        match backend {
            // One containment test per pair (the GIN index answers each, and their AND): a key
            // given twice with two values selects nothing, as a job has one value per key.
            Backend::Postgres => {
                for (key, value) in &query.labels {
                    let pair = serde_json::json!({ key: value }).to_string();
                    q = q.filter(
                        sql::<Bool>("labels::jsonb @> ")
                            .bind::<Text, _>(pair)
                            .sql("::jsonb"),
                    );
                }
            }
            // The labelled jobs' ids from their partial index, so that SQLite does not walk an
            // order's index over the whole table looking for them.
            Backend::Sqlite => {
                for (key, value) in &query.labels {
                    q = q.filter(
                        sql::<Bool>(
                            "id IN (SELECT j.id FROM async_status AS j \
                             INDEXED BY async_status_labels_idx WHERE j.labels <> '{}' AND \
                             EXISTS (SELECT 1 FROM json_each(j.labels) AS l WHERE l.key = ",
                        )
                        .bind::<Text, _>(key.clone())
                        .sql(" AND l.value = ")
                        .bind::<Text, _>(value.clone())
                        .sql("))"),
                    );
                }
            }
        }
    }
    q
}

/// How many jobs a list query selects: from [`status_counts`] (exact in each change's
/// transaction, and costing the same at any history) for its status or all; a query by `id`
/// counts its at most one row, and one with a row filter (kind, created_by, label, newerThan,
/// olderThan) counts its rows in an index.
fn count_selected(
    conn: &mut DbConn,
    query: &ListQuery,
    backend: Backend,
) -> Result<i64, StoreError> {
    if query.id.is_some() || query.has_row_filters() {
        return filtered(query, backend)
            .count()
            .get_result(conn)
            .map_err(StoreError::query("counting async statuses"));
    }
    Ok(status_counts(conn)?
        .into_iter()
        .filter(|c| query.status.is_none_or(|wanted| c.name == wanted.as_str()))
        .map(|c| c.n)
        .sum())
}

/// The size of `job_count_delta` past which [`Store::fold_job_counts`] vacuums it even when it
/// moved nothing: 1 MiB, a scan of well under a millisecond.
pub const DELTA_SETTLED_BYTES: i64 = 1 << 20;

/// The size of `job_count_delta`'s file (PostgreSQL), in bytes.
fn delta_table_bytes(conn: &mut DbConn) -> Result<i64, StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Size {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        bytes: i64,
    }
    diesel::sql_query("SELECT pg_relation_size('job_count_delta') AS bytes")
        .get_result::<Size>(conn)
        .map(|size| size.bytes)
        .map_err(StoreError::query("measuring the job counts' differences"))
}

/// One status's count.
#[derive(diesel::QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Jobs by status (statuses with none may be missing): the `job_count` shards plus the
/// differences in `job_count_delta` not folded into them yet, in one statement, so one
/// snapshot sees each difference exactly once. The differences are at most about a second of
/// writes (see [`Store::fold_job_counts`]).
fn status_counts(conn: &mut DbConn) -> Result<Vec<StatusCount>, StoreError> {
    diesel::sql_query(
        "SELECT status AS name, CAST(sum(n) AS BIGINT) AS n \
         FROM (SELECT status, n FROM job_count UNION ALL SELECT status, n FROM job_count_delta) \
         AS t GROUP BY status",
    )
    .load(conn)
    .map_err(StoreError::query("counting async statuses"))
}

type JobsQuery = crate::schema::async_status::BoxedQuery<'static, MultiBackend>;

/// `q` in the list query's order.
fn in_order(q: JobsQuery, query: &ListQuery) -> JobsQuery {
    match (query.order_by, query.sort_order) {
        (OrderBy::Id, SortOrder::Asc) => q.order(id.asc()),
        (OrderBy::Id, SortOrder::Desc) => q.order(id.desc()),
        (OrderBy::StartTime, SortOrder::Asc) => q.order((start_time.asc(), id.asc())),
        (OrderBy::StartTime, SortOrder::Desc) => q.order((start_time.desc(), id.desc())),
        (OrderBy::LastUpdated, SortOrder::Asc) => q.order((last_updated.asc(), id.asc())),
        (OrderBy::LastUpdated, SortOrder::Desc) => q.order((last_updated.desc(), id.desc())),
        // Unfinished jobs (no end_time) come last either way, on both backends.
        (OrderBy::EndTime, SortOrder::Asc) => {
            q.order((end_time.is_null(), end_time.asc(), id.asc()))
        }
        (OrderBy::EndTime, SortOrder::Desc) => {
            q.order((end_time.is_null(), end_time.desc(), id.desc()))
        }
    }
}

/// `q` after the cursor `(t, after_id)` in the order of the time `column`, then `id`: the time
/// bound is an index range (`column >= t`, or `<=`), and the jobs of that very microsecond are
/// skipped by id.
macro_rules! after_time {
    ($q:expr, $column:expr, $t:expr, $after_id:expr, $asc:expr) => {{
        let t = UtcTime($t);
        if $asc {
            $q.filter($column.ge(t))
                .filter($column.gt(t).or(id.gt($after_id)))
        } else {
            $q.filter($column.le(t))
                .filter($column.lt(t).or(id.lt($after_id)))
        }
    }};
}

/// One index range of a page, read in the query's order. A page is one range, except a cursor
/// page of `orderby=end_time` among finished jobs: it goes on into the unfinished ones, which
/// sort after them under another index prefix, so it is two ranges read one after the other.
enum Range {
    /// The query's own rows: all of them, or those after an `id`/`start_time` cursor.
    Query,
    /// Finished jobs after `(end_time, id)`.
    FinishedAfter(DateTime<Utc>, i64),
    /// Unfinished jobs, after this id when given.
    Unfinished(Option<i64>),
}

/// The ranges a page of `query` reads, in order.
fn ranges(query: &ListQuery) -> Vec<Range> {
    match (query.order_by, query.after) {
        (
            OrderBy::EndTime,
            Some(After {
                time: Some(t),
                id: after_id,
            }),
        ) => {
            vec![Range::FinishedAfter(t, after_id), Range::Unfinished(None)]
        }
        (
            OrderBy::EndTime,
            Some(After {
                time: None,
                id: after_id,
            }),
        ) => {
            vec![Range::Unfinished(Some(after_id))]
        }
        _ => vec![Range::Query],
    }
}

/// The statement of one range. Each bound is an index range: `key >= t` (or `<=`) with the
/// few jobs of that very microsecond skipped by id, and `(end_time IS NULL) = …` spelt as in
/// the end_time indexes so their prefix applies. Within one of end_time's two groups, SQLite's
/// order leaves out the group, which is constant there: with it, SQLite sorts the range, and
/// without it, PostgreSQL does (its planner does not see the group pinned).
fn range_query(query: &ListQuery, range: &Range, backend: Backend) -> JobsQuery {
    let asc = query.sort_order == SortOrder::Asc;
    let mut q = filtered(query, backend);
    match *range {
        Range::Query => {
            match (query.order_by, query.after) {
                (_, None) => {}
                (OrderBy::Id, Some(after)) if asc => q = q.filter(id.gt(after.id)),
                (OrderBy::Id, Some(after)) => q = q.filter(id.lt(after.id)),
                (
                    OrderBy::StartTime,
                    Some(After {
                        time: Some(t),
                        id: after_id,
                    }),
                ) => q = after_time!(q, start_time, t, after_id, asc),
                (
                    OrderBy::LastUpdated,
                    Some(After {
                        time: Some(t),
                        id: after_id,
                    }),
                ) => q = after_time!(q, last_updated, t, after_id, asc),
                // ranges() gives end_time cursors their own ranges, and start_time and
                // last_updated cursors always have a time.
                (OrderBy::StartTime | OrderBy::LastUpdated | OrderBy::EndTime, Some(_)) => {}
            }
            in_order(q, query)
        }
        Range::FinishedAfter(t, after_id) => {
            // PostgreSQL's planner folds `(end_time IS NULL) = false` into `end_time IS NOT
            // NULL`, which does not pin the indexes' leading `(end_time IS NULL)` key: the time
            // bound would then filter the keys read from the index's start instead of seeking
            // to the cursor. The pair of bounds says the same and is not folded. SQLite plans
            // the equality well and would sort for the pair.
            q = match backend {
                Backend::Postgres => q
                    .filter(end_time.is_null().ge(false))
                    .filter(end_time.is_null().le(false)),
                Backend::Sqlite => q.filter(end_time.is_null().eq(false)),
            };
            q = after_time!(q, end_time, t, after_id, asc);
            match (asc, backend) {
                (_, Backend::Postgres) => in_order(q, query),
                (true, Backend::Sqlite) => q.order((end_time.asc(), id.asc())),
                (false, Backend::Sqlite) => q.order((end_time.desc(), id.desc())),
            }
        }
        Range::Unfinished(after) => {
            // `end_time IS NULL` too: with it the index's end_time is pinned, so the id
            // bound below is part of the range.
            q = q
                .filter(end_time.is_null().eq(true))
                .filter(end_time.is_null());
            match after {
                Some(after_id) if asc => q = q.filter(id.gt(after_id)),
                Some(after_id) => q = q.filter(id.lt(after_id)),
                None => {}
            }
            match (asc, backend) {
                (_, Backend::Postgres) => in_order(q, query),
                (true, Backend::Sqlite) => q.order(id.asc()),
                (false, Backend::Sqlite) => q.order(id.desc()),
            }
        }
    }
}

/// A page of a list query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The jobs of the page, in order.
    pub jobs: Vec<AsyncStatus>,
    /// How many jobs the query's filters select, before paging.
    pub total: i64,
    /// Whether jobs follow the last one of the page.
    pub more: bool,
}

/// `EXPLAIN` (PostgreSQL) or `EXPLAIN QUERY PLAN` (SQLite) before a query, its binds kept, so
/// the plan is the one of the very statement the repository runs. `ST` is the plan's row.
struct Explain<Q, ST> {
    prefix: &'static str,
    query: Q,
    row: std::marker::PhantomData<ST>,
}

impl<Q, ST> diesel::query_builder::QueryId for Explain<Q, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, ST: 'static> diesel::query_builder::Query for Explain<Q, ST> {
    type SqlType = ST;
}

impl<Q, ST> diesel::query_builder::QueryFragment<MultiBackend> for Explain<Q, ST>
where
    Q: diesel::query_builder::QueryFragment<MultiBackend>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, MultiBackend>,
    ) -> QueryResult<()> {
        out.push_sql(self.prefix);
        self.query.walk_ast(out.reborrow())
    }
}

impl<Q, ST> RunQueryDsl<DbConn> for Explain<Q, ST> {}

/// Stale jobs failed per transaction by the reaper on `backend`. On SQLite a batch runs on one
/// of the service's own threads and competes with the requests for the CPU, so it is short
/// (a few milliseconds, where 500 took 30-70): each request waits behind at most that much of
/// it. On PostgreSQL the server does the work and a batch costs mostly its round trips and
/// commit, so it is larger. Measured with `make bench-scale` (the sweep's GET p99 against the
/// one without it).
pub const fn reap_batch(backend: Backend) -> i64 {
    match backend {
        Backend::Postgres => 500,
        Backend::Sqlite => 25,
    }
}

/// Finished jobs deleted per statement by the retention purge on `backend` (see [`reap_batch`]).
pub const fn purge_batch(backend: Backend) -> i64 {
    match backend {
        Backend::Postgres => 1000,
        Backend::Sqlite => 50,
    }
}

/// Which `PENDING` jobs the reaper fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdue {
    /// Not updated since this time, and without a `heartbeat_timeout` of their own.
    Stale(DateTime<Utc>),
    /// Not updated within their own `heartbeat_timeout`.
    Heartbeat,
    /// Past their `deadline`.
    Deadline,
}

/// The `PENDING` jobs that are `overdue` at `now`, the longest overdue first: each an index
/// range (`(status, last_updated, id)`, or the partial `(status, heartbeat_due)` and
/// `(status, deadline)` indexes).
fn overdue_query(overdue: Overdue, now: DateTime<Utc>) -> JobsQuery {
    let pending = async_status
        .filter(status.eq(JobStatus::Pending.as_str()))
        .into_boxed();
    match overdue {
        Overdue::Stale(cutoff) => pending
            .filter(heartbeat_timeout.is_null())
            .filter(last_updated.lt(UtcTime(cutoff)))
            .order(last_updated.asc()),
        Overdue::Heartbeat => pending
            .filter(heartbeat_due.lt(UtcTime(now)))
            .order(heartbeat_due.asc()),
        Overdue::Deadline => pending
            .filter(deadline.lt(UtcTime(now)))
            .order(deadline.asc()),
    }
}

/// What one batch of the reaper or the purge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepBatch {
    /// Jobs failed or deleted.
    pub changed: usize,
    /// Whether this was the last batch: it found fewer jobs than a batch holds.
    pub last: bool,
}

impl Store {
    /// One job by id.
    pub fn get_job(&self, job_id: i64) -> Result<Option<AsyncStatus>, StoreError> {
        let row = self.read(|conn| {
            async_status
                .find(job_id)
                .first::<JobRow>(conn)
                .optional()
                .map_err(StoreError::query("loading an async status"))
        })?;
        row.map(AsyncStatus::try_from).transpose()
    }

    /// The jobs with these ids (those that exist, in no particular order): one prepared
    /// `id = ANY($1)` lookup on PostgreSQL; on SQLite the one-id case uses the cached point
    /// lookup of [`Store::get_job`]. Any number of ids: they go [`READ_CHUNK`] at a time, on
    /// one connection.
    pub fn get_jobs(&self, ids: &[i64]) -> Result<Vec<AsyncStatus>, StoreError> {
        if let [one] = ids {
            return Ok(self.get_job(*one)?.into_iter().collect());
        }
        let rows = self.read(|conn| {
            let mut rows = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(READ_CHUNK) {
                rows.extend(
                    async_status
                        .filter(id.eq_any(chunk))
                        .load::<JobRow>(conn)
                        .map_err(StoreError::query("loading async statuses"))?,
                );
            }
            Ok(rows)
        })?;
        to_jobs(rows)
    }

    /// The jobs a list query selects, and how many it selects before paging.
    pub fn list_jobs(&self, query: &ListQuery) -> Result<(Vec<AsyncStatus>, i64), StoreError> {
        let page = self.list_jobs_within(query, usize::MAX)?;
        Ok((page.jobs, page.total))
    }

    /// The page of `query` (after its cursor, or from its `offset`), but only the first jobs
    /// whose JSON would take at most about `max_bytes` (always at least one): the database
    /// first gives the length of each message of the page (and whether one more job follows),
    /// then only the rows that fit are read. So a page of long messages never sits in memory
    /// whole. The caller bounds `query.limit`.
    pub fn list_jobs_within(
        &self,
        query: &ListQuery,
        max_bytes: usize,
    ) -> Result<Page, StoreError> {
        let limit = query.limit.unwrap_or(i64::MAX);
        let ranges = ranges(query);
        let backend = self.backend();
        // One snapshot for the measuring and the reading, so a message that grows in between
        // cannot make the page larger than measured.
        self.read(|conn| {
            conn.snapshot_read(|conn| {
                let total = count_selected(conn, query, backend)?;
                // The lengths of the page and one job more, range by range.
                let mut lengths: Vec<Option<i32>> = Vec::new();
                let mut per_range = Vec::with_capacity(ranges.len());
                for range in &ranges {
                    let wanted = limit.saturating_add(1) - lengths.len() as i64;
                    if wanted <= 0 {
                        break;
                    }
                    let found: Vec<(Option<i32>, Option<i32>, Option<i32>)> =
                        range_query(query, range, backend)
                            .select((
                                octet_length(message),
                                octet_length(labels.nullable()),
                                octet_length(cancel_reason),
                            ))
                            .limit(wanted)
                            .offset(query.offset)
                            .load(conn)
                            .map_err(StoreError::query("measuring async statuses"))?;
                    per_range.push(found.len() as i64);
                    lengths.extend(
                        found.into_iter().map(|(m, l, r)| {
                            Some(m.unwrap_or(0) + l.unwrap_or(0) + r.unwrap_or(0))
                        }),
                    );
                }
                let in_page = lengths
                    .len()
                    .min(usize::try_from(limit).unwrap_or(usize::MAX));
                let fit = rows_that_fit(&lengths[..in_page], max_bytes);
                let mut rows = Vec::new();
                for (range, found) in ranges.iter().zip(per_range) {
                    let wanted = (fit - rows.len() as i64).min(found);
                    if wanted <= 0 {
                        continue;
                    }
                    rows.extend(
                        range_query(query, range, backend)
                            .limit(wanted)
                            .offset(query.offset)
                            .load::<JobRow>(conn)
                            .map_err(StoreError::query("listing async statuses"))?,
                    );
                }
                let more = lengths.len() as i64 > fit;
                Ok(Page {
                    jobs: to_jobs(rows)?,
                    total,
                    more,
                })
            })
        })
    }

    /// Creates a `PENDING` job started `now` by `new.created_by`. When `new.key` is given and a
    /// `PENDING` job with that key exists, creates nothing and gives that job: the key is
    /// unique among `PENDING` jobs (a partial unique index), so of racing creations on any
    /// number of replicas exactly one inserts and the others find its job.
    pub fn create_job_with(
        &self,
        new: &NewJob,
        now: DateTime<Utc>,
    ) -> Result<CreateOutcome, StoreError> {
        let job_labels = serde_json::to_string(&new.labels)
            .map_err(|e| StoreError::Corrupt(format!("labels: {e}")))?;
        let due = new
            .heartbeat_timeout
            .and_then(|secs| now.checked_add_signed(chrono::TimeDelta::try_seconds(secs)?));
        // The running job may finish between a refused insert and the look-up that follows;
        // the key is then free and the insert is tried again.
        for _ in 0..3 {
            let inserted = self.with_conn(|conn| {
                diesel::insert_into(async_status)
                    .values((
                        status.eq(JobStatus::Pending.as_str()),
                        message.eq(new.message.as_deref()),
                        start_time.eq(UtcTime(now)),
                        last_updated.eq(UtcTime(now)),
                        kind.eq(new.kind.as_deref()),
                        labels.eq(&job_labels),
                        created_by.eq(new.created_by.as_deref()),
                        deadline.eq(new.deadline.map(UtcTime)),
                        heartbeat_timeout.eq(new.heartbeat_timeout),
                        heartbeat_due.eq(due.map(UtcTime)),
                        flight_key.eq(new.key.as_deref()),
                    ))
                    .returning(async_status::all_columns())
                    .get_result::<JobRow>(conn)
                    .map_err(StoreError::query("creating an async status"))
            });
            let key = match (inserted, &new.key) {
                (Ok(row), _) => {
                    let job: AsyncStatus = row.try_into()?;
                    // For the event streams (on PostgreSQL the trigger's NOTIFY says it too).
                    self.announce(Change::Job(job.id));
                    return Ok(CreateOutcome::Created(job));
                }
                (Err(StoreError::Conflict(_)), Some(key)) => key,
                (Err(e), _) => return Err(e),
            };
            let running = self.with_conn(|conn| {
                async_status
                    .filter(flight_key.eq(key))
                    // A literal, so PostgreSQL matches the partial index's predicate.
                    .filter(sql::<Bool>("status = 'PENDING'"))
                    .first::<JobRow>(conn)
                    .optional()
                    .map_err(StoreError::query("loading the async status of a key"))
            })?;
            if let Some(row) = running {
                return Ok(CreateOutcome::Running(row.try_into()?));
            }
        }
        Err(StoreError::Conflict(
            "the job of this key kept finishing and starting again; try again".into(),
        ))
    }

    /// `written`, after announcing the change when there was one.
    fn announced(&self, job_id: i64, written: Written) -> Written {
        if matches!(written, Written::Changed(_)) {
            self.announce(Change::Job(job_id));
        }
        written
    }

    /// Creates a `PENDING` job with only a message (no key, kind, labels or limits).
    pub fn create_job(
        &self,
        job_message: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<AsyncStatus, StoreError> {
        let new = NewJob {
            message: job_message.map(str::to_owned),
            ..NewJob::default()
        };
        match self.create_job_with(&new, now)? {
            CreateOutcome::Created(job) | CreateOutcome::Running(job) => Ok(job),
        }
    }

    /// `heartbeat_due = now + heartbeat_timeout` for the job's own timeout (none without one),
    /// in each backend's SQL. SQLite's date functions keep milliseconds only, so the
    /// microseconds of `now` (whole seconds are added) are copied from its text.
    fn heartbeat_due_after(
        &self,
        now: DateTime<Utc>,
    ) -> Box<dyn BoxableExpression<async_status, MultiBackend, SqlType = Nullable<UtcTimestamp>>>
    {
        match self.backend() {
            Backend::Postgres => Box::new(
                sql::<Nullable<UtcTimestamp>>("(")
                    .bind::<UtcTimestamp, _>(UtcTime(now))
                    .sql(" + make_interval(secs => heartbeat_timeout))"),
            ),
            Backend::Sqlite => Box::new(
                sql::<Nullable<UtcTimestamp>>("(strftime('%Y-%m-%dT%H:%M:%S', ")
                    .bind::<UtcTimestamp, _>(UtcTime(now))
                    .sql(", '+' || heartbeat_timeout || ' seconds') || substr(")
                    .bind::<UtcTimestamp, _>(UtcTime(now))
                    .sql(", 20))"),
            ),
        }
    }

    /// Applies `update` if the job is still `PENDING` (and its progress is not ahead of the
    /// update's), in one conditional statement, so of several racing updates to a pending job
    /// each either applies or sees it finished. A `None` message or progress leaves the stored
    /// one as it is.
    pub fn update_job(
        &self,
        job_id: i64,
        update: &JobUpdate,
        now: DateTime<Utc>,
    ) -> Result<UpdateOutcome, StoreError> {
        let due = self.heartbeat_due_after(now);
        let written = self.with_conn(|conn| {
            // Progress may stay or grow, never go back (an update without one keeps it).
            let at_least = update.progress.map_or(i64::MAX, |p| p.done);
            let target = async_status
                .filter(id.eq(job_id).and(status.eq(JobStatus::Pending.as_str())))
                .filter(coalesce_i64(progress_done, Some(0)).le(at_least));
            let updated = diesel::update(target)
                .set((
                    status.eq(update.status.as_str()),
                    message.eq(coalesce(update.message.as_deref(), message)),
                    end_time.eq(update.end_time(now).map(UtcTime)),
                    last_updated.eq(UtcTime(now)),
                    progress_done.eq(coalesce_i64(update.progress.map(|p| p.done), progress_done)),
                    progress_total.eq(coalesce_i64(
                        update.progress.map(|p| p.total),
                        progress_total,
                    )),
                    heartbeat_due.eq(due),
                ))
                .returning(async_status::all_columns())
                .get_result::<JobRow>(conn)
                .optional()
                .map_err(StoreError::query("updating an async status"))?;
            or_current(conn, job_id, updated)
        })?;
        match self.announced(job_id, written) {
            Written::Changed(row) => Ok(UpdateOutcome::Updated(Box::new(row.try_into()?))),
            Written::Missing => Ok(UpdateOutcome::NotFound),
            Written::Unchanged(row) => {
                let stored = AsyncStatus::try_from(row)?;
                match check_transition(stored.status, update) {
                    Err(asyncstatus_domain::TransitionError::AlreadyFinished(done)) => {
                        Ok(UpdateOutcome::Finished(done))
                    }
                    Ok(()) => match stored.progress {
                        Some(ahead) if update.progress.is_some_and(|p| p.done < ahead.done) => {
                            Ok(UpdateOutcome::ProgressBehind(ahead))
                        }
                        // Pending again between our two statements (cannot happen: finished
                        // jobs never change); report the conflict rather than loop.
                        _ => Err(StoreError::Conflict(format!(
                            "async status {job_id} changed while it was being updated"
                        ))),
                    },
                }
            }
        }
    }

    /// Asks to cancel a `PENDING` job: sets `cancel_requested` with the reason and the user
    /// (the first request's are kept), or with `force` finishes it as `FAILED` at once. One
    /// conditional statement, as [`Store::update_job`].
    pub fn cancel_job(
        &self,
        job_id: i64,
        cancel: &CancelRequest,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        let pending =
            async_status.filter(id.eq(job_id).and(status.eq(JobStatus::Pending.as_str())));
        let written = self.with_conn(|conn| {
            let changed = if cancel.force {
                diesel::update(pending)
                    .set((
                        status.eq(JobStatus::Failed.as_str()),
                        message.eq(cancel.message()),
                        end_time.eq(UtcTime(now)),
                        last_updated.eq(UtcTime(now)),
                        cancel_requested.eq(true),
                        cancel_reason.eq(cancel.reason.as_deref()),
                        cancel_requested_by.eq(&cancel.by),
                    ))
                    .returning(async_status::all_columns())
                    .get_result::<JobRow>(conn)
                    .optional()
            } else {
                // A change like a heartbeat: the job's own heartbeat clock restarts with the
                // stale_after one (both count from the last change).
                diesel::update(pending.filter(cancel_requested.eq(false)))
                    .set((
                        last_updated.eq(UtcTime(now)),
                        heartbeat_due.eq(self.heartbeat_due_after(now)),
                        cancel_requested.eq(true),
                        cancel_reason.eq(cancel.reason.as_deref()),
                        cancel_requested_by.eq(&cancel.by),
                    ))
                    .returning(async_status::all_columns())
                    .get_result::<JobRow>(conn)
                    .optional()
            }
            .map_err(StoreError::query("cancelling an async status"))?;
            or_current(conn, job_id, changed)
        })?;
        match self.announced(job_id, written) {
            Written::Changed(row) => Ok(CancelOutcome::Cancelled(Box::new(row.try_into()?))),
            Written::Missing => Ok(CancelOutcome::NotFound),
            Written::Unchanged(row) => {
                let job = AsyncStatus::try_from(row)?;
                if job.status.is_final() {
                    Ok(CancelOutcome::Finished(job.status))
                } else {
                    // Asked before: the request stands as it was.
                    Ok(CancelOutcome::Cancelled(Box::new(job)))
                }
            }
        }
    }

    /// Deletes a job; false when there was none.
    pub fn delete_job(&self, job_id: i64) -> Result<bool, StoreError> {
        let deleted = self.with_conn(|conn| {
            diesel::delete(async_status.find(job_id))
                .execute(conn)
                .map_err(StoreError::query("deleting an async status"))
        })?;
        if deleted > 0 {
            self.announce(Change::Job(job_id));
        }
        Ok(deleted > 0)
    }

    /// Fails up to [`reap_batch`] of the `PENDING` jobs without a `heartbeat_timeout` of their
    /// own not updated since `cutoff` (see [`Store::fail_overdue_batch`]).
    pub fn fail_stale_batch(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<SweepBatch, StoreError> {
        self.fail_overdue_batch(Overdue::Stale(cutoff), now)
    }

    /// Fails up to [`reap_batch`] of the `PENDING` jobs that are `overdue`, in one write
    /// transaction, so the lock it holds lasts one batch. Each job is finished by its own
    /// conditional statement (still pending, not updated since we looked), so replicas reaping
    /// at once finish each job once and never overwrite a heartbeat that came in between.
    pub fn fail_overdue_batch(
        &self,
        overdue: Overdue,
        now: DateTime<Utc>,
    ) -> Result<SweepBatch, StoreError> {
        let limit = reap_batch(self.backend());
        let (found, ids) = self.with_conn(|conn| {
            conn.write_transaction(|conn| {
                let candidates = overdue_query(overdue, now);
                let found: Vec<(i64, UtcTime, Option<UtcTime>)> = candidates
                    .select((id, last_updated, deadline))
                    .limit(limit)
                    .load(conn)
                    .map_err(StoreError::query("finding overdue async statuses"))?;
                let mut ids = Vec::new();
                for (job_id, since, due) in &found {
                    let text = match (overdue, due) {
                        (Overdue::Deadline, Some(due)) => deadline_message(due.0),
                        _ => abandoned_message(since.0),
                    };
                    let changed = diesel::update(
                        async_status.filter(
                            id.eq(job_id)
                                .and(status.eq(JobStatus::Pending.as_str()))
                                .and(last_updated.eq(since)),
                        ),
                    )
                    .set((
                        status.eq(JobStatus::Failed.as_str()),
                        message.eq(text),
                        end_time.eq(UtcTime(now)),
                        last_updated.eq(UtcTime(now)),
                    ))
                    .execute(conn)
                    .map_err(StoreError::query("failing an overdue async status"))?;
                    if changed > 0 {
                        ids.push(*job_id);
                    }
                }
                Ok((found.len(), ids))
            })
        })?;
        for job_id in &ids {
            self.announce(Change::Job(*job_id));
        }
        Ok(SweepBatch {
            changed: ids.len(),
            last: (found as i64) < limit,
        })
    }

    /// Deletes up to [`purge_batch`] finished jobs last changed before `cutoff`: their ids from
    /// the `(status, last_updated)` index, then one conditional `DELETE` of those, so no
    /// statement holds its locks for more than a batch.
    pub fn purge_finished_batch(&self, cutoff: DateTime<Utc>) -> Result<SweepBatch, StoreError> {
        let finished = [JobStatus::Succeeded.as_str(), JobStatus::Failed.as_str()];
        let limit = purge_batch(self.backend());
        self.with_conn(|conn| {
            let ids: Vec<i64> = async_status
                .filter(status.eq_any(finished))
                .filter(last_updated.lt(UtcTime(cutoff)))
                .select(id)
                .limit(limit)
                .load(conn)
                .map_err(StoreError::query("finding old async statuses"))?;
            let deleted = diesel::delete(
                async_status
                    .filter(id.eq_any(&ids))
                    .filter(status.eq_any(finished))
                    .filter(last_updated.lt(UtcTime(cutoff))),
            )
            .execute(conn)
            .map_err(StoreError::query("purging old async statuses"))?;
            Ok((ids, deleted))
        })
        .map(|(ids, deleted)| {
            // Announced as candidates: an id that was not deleted after all reads as a job.
            for job_id in &ids {
                self.announce(Change::Job(*job_id));
            }
            SweepBatch {
                changed: deleted,
                last: (ids.len() as i64) < limit,
            }
        })
    }

    /// The database's plan for the page of `query` that [`Store::list_jobs`] reads (its
    /// `limit` and `offset` included), one line per plan row: PostgreSQL's `EXPLAIN`, SQLite's
    /// `EXPLAIN QUERY PLAN` details. For the tests that check each documented list query uses
    /// an index, and for operators.
    pub fn explain_list(&self, query: &ListQuery) -> Result<Vec<String>, StoreError> {
        let backend = self.backend();
        let mut plan = Vec::new();
        for range in ranges(query) {
            let q = range_query(query, &range, backend);
            let q = match query.limit {
                Some(limit) => q.limit(limit).offset(query.offset),
                None => q,
            };
            plan.extend(self.explain(backend, q)?);
        }
        Ok(plan)
    }

    /// The plan of the reaper's search for `overdue` jobs (one batch), as [`Store::explain_list`].
    pub fn explain_overdue(
        &self,
        overdue: Overdue,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.explain(
            self.backend(),
            overdue_query(overdue, now).limit(reap_batch(self.backend())),
        )
    }

    /// The plan of the statement `q`.
    fn explain(&self, backend: Backend, q: JobsQuery) -> Result<Vec<String>, StoreError> {
        self.with_conn(|conn| {
            let failed = StoreError::query("explaining a list query");
            match backend {
                Backend::Postgres => Explain::<_, diesel::sql_types::Text> {
                    prefix: "EXPLAIN ",
                    query: q,
                    row: std::marker::PhantomData,
                }
                .load::<String>(conn)
                .map_err(failed),
                Backend::Sqlite => {
                    use diesel::sql_types::{Integer, Text};
                    Explain::<_, (Integer, Integer, Integer, Text)> {
                        prefix: "EXPLAIN QUERY PLAN ",
                        query: q,
                        row: std::marker::PhantomData,
                    }
                    .load::<(i32, i32, i32, String)>(conn)
                    .map(|rows| rows.into_iter().map(|(_, _, _, detail)| detail).collect())
                    .map_err(failed)
                }
            }
        })
    }

    /// How many jobs there are in each status (statuses with none are listed with 0), from
    /// [`status_counts`].
    pub fn count_jobs_by_status(&self) -> Result<Vec<(JobStatus, i64)>, StoreError> {
        let rows = self.read(status_counts)?;
        Ok(JobStatus::ALL
            .into_iter()
            .map(|s| {
                let n = rows
                    .iter()
                    .filter(|c| c.name == s.as_str())
                    .map(|c| c.n)
                    .sum();
                (s, n)
            })
            .collect())
    }

    /// Moves the differences PostgreSQL's triggers appended to `job_count_delta` into the
    /// `job_count` shards, in one statement (so no snapshot counts a difference twice or not
    /// at all); how many it moved. Replicas folding at once take turns on an advisory lock
    /// (one that finds it taken moves nothing). After a fold that moved rows the table is
    /// vacuumed, so its dead rows do not pile up between autovacuum's visits and the count's
    /// scan of it stays a scan of about a second of writes. A vacuum removes only the rows no
    /// snapshot can still see, so one that ran beside a long transaction (an `ANALYZE` of a
    /// large table, a report) leaves them: after a bulk import of ten million jobs every count
    /// then scanned ten million dead rows (85 ms) until autovacuum came by. So the vacuum is
    /// also retried at each fold while the table is larger than [`DELTA_SETTLED_BYTES`].
    /// SQLite's triggers update `job_count` directly: nothing to fold there.
    pub fn fold_job_counts(&self) -> Result<i64, StoreError> {
        if self.backend() == Backend::Sqlite {
            return Ok(0);
        }
        #[derive(diesel::QueryableByName)]
        struct Moved {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            moved: i64,
        }
        self.with_conn(|conn| {
            let moved = conn.write_transaction(|conn| {
                let moved = diesel::sql_query(
                    "WITH turn AS (SELECT pg_try_advisory_xact_lock(4242013001) AS mine), \
                     moved AS (DELETE FROM job_count_delta WHERE (SELECT mine FROM turn) \
                               RETURNING status, n), \
                     summed AS (SELECT status, sum(n) AS n FROM moved GROUP BY status), \
                     applied AS (UPDATE job_count AS c SET n = c.n + s.n FROM summed AS s \
                                 WHERE c.status = s.status AND c.shard = 0 RETURNING 1) \
                     SELECT count(*) AS moved FROM moved",
                )
                .get_result::<Moved>(conn)
                .map_err(StoreError::query("folding the job counts"))?;
                Ok(moved.moved)
            })?;
            if moved > 0 || delta_table_bytes(conn)? > DELTA_SETTLED_BYTES {
                diesel::sql_query("VACUUM (SKIP_LOCKED) job_count_delta")
                    .execute(conn)
                    .map_err(StoreError::query("vacuuming the job counts' differences"))?;
            }
            Ok(moved)
        })
    }
}
