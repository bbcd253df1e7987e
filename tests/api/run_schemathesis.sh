#!/usr/bin/env bash
# Runs schemathesis against the admin API of a real `anycloud serve` (no clouds needed):
# no 5xx, and every response must match /admin/v1/openapi.json (--checks all).
# Usage: tests/api/run_schemathesis.sh <anycloud binary> <python venv bin dir> [max examples]
set -euo pipefail
BIN="$1"; VENV_BIN="$2"; MAX="${3:-25}"
WORK="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT="$("$VENV_BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
TOKEN="schemathesis-admin-token-$RANDOM$RANDOM"
cat > "$WORK/anycloud.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
admin_token = "\${ST_ADMIN_TOKEN}"

[store]
url = "sqlite://$WORK/st.db"

[capture]
key = "\${ST_CAPTURE_KEY}"

[[clouds]]
name = "local"
provider = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
api_key = "unused"

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "local"
target = "gpt-4o"

[[tenants]]
name = "team"
TOML
ST_CAPTURE_KEY="$("$VENV_BIN/python" -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')" \
  ST_ADMIN_TOKEN="$TOKEN" ANYCLOUD_LOG=warn "$BIN" serve --config "$WORK/anycloud.toml" &
PID=$!
# Wait for the gateway (python rather than curl: fewer tools to install).
"$VENV_BIN/python" - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("gateway did not start")
PY
"$VENV_BIN/st" run "http://127.0.0.1:$PORT/admin/v1/openapi.json" \
  --checks all \
  --max-examples "$MAX" \
  --header "Authorization: Bearer $TOKEN" \
  --workers 1
