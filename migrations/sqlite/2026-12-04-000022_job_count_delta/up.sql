-- PostgreSQL's counters append their differences here and the service folds them into
-- job_count (see its migration). SQLite has one writer at a time, so its triggers keep
-- updating job_count directly and this table stays empty; it exists so that the two backends'
-- tables and count query stay alike.
CREATE TABLE job_count_delta (
    status TEXT    NOT NULL,
    n      INTEGER NOT NULL
);
