-- Tenants and their virtual API keys.
--
-- Timestamps are RFC 3339 text in UTC with millisecond precision and a `Z` suffix
-- (`2026-11-01T12:00:00.000Z`): readable with the sqlite3 shell, and because the format is
-- fixed-width, text order is time order.
--
-- Tables still to come, each in its own migration: usage_ledger, audit_log, responses.

CREATE TABLE tenants (
    name       TEXT PRIMARY KEY NOT NULL,
    policy     TEXT NOT NULL,              -- the tenant's policy from the config, as JSON
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE keys (
    id         TEXT PRIMARY KEY NOT NULL,  -- the non-secret id embedded in the key
    tenant     TEXT NOT NULL REFERENCES tenants (name),
    name       TEXT,
    key_hash   TEXT NOT NULL UNIQUE,       -- SHA-256 hex of the whole key; never the key
    key_prefix TEXT NOT NULL,              -- `sk-ac-<id>`, for display
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE INDEX keys_by_tenant ON keys (tenant, created_at);
