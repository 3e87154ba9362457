-- The job counters' triggers, cheaper per change (measured with 8 concurrent single-row INSERTs,
-- CPU-bound: the statement-level trigger's UPDATE … FROM (SELECT … GROUP BY) over the transition
-- table cost a fifth to a third of the insert; a plain row-level UPDATE a few per cent).
--
-- A row-level UPDATE of a shard per changed row would make one bulk statement (an import, the
-- seeding of ten million jobs) update one row a million times in one transaction, each update
-- walking the row's growing version chain: quadratic. So the work is split:
-- - row-level triggers add each row's change to transaction-local settings, one per status
--   (`asyncstatus.count_pending`, …: memory only, undone with the transaction or savepoint);
--   a status change is counted only when the status changes (`WHEN`), so heartbeats skip it;
-- - a statement-level trigger (no transition table) then writes the non-zero sums to the
--   writer's shard and zeroes them: one UPDATE per status per statement, however many rows.
-- The counts stay exact in the same transaction as the change, as before.

DROP TRIGGER async_status_count_insert ON async_status;
DROP TRIGGER async_status_count_delete ON async_status;
DROP TRIGGER async_status_count_update ON async_status;
DROP FUNCTION job_count_apply();

-- Adds `delta` to the pending sum of `status` (a setting of this transaction).
CREATE FUNCTION job_count_add(status text, delta bigint) RETURNS void AS $$
DECLARE
    name text := 'asyncstatus.count_' || lower(status);
BEGIN
    PERFORM set_config(name,
        (coalesce(nullif(current_setting(name, true), ''), '0')::bigint + delta)::text, true);
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION job_count_row() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM job_count_add(NEW.status, 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM job_count_add(OLD.status, -1);
    ELSE
        PERFORM job_count_add(OLD.status, -1);
        PERFORM job_count_add(NEW.status, 1);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Writes the sums of this statement's rows to the writer's shard, and zeroes them.
CREATE FUNCTION job_count_flush() RETURNS trigger AS $$
DECLARE
    s text;
    delta bigint;
BEGIN
    FOREACH s IN ARRAY ARRAY['PENDING', 'SUCCEEDED', 'FAILED'] LOOP
        delta := coalesce(nullif(current_setting('asyncstatus.count_' || lower(s), true), ''),
                          '0')::bigint;
        IF delta <> 0 THEN
            UPDATE job_count SET n = n + delta
            WHERE status = s AND shard = pg_backend_pid() % 16;
            PERFORM set_config('asyncstatus.count_' || lower(s), '0', true);
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER async_status_count_insert AFTER INSERT ON async_status
    FOR EACH ROW EXECUTE FUNCTION job_count_row();
CREATE TRIGGER async_status_count_delete AFTER DELETE ON async_status
    FOR EACH ROW EXECUTE FUNCTION job_count_row();
CREATE TRIGGER async_status_count_update AFTER UPDATE OF status ON async_status
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION job_count_row();
CREATE TRIGGER async_status_count_flush_insert AFTER INSERT ON async_status
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_flush();
CREATE TRIGGER async_status_count_flush_delete AFTER DELETE ON async_status
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_flush();
CREATE TRIGGER async_status_count_flush_update AFTER UPDATE OF status ON async_status
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_flush();
