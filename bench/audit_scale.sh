#!/usr/bin/env bash
# Audit appends/s with 1, 2 and 4 writers (one per gateway instance) on one PostgreSQL,
# all appending to the single audit chain under its advisory lock (bench/README.md "Audit
# appends with several instances"). Each run: a fresh schema, AUDIT_SECONDS of batches
# back to back, the chain verified afterwards.
#   bash bench/audit_scale.sh                      # writers 1 2 4, batches of 50 and 500
#   WRITERS="1 2 4 8" BATCHES="200" bash bench/audit_scale.sh
# Targets the test PostgreSQL only (ANYCLOUD_TEST_POSTGRES, default 127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WRITERS="${WRITERS:-1 2 4}"
BATCHES="${BATCHES:-50 500}"
export AUDIT_SECONDS="${AUDIT_SECONDS:-10}"
cargo build --release -q -p anycloud-store --features test-util --example audit_scale
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/examples/audit_scale"
echo "| writers | batch | appends/s | batches/s | chain |"
echo "|---:|---:|---:|---:|---|"
for b in $BATCHES; do
  for w in $WRITERS; do
    out="$(AUDIT_WRITERS="$w" AUDIT_BATCH="$b" "$BIN")"
    python3 - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print(f"| {r['writers']} | {r['batch']} | {r['appends_per_s']:,.0f} | {r['batches'] / r['seconds']:,.0f} | {'intact' if r['chain_intact'] else 'BROKEN'} |")
PY
  done
done
