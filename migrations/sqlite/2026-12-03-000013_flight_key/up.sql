-- Single flight: at most one PENDING job per key, on every replica.
CREATE UNIQUE INDEX IF NOT EXISTS async_status_flight_key_idx ON async_status (flight_key) WHERE status = 'PENDING' AND flight_key IS NOT NULL;
