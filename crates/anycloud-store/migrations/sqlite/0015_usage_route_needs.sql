-- What the router checked for each request, so `anycloud simulate` replays it exactly:
-- `needs` is the capabilities (`chat,stream,tools`, comma-separated, in the order the
-- router checked them; empty for none) and `estimated_tokens` the token estimate it
-- checked context windows with (prompt estimate plus requested output). Both are NULL on
-- rows written before this migration; those replay as plain chat.
--
-- Numbered after the issue that added it so parallel branches' migrations do not collide.

ALTER TABLE usage_ledger ADD COLUMN needs TEXT;
ALTER TABLE usage_ledger ADD COLUMN estimated_tokens INTEGER;
