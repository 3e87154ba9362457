-- PostgreSQL's counters move to row-level triggers in this migration; SQLite's are row-level
-- already. Kept so both backends have the same migrations.
SELECT 1;
