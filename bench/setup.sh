#!/usr/bin/env bash
# Installs what the benchmarks in bench/ need, if missing: nginx (Debian package, the
# yardstick row of run.sh), valgrind (callgrind.sh's instruction counts), sqlite3 (the
# ledger bench's cross-check) and oha (the load generator, from crates.io).
#
# Idempotent: installs only what is missing, reads no stdin, prints what it did.
# Needs root for apt-get (the development VMs and CI run as root).
set -euo pipefail
exec </dev/null
export DEBIAN_FRONTEND=noninteractive
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have nginx || missing+=(nginx)
have valgrind || missing+=(valgrind)
have sqlite3 || missing+=(sqlite3)
have taskset || missing+=(util-linux)
have python3 || missing+=(python3)
have curl || missing+=(curl)

if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian package starts a system nginx on port 80; the bench runs its own.
    if [[ " ${missing[*]} " == *" nginx "* ]]; then
        (service nginx stop || /usr/sbin/nginx -s stop) >/dev/null 2>&1 || true
    fi
else
    log "nginx, valgrind, sqlite3 present"
fi

if ! command -v oha >/dev/null 2>&1; then
    log "cargo install oha --locked (a few minutes)"
    cargo install oha --version '^1.4' --locked --quiet
else
    log "oha present ($(oha --version 2>/dev/null | head -n 1))"
fi
