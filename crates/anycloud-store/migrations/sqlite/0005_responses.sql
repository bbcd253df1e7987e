-- Stored Responses API state (`store: true`), per tenant. `body` is the
-- sealed JSON document (response, this turn's input items, and the whole
-- conversation for `previous_response_id`); `key_id` names the encryption key
-- that sealed it, NULL when stored in clear.
CREATE TABLE responses (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    key_id     TEXT,
    body       BLOB NOT NULL
);
CREATE INDEX responses_expires_at ON responses (expires_at);
CREATE INDEX responses_tenant ON responses (tenant, created_at);
