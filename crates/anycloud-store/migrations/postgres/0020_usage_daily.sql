-- Daily rollups of the usage ledger (README "Ledger and reports", "Sizing"): one row per
-- UTC day, cloud, model and tenant with the sums reports and agreements accounting read.
-- The ledger writer updates it in the same transaction as the rows it inserts, so it is
-- always exactly `SELECT … GROUP BY day, cloud, model, tenant` over `usage_ledger`; a
-- report over whole days reads a few thousand rows here instead of millions there.
-- Ranges that do not start and end at midnight UTC still scan `usage_ledger`.
--
-- Chosen over a covering index by measurement (bench/README.md "Ledger"): a covering index
-- still reads every row of the month, ~10× over the 1 s aim at 10M rows.
--
-- Numbered after the issue that added it (#18) so parallel branches' migrations do not
-- collide. The backfill reads the whole ledger once.

CREATE TABLE usage_daily (
    day                DATE   NOT NULL,  -- the UTC day of `at`
    cloud              TEXT   NOT NULL,
    model              TEXT   NOT NULL,
    tenant             TEXT   NOT NULL,
    requests           BIGINT NOT NULL,
    input_tokens       BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    cost_nanos         BIGINT NOT NULL,
    cache_saved_nanos  BIGINT NOT NULL,
    PRIMARY KEY (day, cloud, model, tenant)
);

-- Revenue share and commitments read one cloud's spend per day.
CREATE INDEX usage_daily_by_cloud ON usage_daily (cloud, day);

INSERT INTO usage_daily
SELECT (at AT TIME ZONE 'UTC')::date, cloud, model, tenant, COUNT(*), SUM(input_tokens),
       SUM(output_tokens), SUM(cached_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens),
       SUM(cost_nanos), SUM(cache_saved_nanos)
FROM usage_ledger
GROUP BY 1, cloud, model, tenant;
