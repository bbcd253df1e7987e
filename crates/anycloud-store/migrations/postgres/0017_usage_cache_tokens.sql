-- Cache writes (all TTLs, and the one-hour part), reasoning tokens, the write prices and
-- what caching saved, per attempt (see sqlite/0017). Older rows: 0 tokens and saving, NULL
-- write prices read back as the input price.

ALTER TABLE usage_ledger ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_ledger ADD COLUMN cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_ledger ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_ledger ADD COLUMN price_cache_write_per_mtok DOUBLE PRECISION;
ALTER TABLE usage_ledger ADD COLUMN price_cache_write_1h_per_mtok DOUBLE PRECISION;
ALTER TABLE usage_ledger ADD COLUMN cache_saved_nanos BIGINT NOT NULL DEFAULT 0;
