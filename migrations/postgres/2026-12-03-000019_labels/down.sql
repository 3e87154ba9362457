DROP INDEX CONCURRENTLY IF EXISTS async_status_labels_idx;
