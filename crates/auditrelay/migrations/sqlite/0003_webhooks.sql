-- Webhooks: the binding of a scope (an org in a region, or a portal) to a destination, with the
-- desired state (`enabled`), the delivery status and the delivery cursor. A row exists exactly
-- while the webhook is configured; deleting the webhook deletes the row, which also releases the
-- destination (the foreign key is what makes "destination is in use" a 409, race-free).

-- The destination a region's v2 inline webhook writes to (Decision 9); NULL for destinations
-- created through the destinations API.
ALTER TABLE destinations ADD COLUMN managed_region TEXT;
CREATE UNIQUE INDEX destinations_managed ON destinations (org_id, managed_region)
    WHERE managed_region IS NOT NULL;

CREATE TABLE webhooks (
    scope_id               INTEGER PRIMARY KEY REFERENCES scopes (id),
    destination_id         TEXT NOT NULL REFERENCES destinations (id),
    enabled                INTEGER NOT NULL,
    -- `inactive` after a batch exhausted its retries; a configuration change re-arms `active`.
    status                 TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    -- The last event `seq` delivered. Set to the newest event when the webhook is enabled:
    -- live delivery starts at that moment (Decision 2), older events are replay's.
    cursor                 INTEGER NOT NULL,
    last_attempt_at        INTEGER,
    last_response_code     INTEGER,
    last_response_message  TEXT,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX webhooks_destination ON webhooks (destination_id);
