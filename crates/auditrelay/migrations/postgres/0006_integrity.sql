-- The tamper-evident log (PRODUCT Decision 16, DECISIONS.md S24): one Merkle log per scope,
-- its leaves, and its signed checkpoints; the same records as the SQLite store's
-- (migrations/sqlite/0016), in PostgreSQL's types.

CREATE TABLE logs (
    scope_id  BIGINT PRIMARY KEY REFERENCES scopes (id),
    size      BIGINT NOT NULL,
    last_seq  BIGINT NOT NULL,
    frontier  BYTEA NOT NULL
);

CREATE TABLE log_chunks (
    scope_id   BIGINT NOT NULL REFERENCES scopes (id),
    number     BIGINT NOT NULL,
    first_seq  BIGINT NOT NULL,
    last_seq   BIGINT NOT NULL,
    last_ts    BIGINT NOT NULL,
    root       BYTEA,
    seqs       BYTEA,
    hashes     BYTEA,
    PRIMARY KEY (scope_id, number)
);
-- Hashes do not compress: stored out of line as they are, without a try at compressing them.
ALTER TABLE log_chunks ALTER COLUMN hashes SET STORAGE EXTERNAL;

-- The roots of groups of 128 full chunks (16,384 leaves each): a proof reads a group's root
-- instead of its 128 chunks' roots, so its cost grows with the log's size / 16,384.
CREATE TABLE log_groups (
    scope_id  BIGINT NOT NULL REFERENCES scopes (id),
    number    BIGINT NOT NULL,
    root      BYTEA NOT NULL,
    PRIMARY KEY (scope_id, number)
);

CREATE TABLE checkpoints (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope_id       BIGINT NOT NULL REFERENCES scopes (id),
    size           BIGINT NOT NULL,
    root           BYTEA NOT NULL,
    frontier       BYTEA NOT NULL,
    previous_size  BIGINT NOT NULL,
    signed_at      BIGINT NOT NULL,
    note           TEXT NOT NULL
);
-- Retention keeps the first checkpoint of each hour past the events' window.
CREATE INDEX checkpoints_scope_signed ON checkpoints (scope_id, signed_at);
-- A log's newest checkpoint.
CREATE INDEX checkpoints_scope ON checkpoints (scope_id, id);
CREATE INDEX checkpoints_scope_size ON checkpoints (scope_id, size, id);
