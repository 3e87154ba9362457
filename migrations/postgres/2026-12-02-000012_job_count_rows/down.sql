DROP TRIGGER async_status_count_update ON async_status;
DROP TRIGGER async_status_count_insert ON async_status;
DROP FUNCTION job_count_update_row();
DROP FUNCTION job_count_insert_row();
CREATE TRIGGER async_status_count_insert AFTER INSERT ON async_status
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_apply();
CREATE TRIGGER async_status_count_update AFTER UPDATE ON async_status
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION job_count_apply();
