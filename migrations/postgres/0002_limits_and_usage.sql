-- Traffic control: per-key rate limit, quota and allowed sources.
-- rate_limit: {"limit": 100, "period_ms": 1000, "burst": 10}
-- quota: {"limit": 500, "period": "day"|"month"|"credits",
--         "refill_amount": 10, "refill_interval_ms": 60000}
ALTER TABLE keys ADD COLUMN rate_limit JSONB;
ALTER TABLE keys ADD COLUMN quota JSONB;
ALTER TABLE keys ADD COLUMN allowed_cidrs TEXT[] NOT NULL DEFAULT '{}';
-- The last minute with an allowed call, from the batched usage writes.
ALTER TABLE keys ADD COLUMN last_used_at TIMESTAMPTZ;

-- Calls per key, per minute, per outcome ("ok" or a denial reason),
-- written in batches. Rolled up into usage_hour after 48 hours.
CREATE TABLE usage_minute (
    key_id   TEXT NOT NULL,
    project  TEXT NOT NULL,
    minute   TIMESTAMPTZ NOT NULL,
    outcome  TEXT NOT NULL,
    calls    BIGINT NOT NULL,
    PRIMARY KEY (key_id, minute, outcome)
);
CREATE INDEX usage_minute_project ON usage_minute (project, minute);

-- The same per hour; pruned after 400 days.
CREATE TABLE usage_hour (
    key_id   TEXT NOT NULL,
    project  TEXT NOT NULL,
    hour     TIMESTAMPTZ NOT NULL,
    outcome  TEXT NOT NULL,
    calls    BIGINT NOT NULL,
    PRIMARY KEY (key_id, hour, outcome)
);
CREATE INDEX usage_hour_project ON usage_hour (project, hour);
