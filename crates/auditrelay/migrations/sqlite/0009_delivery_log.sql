-- What a webhook's status shows between outcomes: how many attempts in a row have failed, and
-- when the next one is due (a retry or a probe). A delivered batch clears both; so does a change
-- of the webhook's destination, endpoint or credentials, whose past attempts no longer say
-- anything about the new configuration.
ALTER TABLE webhooks ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN next_attempt_at INTEGER;

-- The delivery log: every attempt to send a batch (live delivery, its retries, the probes of an
-- inactive webhook, replay jobs), the newest `delivery.log_size` kept per scope. Rows outlive
-- their webhook's configuration on purpose: after a re-point, the log still shows what the old
-- endpoint answered.
CREATE TABLE delivery_attempts (
    id             INTEGER PRIMARY KEY,
    scope_id       INTEGER NOT NULL REFERENCES scopes (id),
    at             INTEGER NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('live', 'retry', 'probe', 'replay')),
    endpoint       TEXT NOT NULL,
    events         INTEGER NOT NULL,
    first_seq      INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL,
    -- NULL when the request got no HTTP answer (connection, TLS, timeout): see `message`.
    response_code  INTEGER,
    message        TEXT NOT NULL,
    duration_ms    INTEGER NOT NULL
);
CREATE INDEX delivery_attempts_scope ON delivery_attempts (scope_id, id);
