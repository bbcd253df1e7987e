-- Tenants and their virtual API keys (the PostgreSQL twin of sqlite/0001; versions match
-- across backends, so the same version means the same tables).
--
-- Timestamps are timestamptz, written truncated to the millisecond: the precision the SQLite
-- store keeps and the audit chain hashes, so a record reads back the same on both backends.

CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    policy     JSONB NOT NULL,              -- the tenant's policy from the config
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE keys (
    id         TEXT PRIMARY KEY,            -- the non-secret id embedded in the key
    tenant     TEXT NOT NULL REFERENCES tenants (name),
    name       TEXT,
    key_hash   TEXT NOT NULL UNIQUE,        -- SHA-256 hex of the whole key; never the key
    key_prefix TEXT NOT NULL,               -- `sk-ac-<id>`, for display
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE INDEX keys_by_tenant ON keys (tenant, created_at);
