-- Governance: the hash-chained audit log, budget spend per period, per-key policies and
-- encrypted payload captures.

-- One row per AI or admin action. `hash` = SHA-256(prev_hash || canonical JSON of every
-- other column), so changing, deleting or reordering any row breaks the chain.
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY NOT NULL,   -- 1, 2, 3, … without gaps
    at            TEXT NOT NULL,
    actor         TEXT NOT NULL,                  -- `key:<id>` or `admin`
    tenant        TEXT,
    action        TEXT NOT NULL,                  -- `ai.chat_completions`, `admin.key.create`, …
    model         TEXT,
    cloud         TEXT,
    request_id    TEXT,
    status        INTEGER,
    latency_ms    INTEGER,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    cost_usd      REAL,
    route         TEXT,                           -- JSON: every decision in order
    detail        TEXT,                           -- JSON: before/after for admin actions
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit_log (at);
CREATE INDEX audit_by_tenant ON audit_log (tenant, at);

-- The chain's head, written in the same transaction as each batch: without it, deleting
-- the newest rows would leave a shorter chain that still verifies.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);

-- Settled spend per budget scope (`tenant:<name>` or `key:<id>`) and period start
-- (`2026-11-01`, `2026-11-22`, or `total`). To be reconciled with usage_ledger.
CREATE TABLE budget_spend (
    scope        TEXT NOT NULL,
    period_start TEXT NOT NULL,
    spent_usd    REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, period_start)
);

-- Budgets and rate limits set on a key through the admin API, as JSON.
CREATE TABLE key_policies (
    key_id     TEXT PRIMARY KEY NOT NULL REFERENCES keys (id),
    policy     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Request and response bodies of tenants that opted in, AES-256-GCM encrypted.
CREATE TABLE captured_payloads (
    request_id TEXT PRIMARY KEY NOT NULL,
    at         TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    key_id     TEXT NOT NULL,                 -- the encryption key's id, for rotation
    nonce      BLOB NOT NULL,                 -- 12 bytes, fresh per record
    ciphertext BLOB NOT NULL                  -- JSON {"request":…,"response":…} sealed
);
