-- Which checkpoint stream of a webhook is current (DECISIONS.md S27); the same column as the
-- SQLite store's (migrations/sqlite/0018), in PostgreSQL's types.
ALTER TABLE webhooks ADD COLUMN checkpoint_stream BIGINT NOT NULL DEFAULT 0;
