-- The tamper-evident log in the stream (DECISIONS.md S27); the same records as the SQLite
-- store's (migrations/sqlite/0017), in PostgreSQL's types.

ALTER TABLE destinations ADD COLUMN integrity BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE webhooks ADD COLUMN checkpoint_cursor BIGINT;

CREATE INDEX log_chunks_scope_last_seq ON log_chunks (scope_id, last_seq);
