-- Everything else the SQLite store keeps, as its migrations 0001–0015 left it, in PostgreSQL's
-- own types: times are BIGINT milliseconds (as in the API's records), flags BOOLEAN, sealed
-- values BYTEA. The comments on the SQLite migrations say what each column means.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE principals (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'system')),
    role        TEXT NOT NULL,
    portal_id   TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    principal_id  TEXT NOT NULL REFERENCES principals (id),
    secret_hash   BYTEA NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT
);

CREATE TABLE portals (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    region      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX portals_org_created ON portals (org_id, created_at, id);

CREATE TABLE destinations (
    id                     TEXT PRIMARY KEY,
    org_id                 TEXT NOT NULL REFERENCES orgs (id),
    name                   TEXT NOT NULL,
    endpoint               TEXT NOT NULL,
    authorization_sealed   BYTEA NOT NULL,
    log_format             TEXT NOT NULL CHECK (log_format IN ('cef', 'json', 'cps', 'ocsf')),
    skip_ssl_verification  BOOLEAN NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    managed_region         TEXT,
    portal_id              TEXT,
    headers_sealed         BYTEA,
    kind                   TEXT NOT NULL DEFAULT 'webhook',
    kind_settings          TEXT,
    UNIQUE (org_id, name)
);
CREATE INDEX destinations_org_created ON destinations (org_id, created_at, id);
CREATE UNIQUE INDEX destinations_managed ON destinations (org_id, managed_region)
    WHERE managed_region IS NOT NULL;
CREATE INDEX destinations_org_portal_created ON destinations (org_id, portal_id, created_at, id);

CREATE TABLE webhooks (
    scope_id               BIGINT PRIMARY KEY REFERENCES scopes (id),
    destination_id         TEXT NOT NULL REFERENCES destinations (id),
    enabled                BOOLEAN NOT NULL,
    status                 TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    cursor                 BIGINT NOT NULL,
    last_attempt_at        BIGINT,
    last_response_code     INTEGER,
    last_response_message  TEXT,
    updated_at             BIGINT NOT NULL,
    in_flight_through      BIGINT,
    consecutive_failures   INTEGER NOT NULL DEFAULT 0,
    next_attempt_at        BIGINT
);
CREATE INDEX webhooks_destination ON webhooks (destination_id);

CREATE TABLE replay_jobs (
    scope_id        BIGINT PRIMARY KEY REFERENCES scopes (id),
    id              TEXT NOT NULL,
    start_at        BIGINT NOT NULL,
    end_at          BIGINT NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('accepted', 'pending', 'running', 'completed', 'failed')),
    updated_at      BIGINT NOT NULL,
    events_total    BIGINT,
    events_sent     BIGINT NOT NULL DEFAULT 0,
    batches_sent    BIGINT NOT NULL DEFAULT 0,
    started_at      BIGINT,
    finished_at     BIGINT,
    failure_reason  TEXT,
    resume_ts       BIGINT,
    resume_seq      BIGINT,
    through_seq     BIGINT
);

CREATE TABLE replay_history (
    id              TEXT PRIMARY KEY,
    scope_id        BIGINT NOT NULL REFERENCES scopes (id),
    start_at        BIGINT NOT NULL,
    end_at          BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('completed', 'failed')),
    updated_at      BIGINT NOT NULL,
    events_total    BIGINT,
    events_sent     BIGINT NOT NULL,
    batches_sent    BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    failure_reason  TEXT,
    resume_ts       BIGINT,
    resume_seq      BIGINT,
    through_seq     BIGINT
);
CREATE INDEX replay_history_scope ON replay_history (scope_id, updated_at);

CREATE TABLE delivery_attempts (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope_id       BIGINT NOT NULL REFERENCES scopes (id),
    at             BIGINT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('live', 'retry', 'probe', 'replay')),
    endpoint       TEXT NOT NULL,
    events         BIGINT NOT NULL,
    first_seq      BIGINT NOT NULL,
    last_seq       BIGINT NOT NULL,
    response_code  INTEGER,
    message        TEXT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    delivered      BOOLEAN
);
CREATE INDEX delivery_attempts_scope ON delivery_attempts (scope_id, id);

CREATE TABLE refused_events (
    scope_id             BIGINT NOT NULL REFERENCES scopes (id),
    seq                  BIGINT NOT NULL,
    refused_at           BIGINT NOT NULL,
    endpoint             TEXT NOT NULL,
    reason               TEXT NOT NULL,
    replay_id            TEXT,
    resend_requested_at  BIGINT,
    PRIMARY KEY (scope_id, seq)
);
CREATE INDEX refused_events_to_resend ON refused_events (resend_requested_at)
    WHERE resend_requested_at IS NOT NULL;

-- What retention has deleted, read by every node's backlog summaries (`store/backlog.rs`), so
-- that a prune on one node shows in the backlogs another measures: how many deletes removed
-- anything, and the highest cutoff (ms) any of them used. One row.
CREATE TABLE pruned (
    only_row  BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    deletes   BIGINT NOT NULL,
    cutoff    BIGINT NOT NULL
);
INSERT INTO pruned (deletes, cutoff) VALUES (0, -9223372036854775808);

-- One row the probe rewrites while the store refuses writes, to learn when it accepts them again
-- (`postgres.rs`): 64 KiB stored as they are (`EXTERNAL`: out of line, never compressed), so a
-- nearly full volume that still takes a small write does not read as recovered (DECISIONS.md S2).
CREATE TABLE store_probe (
    only_row   BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    probed_at  BIGINT NOT NULL,
    padding    BYTEA NOT NULL
);
ALTER TABLE store_probe ALTER COLUMN padding SET STORAGE EXTERNAL;
