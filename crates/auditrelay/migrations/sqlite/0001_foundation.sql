-- The foundation schema: organizations, principals and their tokens, portals, and events.
-- Times are epoch milliseconds (INTEGER); ids are hyphenated UUIDs (TEXT).

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- A user or system account. Its one role (and the portal the role is bound to, if any)
-- decides what its tokens may do.
CREATE TABLE principals (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'system')),
    role        TEXT NOT NULL,
    portal_id   TEXT,
    created_at  INTEGER NOT NULL
);

-- Tokens are stored as the SHA-256 of the secret; only the short prefix is kept readable so an
-- operator can tell tokens apart in `token list`.
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    principal_id  TEXT NOT NULL REFERENCES principals (id),
    secret_hash   BLOB NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER
);

CREATE TABLE portals (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    region      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX portals_org_created ON portals (org_id, created_at, id);

-- Where an event belongs: an org in a region, or a portal. Events refer to a scope by a small
-- integer, which keeps each event row and its indexes short. `portal_id` is '' for org scopes
-- because UNIQUE treats NULLs as distinct.
CREATE TABLE scopes (
    id          INTEGER PRIMARY KEY,
    org_id      TEXT NOT NULL,
    region      TEXT NOT NULL,
    portal_id   TEXT NOT NULL DEFAULT '',
    UNIQUE (org_id, region, portal_id)
);

-- `seq` is the ingest order: delivery cursors and pagination follow it. `ts` is the event time
-- (ms), which retention and replay windows use. `body` holds the remaining fields, encoded by
-- the store.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    scope_id  INTEGER NOT NULL REFERENCES scopes (id),
    ts        INTEGER NOT NULL,
    kind      INTEGER NOT NULL,
    body      BLOB NOT NULL
);
-- One index serves replay windows, the pull API and retention (which walks it scope by scope);
-- a second index on `ts` alone would cost every insert for no query that needs it.
CREATE INDEX events_scope_ts ON events (scope_id, ts);
