-- Whether the receiver took an attempt's batch. A syslog receiver has no answer, so no
-- response code says it (DECISIONS.md S18). NULL in rows from before: their 2xx says it.
ALTER TABLE delivery_attempts ADD COLUMN delivered INTEGER;
