DROP INDEX IF EXISTS async_status_labels_idx;
