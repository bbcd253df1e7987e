-- Governance: the hash-chained audit log, budget spend per period, per-key policies and
-- encrypted payload captures (the PostgreSQL twin of sqlite/0003).

-- One row per AI or admin action. `hash` = SHA-256(prev_hash || canonical JSON of every
-- other column). `route` and `detail` are `json`, not `jsonb`: json keeps the text exactly
-- as written (jsonb would renormalise numbers and refuse \u0000), and the hash covers it.
-- Appends from every instance serialise on a transaction-scoped advisory lock, so `seq`
-- is one gapless total order however many gateways write.
CREATE TABLE audit_log (
    seq           BIGINT PRIMARY KEY,           -- 1, 2, 3, … without gaps
    at            TIMESTAMPTZ NOT NULL,
    actor         TEXT NOT NULL,                -- `key:<id>` or `admin`
    tenant        TEXT,
    action        TEXT NOT NULL,                -- `ai.chat_completions`, `admin.key.create`, …
    model         TEXT,
    cloud         TEXT,
    request_id    TEXT,
    status        BIGINT,
    latency_ms    BIGINT,
    input_tokens  BIGINT,
    output_tokens BIGINT,
    cost_usd      DOUBLE PRECISION,
    route         JSON,                         -- every decision in order
    detail        JSON,                         -- before/after for admin actions
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit_log (at);
CREATE INDEX audit_by_tenant ON audit_log (tenant, at);

-- The chain's head, written in the same transaction as each batch: without it, deleting
-- the newest rows would leave a shorter chain that still verifies.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);

-- Settled spend per budget scope (`tenant:<name>` or `key:<id>`) and period start
-- (`2026-11-01`, `2026-11-22`, or `total`).
CREATE TABLE budget_spend (
    scope        TEXT NOT NULL,
    period_start TEXT NOT NULL,
    spent_usd    DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, period_start)
);

-- Budgets and rate limits set on a key through the admin API.
CREATE TABLE key_policies (
    key_id     TEXT PRIMARY KEY REFERENCES keys (id),
    policy     JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Request and response bodies of tenants that opted in, AES-256-GCM encrypted.
CREATE TABLE captured_payloads (
    request_id TEXT PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    tenant     TEXT NOT NULL,
    key_id     TEXT NOT NULL,                -- the encryption key's id, for rotation
    nonce      BYTEA NOT NULL,               -- 12 bytes, fresh per record
    ciphertext BYTEA NOT NULL                -- JSON {"request":…,"response":…} sealed
);
