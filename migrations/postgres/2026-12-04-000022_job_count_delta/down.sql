DROP TRIGGER async_status_count_insert ON async_status;
DROP TRIGGER async_status_count_update ON async_status;
DROP TRIGGER async_status_count_delete ON async_status;
DROP FUNCTION job_count_inserted();
DROP FUNCTION job_count_moved();
DROP FUNCTION job_count_deleted();

-- The differences not folded yet go into the counters before their table goes.
LOCK TABLE async_status IN SHARE ROW EXCLUSIVE MODE;
UPDATE job_count AS c SET n = c.n + d.n
FROM (SELECT status, sum(n) AS n FROM job_count_delta GROUP BY status) AS d
WHERE c.status = d.status AND c.shard = 0;
DROP TABLE job_count_delta;

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
