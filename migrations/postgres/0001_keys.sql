-- Keys: everything but the secret. The digest is SHA-256 of the whole key.
CREATE TABLE keys (
    id            TEXT PRIMARY KEY,
    project       TEXT NOT NULL,
    label         TEXT NOT NULL,
    -- True while the key is live: labels are unique among a project's live
    -- keys only. Expired keys are released lazily, by the write that needs
    -- the label.
    label_held    BOOLEAN NOT NULL DEFAULT TRUE,
    digest        BYTEA NOT NULL,
    hint          TEXT NOT NULL,
    scopes        TEXT[] NOT NULL,
    metadata      JSONB NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    -- In the future while the key is in its rotation grace period.
    revoked_at    TIMESTAMPTZ,
    revoke_reason TEXT,
    replaced_by   TEXT,
    replaces      TEXT
);

CREATE UNIQUE INDEX keys_digest ON keys (digest);
CREATE UNIQUE INDEX keys_live_label ON keys (project, label) WHERE label_held;
CREATE INDEX keys_project_id ON keys (project, id);

-- One row per admin write, committed in the same transaction.
CREATE TABLE audit_events (
    id            BIGSERIAL PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL,
    actor_key_id  TEXT,
    action        TEXT NOT NULL,
    project       TEXT NOT NULL,
    target_key_id TEXT NOT NULL,
    source        TEXT NOT NULL,
    details       JSONB NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_target ON audit_events (target_key_id, id);
CREATE INDEX audit_events_project ON audit_events (project, id);
