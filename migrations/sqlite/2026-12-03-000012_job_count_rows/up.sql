-- PostgreSQL's job counters move to row-level triggers in this migration; SQLite's were
-- row-level from the start (one writer at a time, no bulk-update cost to avoid). Kept so that
-- both backends have the same migrations.
SELECT 1;
