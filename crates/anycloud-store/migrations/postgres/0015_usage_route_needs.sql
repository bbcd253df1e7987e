-- What the router checked for each request (see sqlite/0015): capabilities as
-- comma-separated names and the token estimate; NULL on older rows (replayed as plain chat).

ALTER TABLE usage_ledger ADD COLUMN needs TEXT;
ALTER TABLE usage_ledger ADD COLUMN estimated_tokens BIGINT;
