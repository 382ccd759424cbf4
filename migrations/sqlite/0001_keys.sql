-- Keys: everything but the secret. The digest is SHA-256 of the whole key.
-- Times are microseconds since the Unix epoch (UTC), so they compare as
-- integers.
CREATE TABLE keys (
    id            TEXT PRIMARY KEY,
    project       TEXT NOT NULL,
    label         TEXT NOT NULL,
    -- 1 while the key is live: labels are unique among a project's live keys
    -- only. Expired keys are released lazily, by the write that needs the
    -- label.
    label_held    INTEGER NOT NULL DEFAULT 1,
    digest        BLOB NOT NULL,
    hint          TEXT NOT NULL,
    -- JSON array of strings.
    scopes        TEXT NOT NULL,
    -- JSON object of strings.
    metadata      TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    -- In the future while the key is in its rotation grace period.
    revoked_at    INTEGER,
    revoke_reason TEXT,
    replaced_by   TEXT,
    replaces      TEXT
) STRICT;

CREATE UNIQUE INDEX keys_digest ON keys (digest);
CREATE UNIQUE INDEX keys_live_label ON keys (project, label) WHERE label_held = 1;
CREATE INDEX keys_project_id ON keys (project, id);

-- One row per admin write, committed in the same transaction.
CREATE TABLE audit_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    actor_key_id  TEXT,
    action        TEXT NOT NULL,
    project       TEXT NOT NULL,
    target_key_id TEXT NOT NULL,
    source        TEXT NOT NULL,
    details       TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX audit_events_target ON audit_events (target_key_id, id);
CREATE INDEX audit_events_project ON audit_events (project, id);
