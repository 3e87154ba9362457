-- Every change to a job is announced on channel 'async_status' (payload: the id) inside the
-- transaction that makes it, so long-polls on every replica wake at commit.
CREATE FUNCTION async_status_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('async_status', COALESCE(NEW.id, OLD.id)::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER async_status_notify
    AFTER INSERT OR UPDATE OR DELETE ON async_status
    FOR EACH ROW EXECUTE FUNCTION async_status_notify();
