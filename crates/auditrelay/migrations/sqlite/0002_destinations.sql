-- Audit-log destinations: where webhooks send logs. Global objects of an organization (every
-- region's webhooks may use them). The authorization value is stored sealed by the service
-- (see secrets.rs), never in clear.

CREATE TABLE destinations (
    id                     TEXT PRIMARY KEY,
    org_id                 TEXT NOT NULL REFERENCES orgs (id),
    name                   TEXT NOT NULL,
    endpoint               TEXT NOT NULL,
    authorization_sealed   BLOB NOT NULL,
    log_format             TEXT NOT NULL CHECK (log_format IN ('cef', 'json', 'cps')),
    skip_ssl_verification  INTEGER NOT NULL,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX destinations_org_created ON destinations (org_id, created_at, id);
