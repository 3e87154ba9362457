-- Exact job counts by status without counting the table: summary.count and /metrics add up
-- these rows, kept by triggers in the transaction of every change. SQLite has one writer at
-- a time, so one shard per status (the column keeps the two backends' tables alike).
CREATE TABLE job_count (
    status TEXT    NOT NULL,
    shard  INTEGER NOT NULL,
    n      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (status, shard)
);
INSERT INTO job_count (status, shard, n) VALUES ('PENDING', 0, 0), ('SUCCEEDED', 0, 0), ('FAILED', 0, 0);
UPDATE job_count SET n = (SELECT count(*) FROM async_status WHERE async_status.status = job_count.status);

CREATE TRIGGER async_status_count_insert AFTER INSERT ON async_status
BEGIN
    UPDATE job_count SET n = n + 1 WHERE status = NEW.status AND shard = 0;
END;
CREATE TRIGGER async_status_count_delete AFTER DELETE ON async_status
BEGIN
    UPDATE job_count SET n = n - 1 WHERE status = OLD.status AND shard = 0;
END;
CREATE TRIGGER async_status_count_update AFTER UPDATE OF status ON async_status
WHEN OLD.status <> NEW.status
BEGIN
    UPDATE job_count SET n = n - 1 WHERE status = OLD.status AND shard = 0;
    UPDATE job_count SET n = n + 1 WHERE status = NEW.status AND shard = 0;
END;
