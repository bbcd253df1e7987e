#!/usr/bin/env bash
# THE test command: Rust tests (nextest when installed, else cargo test), then the Python
# SDK conformance suite (tests/sdk) against the real `anycloud` binary, schemathesis on the
# admin API, the dashboard's browser tests (tests/browser, headless Chromium), and every
# fuzz target for a few seconds (scripts/fuzz.sh).
# Idempotent, needs no stdin, works on a fresh machine with only the package registries.
# Runs every stage, prints each runner's summary, and exits non-zero if any stage failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
export ANYCLOUD_BIN="${ANYCLOUD_BIN:-$TARGET_DIR/debug/anycloud}"
LOG_DIR="${TEST_LOG_DIR:-$ROOT/test-artifacts}"
mkdir -p "$LOG_DIR"

step() { printf '\n==> %s\n' "$*"; }
failed=()

# ---- Python environment (rebuilt only when requirements change) --------------------------
PY="${PYTHON:-python3}"
REQ=tests/sdk/requirements.txt
STAMP=.venv/.requirements.sha256
want_hash="$( (cat "$REQ"; "$PY" -c 'import sys; print(sys.version_info[:2])') | sha256sum | cut -d' ' -f1)"
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  step "creating .venv with $PY"
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian's python3 ships venv separately.
    if command -v apt-get >/dev/null 2>&1; then
      step "installing python3-venv"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq python3-venv python3-pip >/dev/null
    fi
    rm -rf .venv
    "$PY" -m venv .venv
  fi
  rm -f "$STAMP"
fi
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$want_hash" ]]; then
  step "installing Python test requirements"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$REQ"
  echo "$want_hash" > "$STAMP"
fi

# ---- build --------------------------------------------------------------------------------
step "cargo build -p anycloud"
cargo build -p anycloud

# ---- Rust tests ---------------------------------------------------------------------------
rust_log="$LOG_DIR/rust-tests.log"
if cargo nextest --version >/dev/null 2>&1; then
  step "cargo nextest run --workspace --no-fail-fast"
  if cargo nextest run --workspace --no-fail-fast 2>&1 | tee "$rust_log"; then :; else failed+=("rust"); fi
  rust_summary="$(grep -E '^\s*Summary ' "$rust_log" | tail -1 || true)"
else
  step "cargo test --workspace --no-fail-fast"
  if cargo test --workspace --no-fail-fast 2>&1 | tee "$rust_log"; then :; else failed+=("rust"); fi
  rust_summary="$(grep -E '^test result:' "$rust_log" | awk '{p+=$4; f+=$6; i+=$8} END {printf "cargo test: %d passed, %d failed, %d ignored", p, f, i}' || true)"
fi

# ---- Python SDK suite -----------------------------------------------------------------------
py_log="$LOG_DIR/sdk-tests.log"
step "pytest tests/sdk (binary: $ANYCLOUD_BIN)"
set +e
.venv/bin/python -m pytest tests/sdk -q -p no:cacheprovider 2>&1 | tee "$py_log"
py_rc=${PIPESTATUS[0]}
set -e
if [[ $py_rc -ne 0 ]]; then failed+=("sdk(pytest exit $py_rc)"); fi
py_summary="$(grep -E '[0-9]+ (passed|failed|error)' "$py_log" | tail -1 || true)"

# ---- schemathesis against the admin API's OpenAPI document --------------------------------
st_log="$LOG_DIR/schemathesis.log"
step "schemathesis: /admin/v1/openapi.json --checks all"
set +e
tests/api/run_schemathesis.sh "$ANYCLOUD_BIN" "$ROOT/.venv/bin" "${ST_MAX_EXAMPLES:-25}" 2>&1 | tee "$st_log"
st_rc=${PIPESTATUS[0]}
set -e
if [[ $st_rc -ne 0 ]]; then failed+=("schemathesis(exit $st_rc)"); fi
st_summary="$(grep -E '[0-9]+ generated' "$st_log" | tail -1 || true)"

# ---- browser tests of the /ui dashboard (Debian's Chromium + playwright-core) -------------
# Chromium from apt only when missing; `npm ci` only when package-lock.json changed (stamp,
# like the Python venv). Screenshots go to $LOG_DIR/screenshots.
br_log="$LOG_DIR/browser-tests.log"
step "browser tests: tests/browser (chromium, playwright-core)"
br_rc=0
br_pkgs=()
[[ -x /usr/bin/chromium ]] || br_pkgs+=(chromium)
command -v npm >/dev/null 2>&1 || br_pkgs+=(nodejs npm)
if [[ ${#br_pkgs[@]} -gt 0 ]]; then
  if command -v apt-get >/dev/null 2>&1; then
    step "installing ${br_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq "${br_pkgs[@]}" >/dev/null; } || br_rc=$?
  else
    echo "missing ${br_pkgs[*]} and no apt-get to install them"; br_rc=1
  fi
fi
BR_STAMP=tests/browser/node_modules/.package-lock.sha256
br_hash="$( (cat tests/browser/package-lock.json; node --version 2>/dev/null) | sha256sum | cut -d' ' -f1)"
if [[ $br_rc -eq 0 && "$(cat "$BR_STAMP" 2>/dev/null || true)" != "$br_hash" ]]; then
  step "npm ci in tests/browser"
  if (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error); then
    echo "$br_hash" > "$BR_STAMP"
  else
    br_rc=1
  fi
fi
if [[ $br_rc -eq 0 ]]; then
  set +e
  (cd tests/browser && TEST_LOG_DIR="$LOG_DIR" node --test --test-concurrency=1 --test-reporter=spec \
    dashboard.test.mjs) 2>&1 | tee "$br_log"
  br_rc=${PIPESTATUS[0]}
  set -e
fi
if [[ $br_rc -ne 0 ]]; then failed+=("browser(exit $br_rc)"); fi
br_summary="$(awk '/^ℹ tests/{t=$3} /^ℹ pass/{p=$3} /^ℹ fail/{f=$3} END {if (t != "") printf "node --test: %d tests, %d passed, %d failed", t, p, f}' "$br_log" 2>/dev/null || true)"

# ---- fuzzing: every cargo-fuzz target briefly, so a new panic fails CI ----------------------
# 18 targets x FUZZ_SECONDS (default 12) plus the build: about 4-5 minutes. The long runs
# are `FUZZ_SECONDS=600 bash scripts/fuzz.sh [target...]` (fuzz/README.md).
fz_log="$LOG_DIR/fuzz.log"
step "fuzz: every target for ${FUZZ_SECONDS:-12}s (scripts/fuzz.sh)"
set +e
bash scripts/fuzz.sh 2>&1 | tee "$fz_log"
fz_rc=${PIPESTATUS[0]}
set -e
if [[ $fz_rc -ne 0 ]]; then failed+=("fuzz(exit $fz_rc)"); fi
fz_summary="$(grep -cE '^[a-z_]+ +execs' "$fz_log" || true) targets ran"

# ---- hooks for later stages ---------------------------------------------------------------
# Add further suites here, each recording into `failed` instead of exiting early.

# ---- summary ------------------------------------------------------------------------------
step "summary"
echo "rust:   ${rust_summary:-no summary line found (see $rust_log)}"
echo "python: ${py_summary:-no summary line found (see $py_log)}"
echo "schemathesis: ${st_summary:-no summary line found (see $st_log)}"
echo "browser: ${br_summary:-no summary line found (see $br_log)}"
echo "fuzz:   ${fz_summary:-no summary (see $fz_log)}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all test stages passed"
