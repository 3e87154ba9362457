-- The list filter label (PostgreSQL: a GIN index on the labels as jsonb; SQLite: the labelled jobs' ids, whose labels are then matched one by one).
CREATE INDEX IF NOT EXISTS async_status_labels_idx ON async_status (id) WHERE labels <> '{}';
