# Sourced by the bench scripts: writes the gateway config they all measure.
#
#   gateway_config FILE GW_PORT UP_PORT DB_PATH [TENANTS] [MODELS] [DEPLOYMENTS]
#
# One `openai_compatible` cloud ("fast") pointing at the bench upstream, model
# `bench-model` (priced, so the ledger, budgets and revenue share have money to count), and
# tenant `bench` with a monthly budget and a rate limit far above what a run sends: every
# governance feature on the request path is exercised (issue #18: "auth, budgets, rate
# limits, ledger, audit, metrics and access log all on"), none refuses. The access log is
# on at the default level; run.sh's ANYCLOUD_LOG decides whether it is written.
#
# TENANTS > 1 adds tenants bench-2 … bench-N with the same policy; MODELS > 1 adds models
# bench-model-2 … bench-model-N, each with DEPLOYMENTS deployments on clouds fast-1 …
# fast-DEPLOYMENTS (all the same upstream). The request always names bench-model as
# tenant bench, so only the size of the configuration changes. SLOW_MODEL=1 adds model
# `bench-slow`, which the bench upstream streams one event a second (memory.sh).
gateway_config() {
    local file="$1" gw_port="$2" up_port="$3" db="$4"
    local tenants="${5:-1}" models="${6:-1}" deployments="${7:-1}"
    {
        cat <<EOF
[server]
listen = "127.0.0.1:$gw_port"

[store]
url = "sqlite://$db"

[[clouds]]
name = "fast"
provider = "openai_compatible"
base_url = "http://127.0.0.1:$up_port/v1"
EOF
        local d m t
        for d in $(seq 1 "$deployments"); do
            [ "$models" -gt 1 ] || break
            printf '\n[[clouds]]\nname = "fast-%s"\nprovider = "openai_compatible"\nbase_url = "http://127.0.0.1:%s/v1"\n' "$d" "$up_port"
        done
        cat <<EOF

[[models]]
name = "bench-model"
[[models.deployments]]
cloud = "fast"
target = "bench-model"
capabilities = ["chat", "stream"]
price = { input_per_mtok = 2.50, output_per_mtok = 10.00 }
EOF
        if [ "${SLOW_MODEL:-0}" = 1 ]; then
            printf '\n[[models]]\nname = "bench-slow"\n[[models.deployments]]\ncloud = "fast"\ntarget = "bench-slow"\ncapabilities = ["chat", "stream"]\nprice = { input_per_mtok = 2.50, output_per_mtok = 10.00 }\n'
        fi
        for m in $(seq 2 "$models"); do
            printf '\n[[models]]\nname = "bench-model-%s"\n' "$m"
            for d in $(seq 1 "$deployments"); do
                printf '[[models.deployments]]\ncloud = "fast-%s"\ntarget = "bench-model-%s"\nprice = { input_per_mtok = 2.50, output_per_mtok = 10.00 }\n' "$d" "$m"
            done
        done
        for t in $(seq 1 "$tenants"); do
            local name=bench
            [ "$t" = 1 ] || name="bench-$t"
            printf '\n[[tenants]]\nname = "%s"\nbudget = { usd = 1000000000.0, period = "month" }\nrate_limit = { requests_per_minute = 100000000, tokens_per_minute = 10000000000 }\n' "$name"
        done
    } >"$file"
}
