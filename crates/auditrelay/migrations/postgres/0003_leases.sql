-- Leases (DECISIONS.md S21): which node owns a webhook's lane, a replay job, a scope's resend,
-- or the retention pruner, and until when. `epoch` grows by one each time the lease is taken,
-- whoever takes it, and a released lease keeps its row (expired) so that it never goes back:
-- a write carries the epoch it was allowed under, and one made under an older epoch is
-- refused. Times are the database's, so nodes' clocks never have to agree.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    epoch       BIGINT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

-- Every serving process and when it last said it was alive: lanes are shared out among the
-- live ones. A row left by a process that died is deleted a day later.
CREATE TABLE nodes (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL
);
