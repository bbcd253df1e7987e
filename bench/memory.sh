#!/usr/bin/env bash
# Memory (issue #18): the release gateway's peak RSS (VmHWM) in two runs, each on a fresh
# gateway process:
#   1. 64 concurrent clients, half the time non-streaming and half streaming, 10 s each
#      (aim: <= 48 MiB);
#   2. STREAMS (default 1,000) concurrent slow streams, one event a second for SLOW_EVENTS
#      (default 10) seconds each, all open at once (aim: <= 80 MiB); also the RSS before
#      they opened, so the cost per open stream can be read off.
#
#   bash bench/memory.sh
#
# Same config as run.sh (bench/gateway_config.sh) plus model `bench-slow`. Needs the
# release gateway, the bench upstream (built with its `time` feature) and oha (setup.sh).
set -euo pipefail
exec </dev/null
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STREAMS="${STREAMS:-1000}"
export SLOW_EVENTS="${SLOW_EVENTS:-10}"
UP_PORT="${UP_PORT:-19501}"
GW_PORT="${GW_PORT:-19580}"
BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-/work/bench-target}"
OUT="${OUT:-$(mktemp -d /tmp/anycloud-memory.XXXXXX)}"
mkdir -p "$OUT"
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '[memory] %s\n' "$*" >&2; }
UPSTREAM_BIN="$BENCH_TARGET_DIR/release/bench-upstream"
GW_BIN="${GW_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/anycloud}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo build --release --quiet \
        --manifest-path "$ROOT/bench/upstream/Cargo.toml"
    (cd "$ROOT" && cargo build --release --quiet -p anycloud)
fi
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
wait_http() {
    for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
    log "timed out waiting for $1"; return 1
}
# More than 1,000 sockets each for oha and the gateway.
ulimit -n 65536 2>/dev/null || ulimit -n 4096

"$UPSTREAM_BIN" "127.0.0.1:$UP_PORT" 2>"$OUT/upstream.log" &
PIDS+=($!)
# shellcheck source=bench/gateway_config.sh
. "$ROOT/bench/gateway_config.sh"
SLOW_MODEL=1 gateway_config "$OUT/anycloud.toml" "$GW_PORT" "$UP_PORT" "$OUT/bench.db"
export ANYCLOUD_LOG="${ANYCLOUD_LOG:-warn}"
KEY="$("$GW_BIN" keys create --config "$OUT/anycloud.toml" --tenant bench 2>"$OUT/keys.log" | tail -n 1)"

start_gateway() {
    "$GW_BIN" serve --config "$OUT/anycloud.toml" 2>>"$OUT/gateway.log" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_http "http://127.0.0.1:$GW_PORT/healthz"
}
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
load() { # conns seconds body
    oha --no-tui -z "$2s" -c "$1" -m POST -H 'content-type: application/json' \
        -H "authorization: Bearer $KEY" -d "$3" \
        "http://127.0.0.1:$GW_PORT/v1/chat/completions" >"$OUT/oha.txt" 2>&1 || true
}

log "run 1: 64 concurrent, 10 s non-streaming then 10 s streaming"
start_gateway
idle1=$(kib "$GW_PID" VmRSS)
load 64 10 '{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
load 64 10 '{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16,"stream":true}'
peak1=$(kib "$GW_PID" VmHWM)
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true

log "run 2: $STREAMS concurrent slow streams (${SLOW_EVENTS} s each)"
start_gateway
# Warm the pools first, so the figure is the streams' and not start-up's.
load 8 2 '{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
before2=$(kib "$GW_PID" VmRSS)
oha --no-tui -n "$STREAMS" -c "$STREAMS" -m POST -H 'content-type: application/json' \
    -H "authorization: Bearer $KEY" \
    -d '{"model":"bench-slow","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16,"stream":true}' \
    "http://127.0.0.1:$GW_PORT/v1/chat/completions" >"$OUT/oha-slow.txt" 2>&1 &
OHA=$!
open_rss=0
for _ in $(seq 1 $((SLOW_EVENTS - 2))); do
    sleep 1
    r=$(kib "$GW_PID" VmRSS); [ "$r" -gt "$open_rss" ] && open_rss=$r
done
wait "$OHA" || true
peak2=$(kib "$GW_PID" VmHWM)
ok=$(grep -Eo '\[200\] [0-9]+' "$OUT/oha-slow.txt" | awk '{print $2}' || echo 0)

python3 - "$idle1" "$peak1" "$before2" "$open_rss" "$peak2" "$STREAMS" "${ok:-0}" <<'PY'
import sys
idle1, peak1, before2, open_rss, peak2, n, ok = map(int, sys.argv[1:])
mib = lambda k: k / 1024
print(f"| run | RSS before (MiB) | peak RSS (MiB) | aim | result |")
print(f"|---|---:|---:|---|---|")
print(f"| 64 concurrent (10 s non-streaming + 10 s streaming) | {mib(idle1):.1f} | {mib(peak1):.1f} | <= 48 MiB | {'PASS' if mib(peak1) <= 48 else 'FAIL'} |")
print(f"| {n:,} concurrent slow streams ({ok:,} answered 200) | {mib(before2):.1f} | {mib(peak2):.1f} | <= 80 MiB | {'PASS' if mib(peak2) <= 80 else 'FAIL'} |")
print()
print(f"per open stream: {(open_rss - before2) / max(n, 1):.0f} KiB (highest RSS sampled while open {mib(open_rss):.1f} MiB, less RSS before)")
PY
log "raw output in $OUT"
