DROP INDEX IF EXISTS async_status_flight_key_idx;
