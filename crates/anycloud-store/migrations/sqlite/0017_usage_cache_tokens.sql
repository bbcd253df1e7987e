-- Prompt caching and reasoning, each token as the cloud bills it (README "Prompt caching"):
-- cache writes (all TTLs, and the one-hour part) and reasoning tokens in their own columns,
-- the write prices the attempt was charged at, and what caching saved on it (its cost with
-- reads and writes priced as plain input, less what it cost; nano-dollars, so reports sum
-- it exactly). Rows written before this migration have 0 tokens and saving; their write
-- prices are NULL and read back as the input price (they were billed at it).
--
-- Numbered after the issue that added it so parallel branches' migrations do not collide.

ALTER TABLE usage_ledger ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_ledger ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_ledger ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_ledger ADD COLUMN price_cache_write_per_mtok REAL;
ALTER TABLE usage_ledger ADD COLUMN price_cache_write_1h_per_mtok REAL;
ALTER TABLE usage_ledger ADD COLUMN cache_saved_nanos INTEGER NOT NULL DEFAULT 0;
