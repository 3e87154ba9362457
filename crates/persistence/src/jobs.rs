//! Jobs: get, list, create, update while pending, delete, fail the stale, purge the old.

use asyncstatus_domain::job::{abandoned_message, check_transition};
use asyncstatus_domain::{After, AsyncStatus, JobStatus, JobUpdate, ListQuery, OrderBy, SortOrder};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::pool::{DbConn, MultiBackend};
use crate::schema::async_status::dsl::*;
use crate::schema::job_count;
use crate::time::UtcTime;
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
}

impl TryFrom<JobRow> for AsyncStatus {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self, StoreError> {
        let job_status = row
            .status
            .parse::<JobStatus>()
            .map_err(|e| StoreError::Corrupt(format!("async_status {}: {e}", row.id)))?;
        Ok(AsyncStatus {
            id: row.id,
            status: job_status,
            message: row.message,
            start_time: row.start_time.0,
            end_time: row.end_time.map(|t| t.0),
            last_updated: row.last_updated.0,
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
    Updated(AsyncStatus),
    /// No job has that id.
    NotFound,
    /// The job had already finished; nothing changed.
    Finished(JobStatus),
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

/// The bytes of a job's JSON besides its message (keys, id, status, two timestamps), with a
/// margin.
const JOB_JSON_OVERHEAD: usize = 160;

/// A list query's filters, as a query.
fn filtered(query: &ListQuery) -> crate::schema::async_status::BoxedQuery<'static, MultiBackend> {
    let mut q = async_status.into_boxed();
    if let Some(wanted) = query.status {
        q = q.filter(status.eq(wanted.as_str()));
    }
    if let Some(wanted) = query.id {
        q = q.filter(id.eq(wanted));
    }
    q
}

/// How many jobs a list query selects: the sum of the `job_count` shards of its status (or of
/// all), which the triggers keep exact in each change's transaction, so the count costs the
/// same at any history; a query by `id` counts its at most one row.
fn count_selected(conn: &mut DbConn, query: &ListQuery) -> Result<i64, StoreError> {
    if query.id.is_some() {
        return filtered(query)
            .count()
            .get_result(conn)
            .map_err(StoreError::query("counting async statuses"));
    }
    let mut shards = job_count::table.select(job_count::n).into_boxed();
    if let Some(wanted) = query.status {
        shards = shards.filter(job_count::status.eq(wanted.as_str()));
    }
    let counts: Vec<i64> = shards
        .load(conn)
        .map_err(StoreError::query("counting async statuses"))?;
    Ok(counts.iter().sum())
}

type JobsQuery = crate::schema::async_status::BoxedQuery<'static, MultiBackend>;

/// `q` in the list query's order.
fn in_order(q: JobsQuery, query: &ListQuery) -> JobsQuery {
    match (query.order_by, query.sort_order) {
        (OrderBy::Id, SortOrder::Asc) => q.order(id.asc()),
        (OrderBy::Id, SortOrder::Desc) => q.order(id.desc()),
        (OrderBy::StartTime, SortOrder::Asc) => q.order((start_time.asc(), id.asc())),
        (OrderBy::StartTime, SortOrder::Desc) => q.order((start_time.desc(), id.desc())),
        // Unfinished jobs (no end_time) come last either way, on both backends.
        (OrderBy::EndTime, SortOrder::Asc) => {
            q.order((end_time.is_null(), end_time.asc(), id.asc()))
        }
        (OrderBy::EndTime, SortOrder::Desc) => {
            q.order((end_time.is_null(), end_time.desc(), id.desc()))
        }
    }
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
    let mut q = filtered(query);
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
                ) => {
                    let t = UtcTime(t);
                    q = if asc {
                        q.filter(start_time.ge(t))
                            .filter(start_time.gt(t).or(id.gt(after_id)))
                    } else {
                        q.filter(start_time.le(t))
                            .filter(start_time.lt(t).or(id.lt(after_id)))
                    };
                }
                // ranges() gives end_time cursors their own ranges, and a start_time cursor
                // always has a time.
                (OrderBy::StartTime | OrderBy::EndTime, Some(_)) => {}
            }
            in_order(q, query)
        }
        Range::FinishedAfter(t, after_id) => {
            let t = UtcTime(t);
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
            q = if asc {
                q.filter(end_time.ge(t))
                    .filter(end_time.gt(t).or(id.gt(after_id)))
            } else {
                q.filter(end_time.le(t))
                    .filter(end_time.lt(t).or(id.lt(after_id)))
            };
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

/// Stale jobs failed per transaction by the reaper.
pub const REAP_BATCH: i64 = 500;

/// Finished jobs deleted per statement by the retention purge.
pub const PURGE_BATCH: i64 = 1000;

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
                let total = count_selected(conn, query)?;
                // The lengths of the page and one job more, range by range.
                let mut lengths: Vec<Option<i32>> = Vec::new();
                let mut per_range = Vec::with_capacity(ranges.len());
                for range in &ranges {
                    let wanted = limit.saturating_add(1) - lengths.len() as i64;
                    if wanted <= 0 {
                        break;
                    }
                    let found: Vec<Option<i32>> = range_query(query, range, backend)
                        .select(octet_length(message))
                        .limit(wanted)
                        .offset(query.offset)
                        .load(conn)
                        .map_err(StoreError::query("measuring async statuses"))?;
                    per_range.push(found.len() as i64);
                    lengths.extend(found);
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

    /// Creates a `PENDING` job started `now`.
    pub fn create_job(
        &self,
        job_message: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<AsyncStatus, StoreError> {
        let row = self.with_conn(|conn| {
            diesel::insert_into(async_status)
                .values((
                    status.eq(JobStatus::Pending.as_str()),
                    message.eq(job_message),
                    start_time.eq(UtcTime(now)),
                    last_updated.eq(UtcTime(now)),
                ))
                .returning(async_status::all_columns())
                .get_result::<JobRow>(conn)
                .map_err(StoreError::query("creating an async status"))
        })?;
        row.try_into()
    }

    /// Applies `update` if the job is still `PENDING`, in one conditional statement, so of
    /// several racing updates to a pending job each either applies or sees it finished.
    /// A `None` message leaves the stored message as it is.
    pub fn update_job(
        &self,
        job_id: i64,
        update: &JobUpdate,
        now: DateTime<Utc>,
    ) -> Result<UpdateOutcome, StoreError> {
        let (updated, current) = self.with_conn(|conn| {
            let updated = diesel::update(
                async_status.filter(id.eq(job_id).and(status.eq(JobStatus::Pending.as_str()))),
            )
            .set((
                status.eq(update.status.as_str()),
                message.eq(coalesce(update.message.as_deref(), message)),
                end_time.eq(update.end_time(now).map(UtcTime)),
                last_updated.eq(UtcTime(now)),
            ))
            .returning(async_status::all_columns())
            .get_result::<JobRow>(conn)
            .optional()
            .map_err(StoreError::query("updating an async status"))?;
            let current = match updated {
                Some(_) => None,
                None => async_status
                    .find(job_id)
                    .select(status)
                    .first::<String>(conn)
                    .optional()
                    .map_err(StoreError::query("loading an async status"))?,
            };
            Ok((updated, current))
        })?;
        match (updated, current) {
            (Some(row), _) => {
                self.announce(Change::Job(job_id));
                Ok(UpdateOutcome::Updated(row.try_into()?))
            }
            (None, None) => Ok(UpdateOutcome::NotFound),
            (None, Some(stored)) => {
                let stored = stored
                    .parse::<JobStatus>()
                    .map_err(|e| StoreError::Corrupt(format!("async_status {job_id}: {e}")))?;
                match check_transition(stored, update) {
                    Err(asyncstatus_domain::TransitionError::AlreadyFinished(done)) => {
                        Ok(UpdateOutcome::Finished(done))
                    }
                    // Pending again between our two statements (cannot happen: finished jobs
                    // never change); report the conflict rather than loop.
                    Ok(()) => Err(StoreError::Conflict(format!(
                        "async status {job_id} changed while it was being updated"
                    ))),
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

    /// Fails up to [`REAP_BATCH`] of the `PENDING` jobs not updated since `cutoff`, in one
    /// write transaction, so the lock it holds lasts one batch. Each job is finished by its own
    /// conditional statement (still pending, not updated since we looked), so replicas reaping
    /// at once finish each job once and never overwrite a heartbeat that came in between.
    pub fn fail_stale_batch(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<SweepBatch, StoreError> {
        let (found, ids) = self.with_conn(|conn| {
            conn.write_transaction(|conn| {
                let stale: Vec<(i64, UtcTime)> = async_status
                    .filter(status.eq(JobStatus::Pending.as_str()))
                    .filter(last_updated.lt(UtcTime(cutoff)))
                    .select((id, last_updated))
                    .order(last_updated.asc())
                    .limit(REAP_BATCH)
                    .load(conn)
                    .map_err(StoreError::query("finding stale async statuses"))?;
                let mut ids = Vec::new();
                for (job_id, since) in &stale {
                    let changed = diesel::update(
                        async_status.filter(
                            id.eq(job_id)
                                .and(status.eq(JobStatus::Pending.as_str()))
                                .and(last_updated.eq(since)),
                        ),
                    )
                    .set((
                        status.eq(JobStatus::Failed.as_str()),
                        message.eq(abandoned_message(since.0)),
                        end_time.eq(UtcTime(now)),
                        last_updated.eq(UtcTime(now)),
                    ))
                    .execute(conn)
                    .map_err(StoreError::query("failing a stale async status"))?;
                    if changed > 0 {
                        ids.push(*job_id);
                    }
                }
                Ok((stale.len(), ids))
            })
        })?;
        for job_id in &ids {
            self.announce(Change::Job(*job_id));
        }
        Ok(SweepBatch {
            changed: ids.len(),
            last: found < REAP_BATCH as usize,
        })
    }

    /// Deletes up to [`PURGE_BATCH`] finished jobs last changed before `cutoff`: their ids from
    /// the `(status, last_updated)` index, then one conditional `DELETE` of those, so no
    /// statement holds its locks for more than a batch.
    pub fn purge_finished_batch(&self, cutoff: DateTime<Utc>) -> Result<SweepBatch, StoreError> {
        let finished = [JobStatus::Succeeded.as_str(), JobStatus::Failed.as_str()];
        self.with_conn(|conn| {
            let ids: Vec<i64> = async_status
                .filter(status.eq_any(finished))
                .filter(last_updated.lt(UtcTime(cutoff)))
                .select(id)
                .limit(PURGE_BATCH)
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
            Ok(SweepBatch {
                changed: deleted,
                last: ids.len() < PURGE_BATCH as usize,
            })
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

    /// How many jobs there are in each status (statuses with none are listed with 0), from the
    /// `job_count` shards.
    pub fn count_jobs_by_status(&self) -> Result<Vec<(JobStatus, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = self.read(|conn| {
            job_count::table
                .select((job_count::status, job_count::n))
                .load(conn)
                .map_err(StoreError::query("counting async statuses"))
        })?;
        Ok(JobStatus::ALL
            .into_iter()
            .map(|s| {
                let n = rows
                    .iter()
                    .filter(|(name, _)| name == s.as_str())
                    .map(|(_, n)| n)
                    .sum();
                (s, n)
            })
            .collect())
    }
}
