-- The counters' triggers for single-row changes become row-level: a POST inserts one row and a
-- PUT changes one, and for one row a plain `n = n + 1` on the writer's shard costs far less
-- than a statement-level trigger's transition table and GROUP BY. A status update only counts
-- when the status changes, so heartbeats touch no counter at all. Deletes stay statement-level:
-- the retention purge deletes a thousand rows per statement and adds them up once.
CREATE FUNCTION job_count_insert_row() RETURNS trigger AS $$
BEGIN
    UPDATE job_count SET n = n + 1
    WHERE status = NEW.status AND shard = pg_backend_pid() % 16;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION job_count_update_row() RETURNS trigger AS $$
BEGIN
    UPDATE job_count SET n = n + CASE WHEN status = NEW.status THEN 1 ELSE -1 END
    WHERE status IN (OLD.status, NEW.status) AND shard = pg_backend_pid() % 16;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER async_status_count_insert ON async_status;
DROP TRIGGER async_status_count_update ON async_status;
CREATE TRIGGER async_status_count_insert AFTER INSERT ON async_status
    FOR EACH ROW EXECUTE FUNCTION job_count_insert_row();
CREATE TRIGGER async_status_count_update AFTER UPDATE OF status ON async_status
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION job_count_update_row();
