DROP TRIGGER async_status_notify ON async_status;
DROP FUNCTION async_status_notify();
