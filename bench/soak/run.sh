#!/usr/bin/env bash
# The soak (bench/soak/README.md): the release binary under steady mixed chat traffic
# (half streamed, 5% of the primary's requests failing over) for SOAK_SECONDS (default
# 1800), RSS / fds / p99 sampled every SOAK_SAMPLE_SECONDS into CSV, then a PNG plot.
#   bash bench/soak/run.sh                    # 30 minutes
#   SOAK_SECONDS=300 bash bench/soak/run.sh   # 5 minutes
# Load targets 127.0.0.1 only and stops at SOAK_SECONDS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT="${OUT:-$PWD/bench/soak/results}"
mkdir -p "$OUT"
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p anycloud
export SOAK_BIN="${SOAK_BIN:-$TARGET_DIR/release/anycloud}"
export SOAK_SECONDS="${SOAK_SECONDS:-1800}"
export SOAK_OUT="$OUT/soak.csv"
cargo nextest run -p anycloud --test soak --run-ignored only --no-capture 2>&1 | grep -E "^soak|panicked" || true
PY="${SOAK_PYTHON:-python3}"
if ! "$PY" -c "import matplotlib" 2>/dev/null; then
  "$PY" -m venv "$OUT/.venv" && "$OUT/.venv/bin/pip" install -q matplotlib && PY="$OUT/.venv/bin/python"
fi
"$PY" bench/soak/plot.py "$SOAK_OUT" "$OUT/soak.png" "anycloud soak: ${SOAK_SECONDS} s"
echo "CSV: $SOAK_OUT  plot: $OUT/soak.png"
