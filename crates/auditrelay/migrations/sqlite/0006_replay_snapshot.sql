-- A replay job sends the events of its window that were stored when it started running: the
-- newest such `seq` bounds it, so events stored later (the job's own PUT among them) are left
-- to live delivery and `events_total` is exact. NULL for jobs started before this column.
ALTER TABLE replay_jobs ADD COLUMN through_seq INTEGER;
