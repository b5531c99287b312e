-- The installation's keys, which every node shares (DECISIONS.md S22): each sealed with the
-- key-encryption key the nodes are given by configuration (`store.key_encryption_key`), which
-- is never stored here. A copy of the database alone holds neither a seed nor a credential.

-- The signing keys, numbered in creation order, with their life (ms since the epoch), as the
-- data directory's `keys/NNNN.json` files hold them for SQLite.
CREATE TABLE signing_keys (
    number       INTEGER PRIMARY KEY,
    kid          TEXT NOT NULL UNIQUE,
    sealed_seed  BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    active_from  BIGINT NOT NULL,
    retired_at   BIGINT
);

-- Other sealed keys by name: `secrets`, the key that seals destinations' credentials (SQLite's
-- `secret.key`).
CREATE TABLE sealed_keys (
    name    TEXT PRIMARY KEY,
    sealed  BYTEA NOT NULL
);
