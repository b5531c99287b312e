-- One row the writer rewrites to learn whether the store accepts writes again after a fault
-- (a full disk): see `WriterConn::probe`. It holds no data of anyone's.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at INTEGER NOT NULL,
    padding BLOB NOT NULL
);
