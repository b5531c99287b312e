-- Past replay jobs: a job that has ended is copied here when the next PUT replaces it, the
-- newest 20 kept per scope. Same columns as `replay_jobs`, keyed by the job's own id.
CREATE TABLE replay_history (
    id              TEXT PRIMARY KEY,
    scope_id        INTEGER NOT NULL REFERENCES scopes (id),
    start_at        INTEGER NOT NULL,
    end_at          INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('completed', 'failed')),
    updated_at      INTEGER NOT NULL,
    events_total    INTEGER,
    events_sent     INTEGER NOT NULL,
    batches_sent    INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    failure_reason  TEXT,
    resume_ts       INTEGER,
    resume_seq      INTEGER,
    through_seq     INTEGER
);
CREATE INDEX replay_history_scope ON replay_history (scope_id, updated_at);
