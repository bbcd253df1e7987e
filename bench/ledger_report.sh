#!/usr/bin/env bash
# Ledger speed (issue #18): insert rate into SQLite through the batched LedgerWriter, and
# `anycloud report`'s build over a month of N ledger rows, read from the daily rollups
# (migration 0020), next to the same sums scanned from the rows (what reports cost before
# the rollups) — and a check that both give identical figures.
#
#   bash bench/ledger_report.sh                      # 10M rows (several minutes to write)
#   RECORDS=1000000 bash bench/ledger_report.sh      # a quicker run
#   DB=/tmp/ledger.db bash bench/ledger_report.sh    # keep the database; a second run
#                                                    # with the same RECORDS only reports
#   SQLITE=0 PG=1 …                                  # PostgreSQL only
#   PG=1 bash bench/ledger_report.sh                 # also PostgreSQL (ANYCLOUD_TEST_POSTGRES
#                                                    # or the test server): see below
#
# It is `cargo bench -p anycloud-ledger --bench ledger` (release profile) with the size in
# LEDGER_BENCH_RECORDS. For PostgreSQL it loads the same month with one INSERT … SELECT
# generate_series (the writer's rate there is the database server's, not ours), applies the
# migrations (whose 0020 backfills the rollups), and times the rollup read against the scan
# with psql's \timing.
set -euo pipefail
exec </dev/null
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECORDS="${RECORDS:-10000000}"
export LEDGER_BENCH_RECORDS="$RECORDS"
[ -z "${DB:-}" ] || export LEDGER_BENCH_DB="$DB"
cd "$ROOT"
if [ "${SQLITE:-1}" = 1 ]; then
    echo "== SQLite: $RECORDS records"
    # The release profile (not `bench`): the same artifacts as the release build.
    cargo bench --quiet --profile release -p anycloud-ledger --bench ledger
fi

if [ "${PG:-0}" = 1 ]; then
    URL="${ANYCLOUD_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
    SCHEMA="ledger_bench_$$"
    echo "== PostgreSQL: $RECORDS records (schema $SCHEMA, dropped afterwards)"
    psql -q "$URL" -c "CREATE SCHEMA $SCHEMA"
    trap 'psql -q "$URL" -c "DROP SCHEMA $SCHEMA CASCADE" >/dev/null 2>&1 || true' EXIT
    for f in crates/anycloud-store/migrations/postgres/*.sql; do
        case "$f" in *0020_*) continue ;; esac
        psql -q -v ON_ERROR_STOP=1 "$URL" -c "SET search_path = $SCHEMA" -f "$f" >/dev/null
    done
    psql -q -v ON_ERROR_STOP=1 "$URL" <<SQL
SET search_path = $SCHEMA;
\timing on
INSERT INTO usage_ledger (at, request_id, tenant, key_id, model, cloud, deployment,
    input_tokens, output_tokens, cached_tokens, usage_estimated, price_input_per_mtok,
    price_output_per_mtok, price_cached_per_mtok, cost_nanos, outcome, upstream_status,
    latency_ms)
SELECT timestamptz '2026-11-01 00:00:00+00' + (i * (2592000.0 / $RECORDS)) * interval '1 second',
       'req-' || i, 'tenant-' || (i % 50), 'key-' || (i % 200),
       (ARRAY['gpt-4o','gpt-4o-mini','claude-sonnet','llama-70b','embed-small'])[1 + i % 5],
       (ARRAY['azure-us','aws-eu','gcp-eu','onprem-vllm'])[1 + i % 4], 'dep',
       500 + i % 1000, 100 + i % 300, 0, false, 2.5, 10.0, 2.5, 1000000 + i % 1000, 'ok', 200, 100
FROM generate_series(0, $RECORDS - 1) AS i;
ANALYZE usage_ledger;
\echo migration 0020 (creates and backfills the rollups):
\i crates/anycloud-store/migrations/postgres/0020_usage_daily.sql
ANALYZE usage_daily;
\echo the month from the rollups:
SELECT count(*), sum(requests), sum(cost_nanos) FROM (
  SELECT day, cloud, model, tenant, requests, cost_nanos FROM usage_daily
  WHERE day >= '2026-11-01' AND day < '2026-12-01' ORDER BY day, cloud, model, tenant) r;
\echo the same month scanned from the rows:
SELECT count(*), sum(requests), sum(cost_nanos) FROM (
  SELECT (at AT TIME ZONE 'UTC')::date AS day, cloud, model, tenant, COUNT(*) AS requests,
         SUM(cost_nanos)::bigint AS cost_nanos
  FROM usage_ledger WHERE at >= '2026-11-01T00:00:00Z' AND at < '2026-12-01T00:00:00Z'
  GROUP BY day, cloud, model, tenant ORDER BY day, cloud, model, tenant) s;
\echo daily spend of one cloud (revenue share, commitments) from the rollups:
SELECT count(*) FROM (SELECT day, SUM(cost_nanos)::bigint FROM usage_daily
  WHERE cloud = 'azure-us' AND day < '2026-12-01' GROUP BY day ORDER BY day) d;
SQL
fi
