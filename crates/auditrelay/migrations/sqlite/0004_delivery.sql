-- Delivery reads each scope's events in ingest order after its webhook's cursor. The
-- (scope_id, ts) index cannot serve that order, and scanning by `seq` alone costs a lagging
-- webhook of a quiet scope a walk over every other scope's events.
CREATE INDEX events_scope_seq ON events (scope_id, seq);

-- The last `seq` of the batch being sent, written before the request: after a crash the same
-- range is sent again with the same Idempotency-Key, so the SIEM can drop the duplicate.
ALTER TABLE webhooks ADD COLUMN in_flight_through INTEGER;
