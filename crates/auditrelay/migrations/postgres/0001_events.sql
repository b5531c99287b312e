-- The PostgreSQL store, for several nodes (DECISIONS.md S19): its identity, scopes and events.
-- The same records as the SQLite store's, in PostgreSQL's types; the rest of the schema follows
-- in later migrations.

-- The store's identity: with an event's `seq` and `ts`, it makes the event's stable id
-- (DECISIONS.md S13). Made once, here, and never changed.
CREATE TABLE store_identity (
    id TEXT NOT NULL
);
INSERT INTO store_identity (id) VALUES (replace(gen_random_uuid()::text, '-', ''));

-- A scope's row is also its append lock: a transaction that appends to a scope holds
-- `FOR NO KEY UPDATE` on it from before its first `seq` is drawn until it commits, so that in
-- each scope `seq` order is commit order (DECISIONS.md S19).
CREATE TABLE scopes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      TEXT NOT NULL,
    region      TEXT NOT NULL,
    portal_id   TEXT NOT NULL DEFAULT '',
    UNIQUE (org_id, region, portal_id)
);

-- `seq` is the ingest order, drawn from one sequence by every node. The sequence must keep its
-- cache of 1: with a cache per session, a node could draw a lower value after another drew a
-- higher one, and `seq` order would no longer follow the append lock.
CREATE SEQUENCE events_seq AS BIGINT CACHE 1;

-- `ts` is the event time (ms); `body` holds the remaining fields, encoded as the SQLite store
-- encodes them (`auditrelay_core::stored`).
CREATE TABLE events (
    seq       BIGINT PRIMARY KEY DEFAULT nextval('events_seq'),
    scope_id  BIGINT NOT NULL REFERENCES scopes (id),
    ts        BIGINT NOT NULL,
    kind      SMALLINT NOT NULL,
    body      BYTEA NOT NULL
);
ALTER SEQUENCE events_seq OWNED BY events.seq;
-- Replay windows, the pull API and retention; delivery cursors read by `seq` within a scope.
CREATE INDEX events_scope_ts ON events (scope_id, ts, seq);
CREATE INDEX events_scope_seq ON events (scope_id, seq);
