-- The invalidation outbox: every write that can narrow a key records the
-- key's digest here in the write's own transaction, so what was invalidated
-- survives any loss of the bus. Replicas tail it by seq; rows are pruned by
-- age. `at` is microseconds since the epoch.
CREATE TABLE invalidations (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    digest BLOB NOT NULL,
    at     INTEGER NOT NULL
) STRICT;
CREATE INDEX invalidations_at ON invalidations (at);
