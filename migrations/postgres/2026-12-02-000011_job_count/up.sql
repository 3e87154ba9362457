-- Exact job counts by status without counting the table: summary.count and /metrics add up
-- these rows. Each status has 16 shards, a writer adding to the one of its backend
-- (pg_backend_pid() % 16), so concurrent producers do not queue on one row; a count is the sum
-- over the shards (a shard may go negative). Kept in the transaction of every change by
-- statement-level triggers, so a bulk delete (the retention purge) adds up its rows once.
CREATE TABLE job_count (
    status text    NOT NULL,
    shard  integer NOT NULL,
    n      bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (status, shard)
);

-- Writers wait while the existing rows are counted (a second or so for ten million rows), so
-- the backfill is exact.
LOCK TABLE async_status IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO job_count (status, shard, n)
SELECT s.status, g, 0
FROM (VALUES ('PENDING'), ('SUCCEEDED'), ('FAILED')) AS s (status)
CROSS JOIN generate_series(0, 15) AS g;
UPDATE job_count AS c SET n = x.n
FROM (SELECT status, count(*) AS n FROM async_status GROUP BY status) AS x
WHERE c.status = x.status AND c.shard = 0;

CREATE FUNCTION job_count_apply() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE job_count AS c SET n = c.n + d.n
        FROM (SELECT status, count(*) AS n FROM new_rows GROUP BY status) AS d
        WHERE c.status = d.status AND c.shard = pg_backend_pid() % 16;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE job_count AS c SET n = c.n - d.n
        FROM (SELECT status, count(*) AS n FROM old_rows GROUP BY status) AS d
        WHERE c.status = d.status AND c.shard = pg_backend_pid() % 16;
    ELSE
        UPDATE job_count AS c SET n = c.n + d.n
        FROM (SELECT status, sum(k) AS n
              FROM (SELECT status, 1 AS k FROM new_rows
                    UNION ALL SELECT status, -1 FROM old_rows) AS t
              GROUP BY status HAVING sum(k) <> 0) AS d
        WHERE c.status = d.status AND c.shard = pg_backend_pid() % 16;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER async_status_count_insert AFTER INSERT ON async_status
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_apply();
CREATE TRIGGER async_status_count_delete AFTER DELETE ON async_status
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_apply();
CREATE TRIGGER async_status_count_update AFTER UPDATE ON async_status
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_apply();
