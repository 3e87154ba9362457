-- Counters every write could afford. The statement-level triggers of job_count cost a
-- single-row insert about 15 % (a transition table and a join per statement), and a row-level
-- trigger that updated a counter row would make a bulk insert quadratic (one transaction
-- updating one row once per inserted row walks that row's growing chain of versions). So a
-- change now appends its difference to job_count_delta, which has no index and no row any
-- writer updates: an insert or a change of status adds rows from a row-level trigger (linear in
-- the rows of any statement); a delete, which comes in bulk from the retention purge, adds one
-- row per status from a statement-level trigger. The service folds the differences into
-- job_count every second (Store::fold_job_counts: one statement moves them, so any snapshot
-- sees each difference in exactly one of the two tables), and a count is job_count's rows plus
-- the differences not folded yet: exact in every transaction, as before.
CREATE TABLE job_count_delta (
    status text   NOT NULL,
    n      bigint NOT NULL
);

DROP TRIGGER async_status_count_insert ON async_status;
DROP TRIGGER async_status_count_update ON async_status;
DROP TRIGGER async_status_count_delete ON async_status;
DROP FUNCTION job_count_apply();

CREATE FUNCTION job_count_inserted() RETURNS trigger AS $$
BEGIN
    INSERT INTO job_count_delta (status, n) VALUES (NEW.status, 1);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION job_count_moved() RETURNS trigger AS $$
BEGIN
    INSERT INTO job_count_delta (status, n) VALUES (OLD.status, -1), (NEW.status, 1);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION job_count_deleted() RETURNS trigger AS $$
BEGIN
    INSERT INTO job_count_delta (status, n)
    SELECT status, -count(*) FROM old_rows GROUP BY status;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER async_status_count_insert AFTER INSERT ON async_status
    FOR EACH ROW EXECUTE FUNCTION job_count_inserted();
-- A heartbeat or a progress report keeps the status: the WHEN clause, tested without calling
-- the function, lets it pass for nothing.
CREATE TRIGGER async_status_count_update AFTER UPDATE OF status ON async_status
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION job_count_moved();
CREATE TRIGGER async_status_count_delete AFTER DELETE ON async_status
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_deleted();
