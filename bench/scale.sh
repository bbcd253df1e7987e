#!/usr/bin/env bash
# Flat at scale (issue #18): instructions per request (bench/callgrind.sh's fixed mix)
# with a small configuration and with big ones, so anyone can check that per-request cost
# does not grow with the number of tenants, keys, models or deployments.
#
#   bash bench/scale.sh             # four runs, ~3 minutes each; prints a markdown table
#   CASES="base keys" bash bench/scale.sh
#
# Cases: base (1 tenant, 1 key, 1 model), tenants (10,000 tenants in the config and the
# store), keys (100,000 keys in the key table), models (500 models x 3 deployments on 3
# clouds). The requests always come from tenant `bench` with its one real key and name
# `bench-model`; what changes is what the gateway has to look through. Needs the release
# gateway and the bench upstream (see callgrind.sh); N (default 300) requests per mode.
set -euo pipefail
exec </dev/null
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CASES="${CASES:-base tenants keys models}"
OUT="${OUT:-$(mktemp -d /tmp/anycloud-scale.XXXXXX)}"
mkdir -p "$OUT"
export SKIP_BUILD="${SKIP_BUILD:-0}"
declare -A ENVS=(
    [base]=""
    [tenants]="TENANTS=10000"
    [keys]="KEYS=100000"
    [models]="MODELS=500 DEPLOYMENTS=3"
)
for c in $CASES; do
    # REUSE=1 with the same OUT keeps the cases already measured there.
    if [ "${REUSE:-0}" = 1 ] && [ -s "$OUT/$c.txt" ]; then continue; fi
    echo "[scale] $c: ${ENVS[$c]:-(defaults)}" >&2
    # shellcheck disable=SC2086
    env ${ENVS[$c]} OUT="$OUT/$c" bash "$ROOT/bench/callgrind.sh" >"$OUT/$c.txt" 2>"$OUT/$c.log" \
        || { echo "[scale] $c failed: see $OUT/$c.log" >&2; tail -n 5 "$OUT/$c.log" >&2; exit 1; }
    export SKIP_BUILD=1
done
python3 - "$OUT" $CASES <<'PY'
import re, sys, os
out, cases = sys.argv[1], sys.argv[2:]
def figures(c):
    t = open(os.path.join(out, c + ".txt")).read()
    return [int(m.replace(",", "")) for m in re.findall(r"([\d,]+) instructions/request", t)]
base = figures(cases[0])
print("| case | non-streaming instr/req | streaming instr/req | mix instr/req | mix vs " + cases[0] + " |")
print("|---|---:|---:|---:|---:|")
for c in cases:
    j, s, m = figures(c)
    print(f"| {c} | {j:,} | {s:,} | {m:,} | {100 * (m - base[2]) / base[2]:+.1f}% |")
PY
echo "[scale] raw results in $OUT" >&2
