-- SQLite is embedded in one process: the store announces its own changes in-process.
-- This migration keeps the two backends' migration lists in step.
SELECT 1;
