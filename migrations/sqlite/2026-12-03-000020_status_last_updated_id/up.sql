-- The list order last_updated within a status (with id, its tie-break), and the reaper's and
-- the purge's (status, last_updated) ranges, which it replaces.
CREATE INDEX IF NOT EXISTS async_status_status_last_updated_id_idx ON async_status (status, last_updated, id);
