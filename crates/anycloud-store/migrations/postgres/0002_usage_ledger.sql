-- The usage ledger: one row per upstream attempt that reached a cloud (see sqlite/0002 for
-- why money is integer nano-dollars: exact sums in any order; BIGINT holds $9.2 billion).

CREATE TABLE usage_ledger (
    id                     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                     TIMESTAMPTZ      NOT NULL,  -- when the attempt started
    request_id             TEXT             NOT NULL,
    tenant                 TEXT             NOT NULL,
    key_id                 TEXT             NOT NULL,
    model                  TEXT             NOT NULL,  -- the public model name
    cloud                  TEXT             NOT NULL,
    deployment             TEXT             NOT NULL,  -- the cloud's own deployment / model id
    input_tokens           BIGINT           NOT NULL,
    output_tokens          BIGINT           NOT NULL,
    cached_tokens          BIGINT           NOT NULL,
    usage_estimated        BOOLEAN          NOT NULL,  -- the gateway estimated the tokens
    price_input_per_mtok   DOUBLE PRECISION NOT NULL,  -- the price the cost was computed at
    price_output_per_mtok  DOUBLE PRECISION NOT NULL,
    price_cached_per_mtok  DOUBLE PRECISION NOT NULL,
    cost_nanos             BIGINT           NOT NULL,
    outcome                TEXT             NOT NULL,  -- `ok` or a reason code
    upstream_status        INTEGER,
    latency_ms             BIGINT           NOT NULL,
    ttft_ms                BIGINT
);

-- Reports scan a time range.
CREATE INDEX usage_ledger_by_time ON usage_ledger (at);
-- Commitment burn-down and revenue share read one cloud's spend over a window.
CREATE INDEX usage_ledger_by_cloud ON usage_ledger (cloud, at);
