-- The list filter kind.
CREATE INDEX IF NOT EXISTS async_status_kind_idx ON async_status (kind, id) WHERE kind IS NOT NULL;
