-- Replay jobs: one per scope (an org in a region, or a portal), replaced by each PUT once the
-- previous job has ended. No row means Konnect's `unconfigured`.
CREATE TABLE replay_jobs (
    scope_id        INTEGER PRIMARY KEY REFERENCES scopes (id),
    -- New for every PUT: tells a job from the one it replaced (and keys its batches apart).
    id              TEXT NOT NULL,
    start_at        INTEGER NOT NULL,
    end_at          INTEGER NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('accepted', 'pending', 'running', 'completed', 'failed')),
    updated_at      INTEGER NOT NULL,
    events_total    INTEGER,
    events_sent     INTEGER NOT NULL DEFAULT 0,
    batches_sent    INTEGER NOT NULL DEFAULT 0,
    started_at      INTEGER,
    finished_at     INTEGER,
    failure_reason  TEXT,
    -- The (ts, seq) of the last event the SIEM acknowledged: where a restarted job resumes.
    resume_ts       INTEGER,
    resume_seq      INTEGER
);
