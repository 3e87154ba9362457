DROP TRIGGER async_status_count_update;
DROP TRIGGER async_status_count_delete;
DROP TRIGGER async_status_count_insert;
DROP TABLE job_count;
