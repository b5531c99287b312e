-- no-transaction
-- The `ocsf` log format (DECISIONS.md S17). SQLite cannot change a CHECK constraint in place,
-- so the table is rebuilt as SQLite's documented procedure does it: foreign keys off (outside
-- any transaction, hence the directive above), the new table filled in one transaction, the
-- old one dropped and the new one renamed in its place. Run again after a crash before sqlx recorded it, it does the same once more.
PRAGMA foreign_keys = OFF;

BEGIN IMMEDIATE;

DROP TABLE IF EXISTS destinations_rebuilt;
CREATE TABLE destinations_rebuilt (
    id                     TEXT PRIMARY KEY,
    org_id                 TEXT NOT NULL REFERENCES orgs (id),
    name                   TEXT NOT NULL,
    endpoint               TEXT NOT NULL,
    authorization_sealed   BLOB NOT NULL,
    log_format             TEXT NOT NULL CHECK (log_format IN ('cef', 'json', 'cps', 'ocsf')),
    skip_ssl_verification  INTEGER NOT NULL,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    managed_region         TEXT,
    portal_id              TEXT,
    headers_sealed         BLOB,
    kind                   TEXT NOT NULL DEFAULT 'webhook',
    kind_settings          TEXT,
    UNIQUE (org_id, name)
);
INSERT INTO destinations_rebuilt (
    id, org_id, name, endpoint, authorization_sealed, log_format, skip_ssl_verification,
    created_at, updated_at, managed_region, portal_id, headers_sealed, kind, kind_settings
)
SELECT
    id, org_id, name, endpoint, authorization_sealed, log_format, skip_ssl_verification,
    created_at, updated_at, managed_region, portal_id, headers_sealed, kind, kind_settings
FROM destinations;
DROP TABLE destinations;
ALTER TABLE destinations_rebuilt RENAME TO destinations;
CREATE INDEX destinations_org_created ON destinations (org_id, created_at, id);
CREATE UNIQUE INDEX destinations_managed ON destinations (org_id, managed_region)
    WHERE managed_region IS NOT NULL;
CREATE INDEX destinations_org_portal_created ON destinations (org_id, portal_id, created_at, id);

COMMIT;

PRAGMA foreign_keys = ON;
