#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a fixed time and fails on the first crash.
#   bash scripts/fuzz.sh            # CI: every target briefly (FUZZ_SECONDS, default 12)
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh sse openai_stream   # long runs of some targets
# Needs nightly Rust; installs cargo-fuzz if missing. Builds into one target dir outside
# the clone (FUZZ_TARGET_DIR, default /root/.cache/anycloud-fuzz-target), where the
# growing corpora live too (corpus/<target>); fuzz/seeds/<target> seeds each one.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-12}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/root/.cache/anycloud-fuzz-target}"
# The workspace's shared build dir holds stable-toolchain artifacts; fuzz builds keep to
# their own target dir.
unset CARGO_BUILD_BUILD_DIR
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
# No sanitizer: the code is safe Rust (unsafe_code is forbidden), so what matters is
# panics, overflows (debug assertions are on), hangs and runaway allocation.
cargo +nightly fuzz build --sanitizer none
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
summary="$CARGO_TARGET_DIR/fuzz-summary.txt"
: >"$summary"
for t in "${targets[@]}"; do
  corpus="$CARGO_TARGET_DIR/corpus/$t"
  mkdir -p "$corpus" "fuzz/seeds/$t"
  log="$CARGO_TARGET_DIR/fuzz-$t.log"
  echo "fuzz: $t for ${SECONDS_EACH}s"
  if ! cargo +nightly fuzz run --sanitizer none "$t" "$corpus" "fuzz/seeds/$t" -- \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $t FAILED; the input is under fuzz/artifacts/$t/ (add it to crates/*/tests/fuzz_regressions)" >&2
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  printf '%-20s execs %10s  cov %6s  ft %6s  corpus %5s\n' "$t" "$execs" "$cov" "$ft" "$(ls "$corpus" | wc -l)" | tee -a "$summary"
done
