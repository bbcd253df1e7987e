#!/usr/bin/env bash
# Gateway overhead benchmark: anycloud vs. the same load sent straight to a
# fast local upstream, non-streaming and streaming.
#
#   bash bench/run.sh                 # build, measure, print a markdown table
#                                     # and issue #18's aims as PASS/FAIL lines
#   PROFILE=1 bash bench/run.sh       # also perf-record the gateway under load
#
# It first runs bench/setup.sh (installs nginx, valgrind and oha if missing; SETUP=0
# skips it), so every run has the nginx row. The gateway's config is
# bench/gateway_config.sh's: auth, budgets, rate limits, ledger, audit, metrics and the
# access-log hook all on.
#
# Layout (2-core machine): the gateway is pinned to core $GW_CPU (default 0);
# the fast upstream (bench/upstream) and the load generator (oha) share core
# $LOAD_CPU (default 1). Only 127.0.0.1 is targeted; every run is bounded by
# duration (<= 15 s) and the script needs no stdin.
#
# Knobs (environment):
#   DURATION=10      seconds per run (capped at 15)
#   RATE=100         requests/s for the fixed-rate latency runs
#   RATE_CONNS=4     connections for the fixed-rate runs
#   MAX_CONNS=32     connections for the max-throughput runs
#   GW_CPU=0 LOAD_CPU=1
#   PRIO=rt          how gateway, upstream and oha are shielded from other work
#                    on the machine (e.g. builds): rt = SCHED_RR priority 10
#                    via chrt (needs root; the kernel's RT throttling still
#                    leaves others 5%), nice = nice -n -20, none = as is.
#                    Default rt when chrt -r works, else nice.
#   UP_PORT=19301 GW_PORT=19380 NGX_PORT=19390
#   NGINX=1          also measure nginx as a plain proxy_pass (1: always, installed by
#                    setup.sh; 0: skip)
#   BENCH_TARGET_DIR=/work/bench-target   cargo target dir for the upstream
#   SKIP_BUILD=1     use existing binaries
#   GW_BIN=<path>    gateway binary (default target/release/anycloud)
#   PROFILE=1        perf record -g the gateway during a max-throughput run
#                    (software cpu-clock event; writes $OUT/perf-*.txt)
#   NODELAY_PRELOAD=1  diagnostic: run the gateway with bench/diag/nodelay_preload.c
#                    preloaded (TCP_NODELAY on every accepted socket)
#   OUT=<dir>        where raw oha JSON, logs and profiles go (default: a temp dir)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10}"
if [ "$DURATION" -gt 15 ]; then DURATION=15; fi
RATE="${RATE:-100}"
RATE_CONNS="${RATE_CONNS:-4}"
MAX_CONNS="${MAX_CONNS:-32}"
GW_CPU="${GW_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
if [ -z "${PRIO:-}" ]; then
    if chrt -r 10 true 2>/dev/null; then PRIO=rt; else PRIO=nice; fi
fi
case "$PRIO" in
    rt) PRIO_CMD=(chrt -r 10) ;;
    nice) PRIO_CMD=(nice -n -20) ;;
    none) PRIO_CMD=() ;;
    *) echo "PRIO must be rt, nice or none" >&2; exit 2 ;;
esac
UP_PORT="${UP_PORT:-19301}"
GW_PORT="${GW_PORT:-19380}"
NGX_PORT="${NGX_PORT:-19390}"
BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-/work/bench-target}"
PROFILE="${PROFILE:-0}"
OUT="${OUT:-$(mktemp -d /tmp/anycloud-bench.XXXXXX)}"
mkdir -p "$OUT"
exec </dev/null

log() { printf '[bench] %s\n' "$*" >&2; }

# --- tools ---------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if [ "${SETUP:-1}" != 0 ]; then
    bash "$ROOT/bench/setup.sh" 2>"$OUT/setup.log" || { cat "$OUT/setup.log" >&2; exit 1; }
fi
command -v oha >/dev/null || { log "oha missing: run bash bench/setup.sh"; exit 1; }
command -v taskset >/dev/null || { log "taskset missing (util-linux)"; exit 1; }
command -v python3 >/dev/null || { log "python3 missing"; exit 1; }
if [ "$PROFILE" = 1 ] && ! command -v perf >/dev/null 2>&1; then
    log "installing linux-perf"
    apt-get install -y linux-perf >"$OUT/perf-install.log" 2>&1 || true
fi

# --- build ---------------------------------------------------------------
UPSTREAM_BIN="$BENCH_TARGET_DIR/release/bench-upstream"
GW_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
GW_BIN="${GW_BIN:-$GW_TARGET_DIR/release/anycloud}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building bench upstream"
    CARGO_TARGET_DIR="$BENCH_TARGET_DIR" cargo build --release --quiet \
        --manifest-path "$ROOT/bench/upstream/Cargo.toml"
    log "building gateway (cargo build --release -p anycloud)"
    (cd "$ROOT" && cargo build --release --quiet -p anycloud)
fi
GW_ENV=()
if [ "${NODELAY_PRELOAD:-0}" = 1 ]; then
    mkdir -p "$BENCH_TARGET_DIR"
    gcc -O2 -shared -fPIC -o "$BENCH_TARGET_DIR/nodelay_preload.so" \
        "$ROOT/bench/diag/nodelay_preload.c" -ldl
    GW_ENV=(env "LD_PRELOAD=$BENCH_TARGET_DIR/nodelay_preload.so")
    log "gateway runs with TCP_NODELAY forced on accepted sockets (diagnostic)"
fi
[ -x "$UPSTREAM_BIN" ] || { log "no $UPSTREAM_BIN"; exit 1; }
[ -x "$GW_BIN" ] || { log "no $GW_BIN"; exit 1; }

# --- processes -----------------------------------------------------------
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$UP_PORT" "$GW_PORT" "$NGX_PORT"; do
    port_free "$p" || { log "port $p is in use; set UP_PORT/GW_PORT"; exit 1; }
done

wait_http() { # url
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null "$1"; then return 0; fi
        sleep 0.1
    done
    log "timed out waiting for $1"
    return 1
}

"${PRIO_CMD[@]}" taskset -c "$LOAD_CPU" "$UPSTREAM_BIN" "127.0.0.1:$UP_PORT" 2>"$OUT/upstream.log" &
UP_PID=$!
PIDS+=("$UP_PID")

CONFIG="$OUT/anycloud.toml"
# shellcheck source=bench/gateway_config.sh
. "$ROOT/bench/gateway_config.sh"
gateway_config "$CONFIG" "$GW_PORT" "$UP_PORT" "$OUT/bench.db"

export ANYCLOUD_LOG="${ANYCLOUD_LOG:-warn}"
KEY="$("$GW_BIN" keys create --config "$CONFIG" --tenant bench 2>"$OUT/keys.log" | tail -n 1)"
[ -n "$KEY" ] || { log "keys create printed no key"; cat "$OUT/keys.log" >&2; exit 1; }

"${GW_ENV[@]}" "${PRIO_CMD[@]}" taskset -c "$GW_CPU" "$GW_BIN" serve --config "$CONFIG" 2>"$OUT/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")

# Reference: nginx as a plain reverse proxy (one worker, keep-alive pool to
# the upstream), pinned like the gateway. NGINX=auto uses it when installed,
# NGINX=1 installs Debian's nginx if missing, NGINX=0 skips it.
NGINX="${NGINX:-1}"
NGX_PID=""
if [ "$NGINX" = 1 ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    log "installing nginx (apt-get install -y nginx)"
    apt-get install -y nginx >"$OUT/nginx-install.log" 2>&1 || true
fi
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
if [ "$NGINX" != 0 ] && [ -x "$NGINX_BIN" ]; then
    mkdir -p "$OUT/nginx"
    cat >"$OUT/nginx/nginx.conf" <<EOF2
worker_processes 1;
daemon off;
master_process off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $OUT/nginx/body;
    proxy_temp_path $OUT/nginx/proxy;
    fastcgi_temp_path $OUT/nginx/fastcgi;
    uwsgi_temp_path $OUT/nginx/uwsgi;
    scgi_temp_path $OUT/nginx/scgi;
    upstream fast { server 127.0.0.1:$UP_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / {
            proxy_pass http://fast;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF2
    "${PRIO_CMD[@]}" taskset -c "$GW_CPU" "$NGINX_BIN" -c "$OUT/nginx/nginx.conf" -p "$OUT/nginx" \
        2>"$OUT/nginx/stderr.log" &
    NGX_PID=$!
    PIDS+=("$NGX_PID")
fi

wait_http "http://127.0.0.1:$UP_PORT/" || exit 1
wait_http "http://127.0.0.1:$GW_PORT/healthz" || { cat "$OUT/gateway.log" >&2; exit 1; }
VIAS=(direct gateway)
if [ -n "$NGX_PID" ]; then
    if wait_http "http://127.0.0.1:$NGX_PORT/"; then
        VIAS+=(nginx)
    else
        log "nginx did not start; see $OUT/nginx"
    fi
fi

BODY_JSON='{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
BODY_STREAM='{"model":"bench-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16,"stream":true}'

target_of() {
    case "$1" in
        direct) echo "127.0.0.1:$UP_PORT" ;;
        gateway) echo "127.0.0.1:$GW_PORT" ;;
        nginx) echo "127.0.0.1:$NGX_PORT" ;;
    esac
}
pid_of() { # the proxy whose CPU is measured (the upstream itself for direct)
    case "$1" in
        direct) echo "$UP_PID" ;;
        gateway) echo "$GW_PID" ;;
        nginx) echo "$NGX_PID" ;;
    esac
}

# Sanity: every target answers 200 with the expected shape.
for via in "${VIAS[@]}"; do
    for body in "$BODY_JSON" "$BODY_STREAM"; do
        code=$(curl -s -o "$OUT/sanity.out" -w '%{http_code}' -X POST \
            -H 'content-type: application/json' -H "authorization: Bearer $KEY" \
            --data "$body" "http://$(target_of "$via")/v1/chat/completions")
        if [ "$code" != 200 ] || ! grep -q 'Hello' "$OUT/sanity.out"; then
            log "sanity check failed on $via ($code): $(head -c 400 "$OUT/sanity.out")"
            exit 1
        fi
    done
done
log "sanity OK (priority: $PRIO; paths: ${VIAS[*]}); raw results in $OUT"

cpu_ticks() { # pid -> utime+stime in clock ticks (all threads, incl. exited ones)
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
CLK_TCK="$(getconf CLK_TCK)"

# run_oha NAME VIA BODY [extra oha args...] -> $OUT/NAME.json, $OUT/NAME.cpu
run_oha() {
    local name="$1" via="$2" body="$3"
    shift 3
    local pid p0 u0 p1 u1
    pid=$(pid_of "$via")
    p0=$(cpu_ticks "$pid"); u0=$(cpu_ticks "$UP_PID")
    "${PRIO_CMD[@]}" taskset -c "$LOAD_CPU" oha --no-tui --output-format json -z "${DURATION}s" \
        -m POST -H 'content-type: application/json' -H "authorization: Bearer $KEY" \
        -d "$body" "$@" "http://$(target_of "$via")/v1/chat/completions" \
        >"$OUT/$name.json" 2>"$OUT/$name.err"
    p1=$(cpu_ticks "$pid"); u1=$(cpu_ticks "$UP_PID")
    echo "$((p1 - p0)) $((u1 - u0))" >"$OUT/$name.cpu"
}

warm() { # a short unmeasured run so connection pools and caches are warm
    "${PRIO_CMD[@]}" taskset -c "$LOAD_CPU" oha --no-tui -n 500 -c 8 -m POST \
        -H 'content-type: application/json' -H "authorization: Bearer $KEY" \
        -d "$1" "http://$(target_of "$2")/v1/chat/completions" >/dev/null 2>&1 || true
}

for mode in json stream; do
    if [ "$mode" = json ]; then body="$BODY_JSON"; else body="$BODY_STREAM"; fi
    for via in "${VIAS[@]}"; do
        warm "$body" "$via"
        log "$mode/$via: fixed ${RATE} req/s for ${DURATION}s"
        run_oha "$mode-$via-rate" "$via" "$body" -q "$RATE" -c "$RATE_CONNS" --latency-correction
        log "$mode/$via: max throughput, $MAX_CONNS connections, ${DURATION}s"
        run_oha "$mode-$via-max" "$via" "$body" -c "$MAX_CONNS"
        if [ "$PROFILE" = 1 ] && [ "$via" = gateway ]; then
            # A separate, unmeasured run: perf's own cost would inflate the CPU figures.
            log "$mode/gateway: profiling a max-throughput run (perf record, ${DURATION}s)"
            perf record -e cpu-clock -F 499 --call-graph dwarf,8192 -p "$GW_PID" \
                -o "$OUT/perf-$mode.data" -- sleep "$DURATION" >"$OUT/perf-$mode.log" 2>&1 &
            PERF_PID=$!
            run_oha "$mode-gateway-profiled" "$via" "$body" -c "$MAX_CONNS"
            wait "$PERF_PID" || true
        fi
    done
done

if [ "$PROFILE" = 1 ]; then
    for mode in json stream; do
        [ -f "$OUT/perf-$mode.data" ] || continue
        log "summarising the $mode profile (perf script; takes a minute or two)"
        perf script -i "$OUT/perf-$mode.data" -F ip,sym 2>/dev/null \
            | python3 "$ROOT/bench/profile_summary.py" >"$OUT/profile-$mode.md" || true
    done
fi

# Peak RSS of the gateway over the whole run (VmHWM), for the record; the memory aims
# (64 concurrent, 1,000 slow streams) are bench/memory.sh's.
awk '/VmHWM/ { print $2 }' "/proc/$GW_PID/status" >"$OUT/gateway.hwm_kb"

# --- report --------------------------------------------------------------
python3 - "$OUT" "$CLK_TCK" "$RATE" "$MAX_CONNS" "${VIAS[@]}" <<'PY'
import json, sys, os
out, clk, rate, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
vias = sys.argv[5:]

def load(name):
    with open(os.path.join(out, name + ".json")) as f:
        j = json.load(f)
    with open(os.path.join(out, name + ".cpu")) as f:
        p, u = f.read().split()
    codes = j.get("statusCodeDistribution", {})
    ok = int(codes.get("200", 0))
    total = sum(int(v) for v in codes.values())
    # oha cancels the requests in flight when -z runs out; those aren't failures.
    errs = sum(int(v) for k, v in j.get("errorDistribution", {}).items()
               if k != "aborted due to deadline")
    lp = j["latencyPercentiles"]
    return {
        "ok": ok, "bad": total - ok + errs,
        "rps": j["summary"]["requestsPerSec"],
        "p50": lp["p50"] * 1000, "p99": lp["p99"] * 1000,
        "proxy_us": int(p) * 1e6 / clk / ok if ok else float("nan"),
        "up_us": int(u) * 1e6 / clk / ok if ok else float("nan"),
    }

print()
print(f"| mode | path | p50 @{rate}/s (ms) | p99 @{rate}/s (ms) | added p50 (ms) | max req/s ({conns} conns) | proxy CPU µs/req (max) | proxy CPU µs/req (@{rate}/s) | upstream CPU µs/req (max) | failed |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
summary = {}
for mode in ("json", "stream"):
    for via in vias:
        summary[(mode, via)] = (load(f"{mode}-{via}-rate"), load(f"{mode}-{via}-max"))
    base = summary[(mode, "direct")][0]["p50"]
    for via in vias:
        r, m = summary[(mode, via)]
        proxy = via != "direct"
        label = "non-streaming" if mode == "json" else "streaming"
        print(f"| {label} | {via} | {r['p50']:.3f} | {r['p99']:.3f} | "
              f"{(r['p50'] - base) if proxy else 0:.3f} | {m['rps']:.0f} | "
              f"{m['proxy_us']:.0f} | {r['proxy_us']:.0f} | {m['up_us']:.0f} | {r['bad'] + m['bad']} |"
              if proxy else
              f"| {label} | {via} | {r['p50']:.3f} | {r['p99']:.3f} | – | {m['rps']:.0f} | – | – | {m['up_us']:.0f} | {r['bad'] + m['bad']} |")
print()
for mode in ("json", "stream"):
    (rd, md), (rg, mg) = summary[(mode, "direct")], summary[(mode, "gateway")]
    label = "non-streaming" if mode == "json" else "streaming"
    line = (f"{label}: gateway adds p50 {rg['p50'] - rd['p50']:.3f} ms, p99 {rg['p99'] - rd['p99']:.3f} ms "
            f"at {rate} req/s; {mg['proxy_us']:.0f} µs CPU/request at {mg['rps']:.0f} req/s")
    if "nginx" in vias:
        rn, mn = summary[(mode, "nginx")]
        line += (f"; nginx adds p50 {rn['p50'] - rd['p50']:.3f} ms, {mn['proxy_us']:.0f} µs CPU/request "
                 f"-> gateway/nginx CPU = {mg['proxy_us'] / mn['proxy_us']:.1f}x")
    print(line)

# Issue #18's aims, each PASS, FAIL or "not measured" (by this script).
print()
def verdict(ok):
    return "PASS" if ok else "FAIL"
for mode in ("json", "stream"):
    label = "non-streaming" if mode == "json" else "streaming"
    (rd, _), (rg, mg) = summary[(mode, "direct")], summary[(mode, "gateway")]
    if "nginx" in vias:
        ratio = mg["proxy_us"] / summary[(mode, "nginx")][1]["proxy_us"]
        print(f"{verdict(ratio <= 2.0)}  CPU/request <= 2x nginx, {label}: {ratio:.2f}x "
              f"({mg['proxy_us']:.0f} vs {summary[(mode, 'nginx')][1]['proxy_us']:.0f} us)"
              f"{'; stretch 1.5x met' if ratio <= 1.5 else ''}")
    else:
        print(f"not measured  CPU/request <= 2x nginx, {label}: no nginx row")
    added50, added99 = rg["p50"] - rd["p50"], rg["p99"] - rd["p99"]
    print(f"{verdict(added50 <= 0.3)}  added p50 <= 0.3 ms at {rate} req/s, {label}: {added50:.3f} ms")
    print(f"{verdict(added99 <= 1.0)}  added p99 <= 1 ms at {rate} req/s, {label}: {added99:.3f} ms")
failed = sum(summary[k][0]["bad"] + summary[k][1]["bad"] for k in summary)
print(f"{verdict(failed == 0)}  no failed requests: {failed}")
try:
    hwm = int(open(os.path.join(out, "gateway.hwm_kb")).read()) / 1024
    print(f"info  gateway peak RSS over this run (up to {conns} connections): {hwm:.1f} MiB")
except (OSError, ValueError):
    pass
for aim in ("translation paths <= 1.5x passthrough CPU",
            "peak RSS <= 48 MiB at 64 concurrent, <= 80 MiB with 1,000 slow streams (bench/memory.sh)",
            "flat CPU/request at 10,000 tenants / 100,000 keys / 500 models x 3 (bench/scale.sh)",
            "scale-out (PostgreSQL + Redis, two instances)",
            "ledger: 100k records/s, report over 10M rows < 1 s (bench/ledger_report.sh)"):
    print(f"not measured  {aim}")
PY
log "raw results in $OUT"
