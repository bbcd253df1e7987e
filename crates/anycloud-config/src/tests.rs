use super::*;
use std::path::Path;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_token = "${ADMIN}"

[[clouds]]
name = "azure-us"
provider = "azure_openai"
base_url = "https://contoso.openai.azure.com"
api_key = "${AZ_KEY}"
api_version = "2024-10-21"
jurisdiction = "us"

[[clouds]]
name = "local"
provider = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]
price = { input_per_mtok = 2.50, output_per_mtok = 10.00 }
[[models.deployments]]
cloud = "local"
target = "llama"
valid_until = "2032-12-31"

[[tenants]]
name = "payments"
jurisdictions = ["eu"]
models = ["gpt-4o"]
budget = { usd = 500.0, period = "month" }
rate_limit = { requests_per_minute = 600, tokens_per_minute = 200_000 }
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "ADMIN" => Some("adm\"in\\tok-0123456789".into()),
        "AZ_KEY" => Some("az-secret-123".into()),
        _ => None,
    }
}

#[test]
fn parses_a_full_config_and_redacts_secrets_in_debug() {
    let c = parse_str(GOOD, Path::new("a.toml"), &env).map_err(|e| e.to_string());
    let c = match c {
        Ok(c) => c,
        Err(e) => unreachable!("{e}"),
    };
    assert_eq!(c.clouds.len(), 2);
    assert_eq!(
        c.models[0].deployments[1]
            .valid_until
            .map(|d| d.to_string())
            .as_deref(),
        Some("2032-12-31")
    );
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("az-secret-123"), "secret leaked in Debug");
    assert!(
        !dbg.contains("in\\\\tok") && !dbg.contains("in\\tok"),
        "admin token leaked in Debug"
    );
    use secrecy::ExposeSecret;
    assert_eq!(
        c.server
            .admin_token
            .as_ref()
            .map(|s| s.expose_secret().to_string())
            .as_deref(),
        Some("adm\"in\\tok-0123456789")
    );
}

#[test]
fn missing_env_var_names_the_variable_and_line() {
    let err = parse_str(GOOD, Path::new("a.toml"), &|_| None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("a.toml:4:"), "{err}");
    assert!(err.contains("`ADMIN` is not set"), "{err}");
}

#[test]
fn unknown_cloud_reference_names_file_line_and_key() {
    let bad = GOOD.replace("cloud = \"local\"", "cloud = \"nowhere\"");
    let err = parse_str(&bad, Path::new("x/any.toml"), &env)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let line = bad
        .lines()
        .position(|l| l.contains("nowhere"))
        .map(|p| p + 1)
        .unwrap_or(0);
    assert!(
        err.contains(&format!(
            "x/any.toml:{line}: `models[0].deployments[1].cloud`: unknown cloud `nowhere`"
        )),
        "{err}"
    );
}

#[test]
fn typo_in_a_key_is_rejected_with_its_line() {
    let bad = GOOD.replace("api_version =", "api_verison =");
    let err = parse_str(&bad, Path::new("a.toml"), &env)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let line = bad
        .lines()
        .position(|l| l.contains("api_verison"))
        .map(|p| p + 1)
        .unwrap_or(0);
    assert!(err.contains(&format!("a.toml:{line}:")), "{err}");
    assert!(err.contains("api_verison"), "{err}");
}

#[test]
fn reports_every_problem_at_once() {
    let bad = GOOD
        .replace("api_version = \"2024-10-21\"", "")
        .replace("models = [\"gpt-4o\"]", "models = [\"gpt-5\"]");
    let err = parse_str(&bad, Path::new("a.toml"), &env).err();
    let problems = err.map(|e| e.problems).unwrap_or_default();
    assert!(problems.iter().any(|p| p.key == "clouds[0].api_version"));
    assert!(problems
        .iter()
        .any(|p| p.key == "tenants[0].models[0]" && p.line.is_some()));
}

#[test]
fn price_cost_counts_cached_tokens_at_their_price() {
    let p = Price {
        input_per_mtok: 2.0,
        output_per_mtok: 10.0,
        cached_input_per_mtok: Some(1.0),
        ..Price::default()
    };
    let u = anycloud_types::Usage {
        input_tokens: 1_000_000,
        cached_input_tokens: 500_000,
        output_tokens: 100_000,
        ..Default::default()
    };
    assert!((p.cost(&u) - (1.0 + 0.5 + 1.0)).abs() < 1e-9);
}

#[test]
fn literal_dollar_brace_survives() {
    let out = interpolate::interpolate("a = \"$${X}\"", &|_| None).unwrap_or_default();
    assert_eq!(out, "a = \"${X}\"");
}

#[test]
fn redis_settings_parse_validate_and_stay_secret() {
    let with = |store: &str| format!("{GOOD}\n[store]\n{store}\n");
    let env = |name: &str| match name {
        "REDIS_URL" => Some("redis://:hunter2-redis@10.0.0.7:6379".to_string()),
        other => env(other),
    };
    let text = with(
        "redis_url = \"${REDIS_URL}\"\nredis_prefix = \"ac:prod:\"\n[store.redis_down]\nbudgets = \"local\"\nrate_limits = \"open\"",
    );
    let c = match parse_str(&text, Path::new("a.toml"), &env) {
        Ok(c) => c,
        Err(e) => unreachable!("{e}"),
    };
    assert_eq!(c.store.redis_prefix, "ac:prod:");
    assert_eq!(c.store.redis_down.budgets, BudgetsWhenDown::Local);
    assert_eq!(c.store.redis_down.rate_limits, RateLimitsWhenDown::Open);
    assert!(!format!("{c:?}").contains("hunter2-redis"));

    // Defaults: fail closed for budgets, local limits, prefix `anycloud:`.
    let c = match parse_str(GOOD, Path::new("a.toml"), &env) {
        Ok(c) => c,
        Err(e) => unreachable!("{e}"),
    };
    assert_eq!(c.store.redis_prefix, "anycloud:");
    assert_eq!(c.store.redis_down, RedisDownPolicy::default());
    assert_eq!(c.store.redis_down.budgets, BudgetsWhenDown::Refuse);
    assert_eq!(c.store.redis_down.rate_limits, RateLimitsWhenDown::Local);

    let bad = with("redis_url = \"http://:hunter2-redis@x\"\nredis_prefix = \"\"\n[store.redis_down]\nbudgets = \"open\"");
    let err = match parse_str(&bad, Path::new("a.toml"), &env) {
        Ok(_) => unreachable!("accepted a bad redis section"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("expected `refuse` or `local`"), "{err}");
    let bad = with("redis_url = \"http://:hunter2-redis@x\"\nredis_prefix = \"\"");
    let err = match parse_str(&bad, Path::new("a.toml"), &env) {
        Ok(_) => unreachable!("accepted a bad redis url"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("store.redis_url"), "{err}");
    assert!(err.contains("store.redis_prefix"), "{err}");
    assert!(!err.contains("hunter2-redis"), "secret leaked: {err}");
}

#[test]
fn store_auto_migrate_defaults_to_true_and_must_be_a_bool() {
    let parsed = |text: &str| parse_str(text, Path::new("a.toml"), &env);
    assert!(parsed(GOOD).is_ok_and(|c| c.store.auto_migrate));
    let off = format!("{GOOD}\n[store]\nurl = \"postgres://db/anycloud\"\nauto_migrate = false\n");
    assert!(parsed(&off).is_ok_and(|c| !c.store.auto_migrate));
    let bad = format!("{GOOD}\n[store]\nauto_migrate = \"no\"\n");
    let err = parsed(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let line = bad.lines().count();
    assert!(err.contains(&format!("a.toml:{line}:")), "{err}");
    assert!(err.contains("expected a boolean"), "{err}");
}

#[test]
fn an_empty_or_short_admin_token_is_refused_naming_the_key() {
    for token in ["", "fifteen-chars-x"] {
        let empty = |name: &str| match name {
            "ADMIN" => Some(token.to_string()),
            other => env(other),
        };
        let err = parse_str(GOOD, Path::new("a.toml"), &empty)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("a.toml:4: `server.admin_token`: must be at least 16 characters"),
            "{token:?}: {err}"
        );
        assert!(token.is_empty() || !err.contains(token), "{err}");
    }
    let ok = |name: &str| match name {
        "ADMIN" => Some("sixteen-chars-ok".to_string()),
        other => env(other),
    };
    assert!(parse_str(GOOD, Path::new("a.toml"), &ok).is_ok());
}

#[test]
fn a_deployment_on_the_primary_of_a_model_it_declined_is_a_warning() {
    let text = r#"
[[clouds]]
name = "azure-us"
provider = "openai_compatible"
base_url = "http://127.0.0.1:1/v1"
[[clouds]]
name = "aws-eu"
provider = "openai_compatible"
base_url = "http://127.0.0.1:2/v1"
[[models]]
name = "frontier"
[[models.deployments]]
cloud = "aws-eu"
target = "f"
[[models.deployments]]
cloud = "azure-us"
target = "f2"
[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "g"
[agreements.primary]
cloud = "azure-us"
declined_models = ["frontier"]
"#;
    let c = parse_str(text, Path::new("a.toml"), &env).unwrap_or_else(|e| unreachable!("{e}"));
    let w = warnings::warnings(&c);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].key, "models[0].deployments[1]");
    assert!(
        w[0].message.contains("declined_by_primary"),
        "{}",
        w[0].message
    );
    assert_eq!(locate::line_of_key(text, &w[0].key), Some(15));
}

const MCP: &str = r#"
[[mcp_servers]]
name = "github"
url = "https://mcp.example.com/mcp"
headers = { Authorization = "Bearer ${AZ_KEY}" }
jurisdiction = "us"

[[mcp_servers]]
name = "files"
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]
env = { TOKEN = "${AZ_KEY}" }
call_timeout_ms = 5000

[[tenants]]
name = "agents"
mcp = { servers = ["github"], tools = ["github__create_issue", "github__list_*"], deny = ["github__delete_*"], calls_per_minute = 60 }
"#;

fn mcp_errors(extra: &str) -> String {
    let text = format!("{GOOD}{MCP}{extra}");
    parse_str(&text, Path::new("m.toml"), &env)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn mcp_servers_and_tenant_policies_parse_and_hide_their_secrets() {
    let text = format!("{GOOD}{MCP}");
    let c = match parse_str(&text, Path::new("m.toml"), &env) {
        Ok(c) => c,
        Err(e) => unreachable!("{e}"),
    };
    assert_eq!(c.mcp_servers.len(), 2);
    assert_eq!(c.mcp_servers[1].args.len(), 3);
    assert_eq!(c.mcp_servers[1].call_timeout_ms, 5000);
    assert_eq!(c.mcp_servers[0].connect_timeout_ms, 10_000);
    let p = c.tenants[1].mcp.as_ref().map(|p| p.calls_per_minute);
    assert_eq!(p, Some(Some(60)));
    assert!(c.tenants[0].mcp.is_none());
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("az-secret-123"), "MCP secret leaked in Debug");
}

#[test]
fn mcp_server_problems_are_each_reported_with_their_key() {
    let err = mcp_errors(
        r#"
[[mcp_servers]]
name = "bad__name"
url = "ftp://x"
command = "x"

[[mcp_servers]]
name = "nothing"
headers = { "bad header" = "${AZ_KEY}" }

[[mcp_servers]]
name = "github"
command = "x"
headers = { X = "y" }
call_timeout_ms = 0

[[tenants]]
name = "broken"
mcp = { servers = ["nope"], tools = ["create_issue", "a__[z"], calls_per_minute = 0 }
"#,
    );
    for want in [
        "`mcp_servers[2].name`: `bad__name` must be letters",
        "`mcp_servers[2].url`: set either `url` (Streamable HTTP) or `command` (stdio), not both",
        "`mcp_servers[3].url`: set `url` (Streamable HTTP) or `command` (stdio)",
        "`mcp_servers[3].headers`: `bad header` is not a valid HTTP header name",
        "`mcp_servers[4].name`: MCP server `github` is defined twice",
        "`mcp_servers[4].headers`: `headers` apply to HTTP servers (`url`) only",
        "`mcp_servers[4].call_timeout_ms`: must be greater than 0",
        "`tenants[2].mcp.servers[0]`: unknown MCP server `nope`",
        "`tenants[2].mcp.tools[0]`: `create_issue` must name a namespaced tool",
        "`tenants[2].mcp.tools[1]`: bad glob `a__[z`",
        "`tenants[2].mcp.calls_per_minute`: must be at least 1",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("az-secret-123"), "secret in an error: {err}");
}

#[test]
fn store_url_password_never_shows_in_debug_and_retention_is_bounded() {
    let with_pg = GOOD.replacen(
        "[[clouds]]",
        "[store]\nurl = \"postgres://gw:pg-Secret-pw@db.internal:5432/gw?sslmode=verify-full\"\n\n[[clouds]]",
        1,
    );
    let c = parse_str(&with_pg, Path::new("a.toml"), &env).map_err(|e| e.to_string());
    let c = match c {
        Ok(c) => c,
        Err(e) => unreachable!("{e}"),
    };
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("pg-Secret-pw"),
        "password leaked in Debug: {dbg}"
    );
    assert!(
        dbg.contains("db.internal"),
        "the rest of the URL stays: {dbg}"
    );
    assert_eq!(
        redact_url("postgres://u:p@h/db?password=x"),
        "postgres://u:%5BREDACTED%5D@h/db?[REDACTED]"
    );
    for days in ["0", "4000", "4294967295"] {
        let bad = format!("{GOOD}\n[responses]\nretention_days = {days}\n");
        let err = parse_str(&bad, Path::new("a.toml"), &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("`responses.retention_days`: must be between 1 and 3650"),
            "{days}: {err}"
        );
    }
}

#[test]
fn resume_settings_and_the_prefill_capability_are_checked() {
    // Resuming: off by default, one continuation, a model may turn it on alone.
    let on = GOOD.replace(
        "name = \"gpt-4o\"\n",
        "name = \"gpt-4o\"\nresume_streams = true\n",
    );
    let c = parse_str(&on, Path::new("a.toml"), &env).unwrap_or_else(|e| unreachable!("{e}"));
    assert!(!c.routing.resume_streams);
    assert_eq!(c.routing.resume_max(), 1);
    assert!(c.routing.resumes(c.models.first()));
    assert!(!c.routing.resumes(None));
    assert_eq!(c.routing.continuations(&c.models, "gpt-4o"), 1);
    assert_eq!(c.routing.continuations(&c.models, "no-such-model"), 0);
    // ... but none of its deployments can continue an answer: `config check` warns.
    let w = crate::warnings::warnings(&c);
    assert!(
        w.iter()
            .any(|p| p.key == "models[0]" && p.message.contains("prefill")),
        "{w:?}"
    );

    let err = |text: &str| {
        parse_str(text, Path::new("a.toml"), &env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    // Azure OpenAI answers a final assistant message instead of continuing it.
    let azure = GOOD.replace(
        "capabilities = [\"chat\", \"stream\", \"tools\", \"vision\", \"json_schema\"]",
        "capabilities = [\"chat\", \"stream\", \"prefill\"]",
    );
    let e = err(&azure);
    assert!(
        e.contains("`models[0].deployments[0].capabilities`: `prefill` is not possible on azure_openai clouds"),
        "{e}"
    );
    // vLLM behind openai_compatible can (`continue_final_message`).
    let local = GOOD.replace(
        "target = \"llama\"\n",
        "target = \"llama\"\ncapabilities = [\"chat\", \"stream\", \"prefill\"]\n",
    );
    assert!(parse_str(&local, Path::new("a.toml"), &env).is_ok());
    let zero = format!("{GOOD}\n[routing]\nresume_streams = true\nresume_max = 0\n");
    assert!(
        err(&zero).contains("`routing.resume_max`: must be between 1 and 5"),
        "{}",
        err(&zero)
    );
}

#[test]
fn prompt_cache_auto_is_off_by_default_and_only_for_claude() {
    let c = parse_str(GOOD, Path::new("a.toml"), &env).unwrap_or_else(|e| unreachable!("{e}"));
    assert!(c.models[0]
        .deployments
        .iter()
        .all(|d| d.prompt_cache == PromptCacheMode::Off));
    let claude = format!(
        "{GOOD}\n[[clouds]]\nname = \"anthropic\"\nprovider = \"anthropic\"\napi_key = \"k\"\n\
         [[models]]\nname = \"claude\"\n[[models.deployments]]\ncloud = \"anthropic\"\n\
         target = \"claude-sonnet-4-5\"\nprompt_cache = \"auto\"\n"
    );
    let c = parse_str(&claude, Path::new("a.toml"), &env).unwrap_or_else(|e| unreachable!("{e}"));
    assert_eq!(
        c.models[1].deployments[0].prompt_cache,
        PromptCacheMode::Auto
    );
    // On Azure OpenAI (which caches by itself) `auto` is refused, naming the key.
    let azure = GOOD.replace(
        "target = \"gpt-4o-prod\"\n",
        "target = \"gpt-4o-prod\"\nprompt_cache = \"auto\"\n",
    );
    let e = parse_str(&azure, Path::new("a.toml"), &env)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("`models[0].deployments[0].prompt_cache`: `auto` marks Claude's"),
        "{e}"
    );
    let typo = GOOD.replace(
        "target = \"gpt-4o-prod\"\n",
        "target = \"gpt-4o-prod\"\nprompt_cache = \"always\"\n",
    );
    assert!(parse_str(&typo, Path::new("a.toml"), &env).is_err());
}
