DROP TRIGGER async_status_count_update ON async_status;
DROP TRIGGER async_status_count_delete ON async_status;
DROP TRIGGER async_status_count_insert ON async_status;
DROP FUNCTION job_count_apply();
DROP TABLE job_count;
