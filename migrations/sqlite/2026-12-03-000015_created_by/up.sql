-- The list filter created_by.
CREATE INDEX IF NOT EXISTS async_status_created_by_idx ON async_status (created_by, id) WHERE created_by IS NOT NULL;
