-- The invalidation outbox: every write that can narrow a key records the
-- key's digest here in the write's own transaction, so what was invalidated
-- survives any loss of Redis or of bus messages. Replicas tail it by seq;
-- rows are pruned by age.
CREATE TABLE invalidations (
    seq    BIGSERIAL PRIMARY KEY,
    digest BYTEA NOT NULL,
    at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX invalidations_at ON invalidations (at);
