-- Traffic control: per-key rate limit, quota and allowed sources (JSON).
-- rate_limit: {"limit": 100, "period_ms": 1000, "burst": 10}
-- quota: {"limit": 500, "period": "day"|"month"|"credits",
--         "refill_amount": 10, "refill_interval_ms": 60000}
ALTER TABLE keys ADD COLUMN rate_limit TEXT;
ALTER TABLE keys ADD COLUMN quota TEXT;
-- JSON array of CIDR strings.
ALTER TABLE keys ADD COLUMN allowed_cidrs TEXT NOT NULL DEFAULT '[]';
-- The last minute with an allowed call, from the batched usage writes (µs).
ALTER TABLE keys ADD COLUMN last_used_at INTEGER;

-- Calls per key, per minute (µs since the epoch), per outcome ("ok" or a
-- denial reason), written in batches. Rolled up into usage_hour after 48 h.
CREATE TABLE usage_minute (
    key_id   TEXT NOT NULL,
    project  TEXT NOT NULL,
    minute   INTEGER NOT NULL,
    outcome  TEXT NOT NULL,
    calls    INTEGER NOT NULL,
    PRIMARY KEY (key_id, minute, outcome)
) STRICT;
CREATE INDEX usage_minute_project ON usage_minute (project, minute);

-- The same per hour; pruned after 400 days.
CREATE TABLE usage_hour (
    key_id   TEXT NOT NULL,
    project  TEXT NOT NULL,
    hour     INTEGER NOT NULL,
    outcome  TEXT NOT NULL,
    calls    INTEGER NOT NULL,
    PRIMARY KEY (key_id, hour, outcome)
) STRICT;
CREATE INDEX usage_hour_project ON usage_hour (project, hour);
