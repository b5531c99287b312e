-- Which checkpoint stream of a webhook is current (DECISIONS.md S27): moved on each time the
-- stream starts afresh (the checkpoint cursor back to NULL), so that a batch of checkpoints of
-- the stream before, delivered after that, cannot move the new stream's cursor.
ALTER TABLE webhooks ADD COLUMN checkpoint_stream INTEGER NOT NULL DEFAULT 0;
