#!/usr/bin/env bash
# Instructions per request of the release gateway, counted by callgrind: the figure that
# does not move with the machine's speed (bench/README.md "Instruction counts").
#
#   bash bench/callgrind.sh            # builds if needed, prints instructions/request
#   N=200 bash bench/callgrind.sh      # requests per mode (default 300)
#   GW_BIN=/path/to/anycloud bash bench/callgrind.sh   # another build (e.g. an old commit)
#   TENANTS=10000 MODELS=500 DEPLOYMENTS=3 KEYS=100000 bash bench/callgrind.sh
#                      # the same mix with a bigger configuration / key table (scale.sh)
#
# What it does: starts the bench upstream (not instrumented) and the gateway under
# `valgrind --tool=callgrind` with the same config as run.sh (bench/gateway_config.sh),
# sends a warm-up (WARM requests of each mode), zeroes the counters (callgrind_control
# -z), then sends N non-streaming and N streaming chat completions, one connection,
# one request at a time (oha -c 1, so the mix is the same in every run), waits for the
# ledger and audit writers' next flush, dumps the counters (callgrind_control -d) and
# divides the total instruction count (all threads, including the writers' batches and
# the timers that ran meanwhile) by 2N. It also prints the per-mode split: a second
# dump after the non-streaming half.
#
# Output: `$OUT/callgrind.out.*` (open with callgrind_annotate or kcachegrind) and
# `$OUT/summary.txt`. Takes 2–4 minutes (the gateway runs ~50× slower under valgrind).
set -euo pipefail
exec </dev/null

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${N:-300}"
WARM="${WARM:-100}"
UP_PORT="${UP_PORT:-19401}"
GW_PORT="${GW_PORT:-19480}"
BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-/work/bench-target}"
OUT="${OUT:-$(mktemp -d /tmp/anycloud-callgrind.XXXXXX)}"
mkdir -p "$OUT"
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '[callgrind] %s\n' "$*" >&2; }

for tool in valgrind callgrind_control oha curl; do
    command -v "$tool" >/dev/null || { log "$tool missing: run bash bench/setup.sh"; exit 1; }
done

UPSTREAM_BIN="$BENCH_TARGET_DIR/release/bench-upstream"
GW_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
GW_BIN_GIVEN="${GW_BIN:-}"
GW_BIN="${GW_BIN:-$GW_TARGET_DIR/release/anycloud}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    [ -x "$UPSTREAM_BIN" ] || CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo build --release --quiet \
        --manifest-path "$ROOT/bench/upstream/Cargo.toml"
    [ -n "${GW_BIN_GIVEN:-}" ] || (cd "$ROOT" && cargo build --release --quiet -p anycloud)
fi
[ -x "$UPSTREAM_BIN" ] || { log "no $UPSTREAM_BIN"; exit 1; }
[ -x "$GW_BIN" ] || { log "no $GW_BIN"; exit 1; }

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_http() {
    for _ in $(seq 1 600); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    log "timed out waiting for $1"
    return 1
}

"$UPSTREAM_BIN" "127.0.0.1:$UP_PORT" 2>"$OUT/upstream.log" &
PIDS+=($!)

# shellcheck source=bench/gateway_config.sh
. "$ROOT/bench/gateway_config.sh"
CONFIG="$OUT/anycloud.toml"
gateway_config "$CONFIG" "$GW_PORT" "$UP_PORT" "$OUT/bench.db" \
    "${TENANTS:-1}" "${MODELS:-1}" "${DEPLOYMENTS:-1}"
export ANYCLOUD_LOG="${ANYCLOUD_LOG:-warn}"
KEY="$("$GW_BIN" keys create --config "$CONFIG" --tenant bench 2>"$OUT/keys.log" | tail -n 1)"
[ -n "$KEY" ] || { log "keys create printed no key"; cat "$OUT/keys.log" >&2; exit 1; }
if [ "${KEYS:-1}" -gt 1 ]; then
    # KEYS-1 more keys of tenant bench, written straight into the key
    # table (100,000 `anycloud keys create` processes would take an hour); their hashes
    # are random, so they only make the table that size.
    command -v sqlite3 >/dev/null || { log "sqlite3 missing: run bash bench/setup.sh"; exit 1; }
    sqlite3 "$OUT/bench.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${KEYS} - 1)
INSERT INTO keys (id, tenant, name, key_hash, key_prefix, created_at)
SELECT printf('z%011d', i), 'bench', NULL, lower(hex(randomblob(32))),
       printf('sk-ac-z%011d', i), '2026-11-01T00:00:00.000Z'
FROM n;
SQL
    log "key table: $(sqlite3 "$OUT/bench.db" 'SELECT COUNT(*) FROM keys') keys"
fi

valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" \
    --dump-instr=no --collect-jumps=no \
    "$GW_BIN" serve --config "$CONFIG" 2>"$OUT/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")
wait_http "http://127.0.0.1:$UP_PORT/" || exit 1
wait_http "http://127.0.0.1:$GW_PORT/healthz" || { tail -n 20 "$OUT/gateway.log" >&2; exit 1; }

BODY_JSON='{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
BODY_STREAM='{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16,"stream":true}'
send() { # n body
    oha --no-tui --output-format json -n "$1" -c 1 -m POST \
        -H 'content-type: application/json' -H "authorization: Bearer $KEY" \
        -d "$2" "http://127.0.0.1:$GW_PORT/v1/chat/completions" >"$OUT/oha.json" 2>"$OUT/oha.err"
    python3 - "$OUT/oha.json" "$1" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ok = int(j.get("statusCodeDistribution", {}).get("200", 0))
if ok != int(sys.argv[2]):
    sys.exit(f"only {ok} of {sys.argv[2]} requests answered 200: {j.get('statusCodeDistribution')} {j.get('errorDistribution')}")
PY
}

log "warm-up: $WARM + $WARM requests"
send "$WARM" "$BODY_JSON"
send "$WARM" "$BODY_STREAM"
sleep 1 # the writers' batches of the warm-up land before the counters are zeroed
callgrind_control -z "$GW_PID" >/dev/null
log "measuring: $N non-streaming requests"
send "$N" "$BODY_JSON"
sleep 1
callgrind_control -d json "$GW_PID" >/dev/null
log "measuring: $N streaming requests"
send "$N" "$BODY_STREAM"
sleep 1
callgrind_control -d stream "$GW_PID" >/dev/null
sleep 1

python3 - "$OUT" "$N" "$GW_PID" <<'PY' | tee "$OUT/summary.txt"
import glob, os, re, sys
out, n, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def total(part):
    tot = 0
    for f in glob.glob(os.path.join(out, f"callgrind.out.{pid}*")):
        text = open(f, errors="replace").read()
        if f"Trigger: dump {part}\n" not in text:
            continue
        m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if m:
            tot += int(m.group(1))
    return tot
js, st = total("json"), total("stream")
if not js or not st:
    sys.exit("no callgrind dumps found")
print(f"non-streaming: {js / n:,.0f} instructions/request")
print(f"streaming:     {st / n:,.0f} instructions/request")
print(f"mix ({n} + {n}): {(js + st) / (2 * n):,.0f} instructions/request")
PY
log "dumps in $OUT (callgrind_annotate $OUT/callgrind.out.$GW_PID.1)"
