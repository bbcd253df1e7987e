-- The usage ledger: one row per upstream attempt that reached a cloud (product.md §5).
--
-- Money is integer nano-dollars (`cost_nanos`, 1e-9 USD), never REAL: integer sums are exact
-- and independent of summation order, so a report's per-cloud, per-model and per-tenant
-- totals add up to the same figure as the rows, to the cent and beyond. Rounding happens
-- once per record, at 1e-9 USD; micro-dollars would round a short embedding (8 tokens at
-- $0.02/Mtok = $0.00000016) to zero. An i64 of nano-dollars holds $9.2 billion.
--
-- `at` is RFC 3339 UTC text with millisecond precision, fixed width, so text order is time
-- order and a time range is an index range scan.

CREATE TABLE usage_ledger (
    id                     INTEGER PRIMARY KEY,
    at                     TEXT    NOT NULL,  -- when the attempt started
    request_id             TEXT    NOT NULL,
    tenant                 TEXT    NOT NULL,
    key_id                 TEXT    NOT NULL,
    model                  TEXT    NOT NULL,  -- the public model name
    cloud                  TEXT    NOT NULL,
    deployment             TEXT    NOT NULL,  -- the cloud's own deployment / model id
    input_tokens           INTEGER NOT NULL,
    output_tokens          INTEGER NOT NULL,
    cached_tokens          INTEGER NOT NULL,
    usage_estimated        INTEGER NOT NULL,  -- 1 when the gateway estimated the tokens
    price_input_per_mtok   REAL    NOT NULL,  -- the price the cost was computed at
    price_output_per_mtok  REAL    NOT NULL,
    price_cached_per_mtok  REAL    NOT NULL,
    cost_nanos             INTEGER NOT NULL,
    outcome                TEXT    NOT NULL,  -- `ok` or a reason code (`upstream_503`, `timeout`)
    upstream_status        INTEGER,
    latency_ms             INTEGER NOT NULL,
    ttft_ms                INTEGER
);

-- Reports scan a time range.
CREATE INDEX usage_ledger_by_time ON usage_ledger (at);
-- Commitment burn-down and revenue share read one cloud's spend over a window.
CREATE INDEX usage_ledger_by_cloud ON usage_ledger (cloud, at);
