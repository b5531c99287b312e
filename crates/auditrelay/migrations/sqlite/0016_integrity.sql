-- The tamper-evident log (PRODUCT Decision 16, DECISIONS.md S24): one Merkle log per scope,
-- its leaves, and its signed checkpoints. None of it holds an event's content, and all of it
-- outlives the events (`integrity.keep_leaves`).

-- A log's head: how many leaves it has, the `seq` of the last event it took (events are taken
-- in `seq` order, after they are committed), and its frontier: the roots of its perfect
-- subtrees, largest first, concatenated (32 bytes each, one per set bit of `size`).
CREATE TABLE logs (
    scope_id  INTEGER PRIMARY KEY REFERENCES scopes (id),
    size      INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    frontier  BLOB NOT NULL
);

-- The leaves, 128 to a chunk: chunk `number` holds leaves [number·128, number·128 + 128), a
-- perfect subtree whose `root` is written once it is full. `hashes` is the leaves' hashes
-- concatenated; `seqs` each event's `seq` after `first_seq` as the LEB128 gap from the one
-- before. Retention empties `seqs` and `hashes` of full chunks older than `keep_leaves`; the
-- root stays, and proofs use it in their place. A chunk row is about 4.3 kB: SQLite keeps a
-- small part in the table's page and the rest in one overflow page, 36 bytes a leaf in all.
CREATE TABLE log_chunks (
    scope_id   INTEGER NOT NULL REFERENCES scopes (id),
    number     INTEGER NOT NULL,
    first_seq  INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    last_ts    INTEGER NOT NULL,
    root       BLOB,
    seqs       BLOB,
    hashes     BLOB,
    PRIMARY KEY (scope_id, number)
);

-- The roots of groups of 128 full chunks (16,384 leaves each): a proof reads a group's root
-- instead of its 128 chunks' roots, so its cost grows with the log's size / 16,384.
CREATE TABLE log_groups (
    scope_id  INTEGER NOT NULL REFERENCES scopes (id),
    number    INTEGER NOT NULL,
    root      BLOB NOT NULL,
    PRIMARY KEY (scope_id, number)
);

-- Signed checkpoints, append-only: a log's size and root at `signed_at`, the signed note, and
-- the frontier at that size (from which the next checkpoint's root is computed and checked).
-- Past the events' retention window only the first of each hour stays, past `keep_leaves`
-- only a log's newest (DECISIONS.md S25).
CREATE TABLE checkpoints (
    id             INTEGER PRIMARY KEY,
    scope_id       INTEGER NOT NULL REFERENCES scopes (id),
    size           INTEGER NOT NULL,
    root           BLOB NOT NULL,
    frontier       BLOB NOT NULL,
    previous_size  INTEGER NOT NULL,
    signed_at      INTEGER NOT NULL,
    note           TEXT NOT NULL
);
-- Retention keeps the first checkpoint of each hour past the events' window.
CREATE INDEX checkpoints_scope_signed ON checkpoints (scope_id, signed_at);
-- A log's newest checkpoint.
CREATE INDEX checkpoints_scope ON checkpoints (scope_id, id);
CREATE INDEX checkpoints_scope_size ON checkpoints (scope_id, size, id);
