-- Stored Responses API state (`store: true`), per tenant (the PostgreSQL twin of
-- sqlite/0005; there is no 0004 on either backend). `body` is the sealed JSON document;
-- `key_id` names the encryption key that sealed it, NULL when stored in clear.
CREATE TABLE responses (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    key_id     TEXT,
    body       BYTEA NOT NULL
);
CREATE INDEX responses_expires_at ON responses (expires_at);
CREATE INDEX responses_tenant ON responses (tenant, created_at);
