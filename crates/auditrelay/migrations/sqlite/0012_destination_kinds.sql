-- Destination kinds (DECISIONS.md D12): how a destination's receiver is spoken to. Every
-- destination made before kinds existed is Konnect's `webhook`. `kind_settings` is the kind's
-- own settings as a JSON object (NULL for a kind without settings); secrets are not among them.
ALTER TABLE destinations ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
ALTER TABLE destinations ADD COLUMN kind_settings TEXT;

-- The store's identity: with an event's `seq`, it makes the event's stable id
-- (DECISIONS.md D13), unlike any other installation's. Made once, here, and never changed.
CREATE TABLE store_identity (
    id TEXT NOT NULL
);
INSERT INTO store_identity (id) VALUES (lower(hex(randomblob(16))));

-- Events a receiver refused for good (DECISIONS.md D14), per webhook scope, with the
-- receiver's reason: the lane moved on, and they wait here to be seen and sent again.
-- Recorded before the cursor passes them, so no crash loses one.
CREATE TABLE refused_events (
    scope_id     INTEGER NOT NULL REFERENCES scopes (id),
    seq          INTEGER NOT NULL,
    refused_at   INTEGER NOT NULL,
    endpoint     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    -- The replay job that sent it, when one did.
    replay_id    TEXT,
    -- Set when an operator asked to send it again; cleared when it is refused again.
    resend_requested_at INTEGER,
    PRIMARY KEY (scope_id, seq)
) WITHOUT ROWID;
