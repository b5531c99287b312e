-- The tamper-evident log in the stream (DECISIONS.md S27): a destination opts in with
-- `integrity`; its webhook's lines then carry each event's place in its log, and the
-- checkpoints travel after the events they cover.

ALTER TABLE destinations ADD COLUMN integrity INTEGER NOT NULL DEFAULT 0;

-- The id of the last checkpoint a webhook delivered; NULL until it delivers one (it then
-- starts after the checkpoints its events had already passed).
ALTER TABLE webhooks ADD COLUMN checkpoint_cursor INTEGER;

-- A lane finds the places of the events it reads by their `seq`.
CREATE INDEX log_chunks_scope_last_seq ON log_chunks (scope_id, last_seq);
