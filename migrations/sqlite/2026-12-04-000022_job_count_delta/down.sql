DROP TABLE job_count_delta;
