-- Exactly-once bookkeeping writes: per spool (`ledger`, `audit`, `spend`) and origin (a
-- random id per gateway start), the highest record sequence written, updated in the same
-- transaction as the records. A batch retried because its commit's acknowledgement was
-- lost finds its records at or below the mark and writes nothing twice. One row per
-- spool per gateway start; `at` (Unix milliseconds) is when it last moved.
CREATE TABLE spool_marks (
    spool  TEXT   NOT NULL,
    origin BIGINT NOT NULL,
    upto   BIGINT NOT NULL,
    at     BIGINT NOT NULL,
    PRIMARY KEY (spool, origin)
);
