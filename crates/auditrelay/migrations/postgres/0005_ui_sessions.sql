-- The web UI's sign-in sessions, so that a sign-in on one node works on every node, a sign-out
-- ends it everywhere, and an idle session expires by its last request on any node
-- (`ui/session.rs`). Keyed by the SHA-256 of the cookie's random id, never the id itself; the
-- API token the session calls with is sealed with the secrets key, bound to the key. Times in
-- ms since the epoch.
CREATE TABLE ui_sessions (
    key              BYTEA PRIMARY KEY,
    principal_id     TEXT NOT NULL,
    client           TEXT,
    sealed_token     BYTEA NOT NULL,
    csrf             TEXT NOT NULL,
    name             TEXT NOT NULL,
    role             TEXT NOT NULL,
    portal_id        TEXT,
    created_at       BIGINT NOT NULL,
    last_seen        BIGINT NOT NULL,
    flash            TEXT,
    refresh_audited  BIGINT
);
CREATE INDEX ui_sessions_principal ON ui_sessions (principal_id, last_seen);
CREATE INDEX ui_sessions_client ON ui_sessions (client, last_seen);
CREATE INDEX ui_sessions_last_seen ON ui_sessions (last_seen);
