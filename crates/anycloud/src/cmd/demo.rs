//! `anycloud demo`: the gateway over emulated clouds, with a temporary
//! SQLite store, ready keys for three tenants and the dashboard, in one
//! command. Unless `--no-traffic` is given, a steady trickle of mixed
//! requests (`demo_traffic`) keeps the dashboard alive until Ctrl-C.

use super::emulate::{
    emulator_configs, DEMO_AWS_ACCESS_KEY_ID, DEMO_AWS_REGION, DEMO_AWS_SECRET_ACCESS_KEY,
    EMULATOR_KEY, OCI_COMPARTMENT, OCI_KEY_FINGERPRINT_FOR_DEMO, OCI_MODEL, OCI_TENANCY, OCI_USER,
    VERTEX_CLAUDE_MODEL, VERTEX_PROJECT, VERTEX_REGION,
};
use anycloud_emulators::spawn_on_port;
use secrecy::ExposeSecret;
use std::process::ExitCode;

/// The demo's config: the primary Azure cloud first, the OpenAI-compatible
/// cloud as fallback, Bedrock (`aws-eu`) for Claude and as a last gpt-4o
/// fallback, three tenants (one EU-only), a commitment and a revenue share
/// on `azure-us` for the current month.
pub struct DemoConfig<'a> {
    /// The MCP emulator's Streamable HTTP endpoint.
    pub mcp: &'a str,
    pub azure: &'a str,
    pub openai: &'a str,
    pub bedrock: &'a str,
    pub anthropic: &'a str,
    pub db: &'a str,
    pub port: u16,
    pub admin_token: &'a str,
    /// The current month: agreements run from its first to its last day.
    pub month: (chrono::NaiveDate, chrono::NaiveDate),
}

pub fn demo_config(c: &DemoConfig<'_>) -> String {
    let DemoConfig {
        mcp,
        azure,
        openai,
        bedrock,
        anthropic,
        db,
        port,
        admin_token,
        month: (first, last),
    } = *c;
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"
admin_token = "{admin_token}"

[store]
url = "sqlite://{db}"

[[clouds]]
name = "azure-us"
provider = "azure_openai"
base_url = "{azure}"
api_key = "{EMULATOR_KEY}"
api_version = "2024-10-21"
region = "eastus"
jurisdiction = "us"

[[clouds]]
name = "local-openai"
provider = "openai_compatible"
base_url = "{openai}"
api_key = "{EMULATOR_KEY}"
jurisdiction = "eu"

[[clouds]]
name = "aws-eu"
provider = "bedrock"
base_url = "{bedrock}"
region = "{DEMO_AWS_REGION}"
jurisdiction = "eu"
access_key_id = "{DEMO_AWS_ACCESS_KEY_ID}"
secret_access_key = "{DEMO_AWS_SECRET_ACCESS_KEY}"

[[clouds]]
name = "anthropic"
provider = "anthropic"
base_url = "{anthropic}"
api_key = "{EMULATOR_KEY}"
jurisdiction = "us"

# Claude's streams continue on the other cloud when one fails mid-answer (README
# "Streams that survive a cloud failing"); the demo's traffic interrupts one now and then.
[[models]]
name = "claude-sonnet"
resume_streams = true
[[models.deployments]]
cloud = "anthropic"
target = "claude-sonnet-4-20250514"
capabilities = ["chat", "stream", "tools", "vision", "prefill"]
price = {{ input_per_mtok = 3.00, output_per_mtok = 15.00 }}
[[models.deployments]]
cloud = "aws-eu"
target = "anthropic.claude-3-5-sonnet-20240620-v1:0"
capabilities = ["chat", "stream", "tools", "vision", "prefill"]
price = {{ input_per_mtok = 3.00, output_per_mtok = 15.00 }}

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]
price = {{ input_per_mtok = 2.50, output_per_mtok = 10.00 }}
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]
price = {{ input_per_mtok = 2.00, output_per_mtok = 8.00 }}
[[models.deployments]]
cloud = "aws-eu"
target = "openai.gpt-oss-120b-1:0"
capabilities = ["chat", "stream", "tools"]
price = {{ input_per_mtok = 0.15, output_per_mtok = 0.60 }}

[[models]]
name = "gpt-4o-mini"
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o-mini"
capabilities = ["chat", "stream", "tools"]
price = {{ input_per_mtok = 0.15, output_per_mtok = 0.60 }}
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-mini-prod"
capabilities = ["chat", "stream", "tools"]
price = {{ input_per_mtok = 0.15, output_per_mtok = 0.60 }}

[[models]]
name = "text-embedding-3-small"
[[models.deployments]]
cloud = "azure-us"
target = "embed-small"
capabilities = ["embeddings"]
price = {{ input_per_mtok = 0.02 }}
[[models.deployments]]
cloud = "local-openai"
target = "text-embedding-3-small"
capabilities = ["embeddings"]
price = {{ input_per_mtok = 0.02 }}

# The MCP emulator's tools behind /mcp, as `tools__<tool>`.
[[mcp_servers]]
name = "tools"
url = "{mcp}"
jurisdiction = "eu"
call_timeout_ms = 10000

[[tenants]]
name = "demo"
mcp = {{ servers = ["tools"] }}

[[tenants]]
name = "payments"
jurisdictions = ["eu"]
budget = {{ usd = 5.0, period = "month" }}
mcp = {{ tools = ["tools__lookup_order", "tools__echo"], deny = ["tools__fail"], calls_per_minute = 30 }}

[[tenants]]
name = "research"
budget = {{ usd = 2.0, period = "day" }}
mcp = {{ tools = ["tools__echo", "tools__slow"] }}

[[agreements.commitment]]
cloud = "azure-us"
amount_usd = 0.50
from = "{first}"
to = "{last}"

[[agreements.revenue_share]]
party = "azure-us"
percent = 10.0
from = "{first}"
until = "{last}"
cap_usd = 0.02
"#
    )
}

/// The OCI cloud and its `llama-3.3-70b` model, appended to [`demo_config`];
/// `key_file` is the emulator's test key written into the demo's temp dir.
pub fn oci_demo_config(base_url: &str, key_file: &str) -> String {
    format!(
        r#"
[[clouds]]
name = "oci-eu"
provider = "oci"
base_url = "{base_url}"
region = "eu-frankfurt-1"
jurisdiction = "eu"
tenancy = "{OCI_TENANCY}"
user = "{OCI_USER}"
fingerprint = "{OCI_KEY_FINGERPRINT_FOR_DEMO}"
key_file = "{key_file}"
compartment_id = "{OCI_COMPARTMENT}"

[[models]]
name = "llama-3.3-70b"
[[models.deployments]]
cloud = "oci-eu"
target = "{OCI_MODEL}"
capabilities = ["chat", "stream", "tools"]
price = {{ input_per_mtok = 0.72, output_per_mtok = 0.72 }}
"#
    )
}

/// The Vertex part of the demo config: the `gcp-eu` cloud (its service-account key
/// written to `sa_path`) serving `gemini-flash` (with `local-openai` as its fallback) and
/// Claude as `claude-vertex`.
pub fn vertex_demo_config(base: &str, sa_path: &str) -> String {
    format!(
        r#"
[[clouds]]
name = "gcp-eu"
provider = "vertex"
base_url = "{base}"
project_id = "{VERTEX_PROJECT}"
region = "{VERTEX_REGION}"
credentials_file = "{sa_path}"
jurisdiction = "eu"

[[models]]
name = "gemini-flash"
[[models.deployments]]
cloud = "gcp-eu"
target = "gemini-2.0-flash"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]
price = {{ input_per_mtok = 0.10, output_per_mtok = 0.40 }}
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]
price = {{ input_per_mtok = 2.00, output_per_mtok = 8.00 }}

# Claude served by Vertex AI (rawPredict on publishers/anthropic).
[[models]]
name = "claude-vertex"
[[models.deployments]]
cloud = "gcp-eu"
target = "{VERTEX_CLAUDE_MODEL}"
capabilities = ["chat", "stream", "tools", "vision"]
price = {{ input_per_mtok = 3.00, output_per_mtok = 15.00 }}
"#
    )
}

/// The first and last day of the current UTC month.
fn this_month() -> (chrono::NaiveDate, chrono::NaiveDate) {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let first = today.with_day(1).unwrap_or(today);
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    (first, next.pred_opt().unwrap_or(first))
}

/// A fresh admin token for this demo run (printed, never stored elsewhere).
fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut b);
    format!("demo-admin-{}", hex::encode(b))
}

pub async fn run(port: u16, traffic: bool) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("anycloud-demo-")
        .tempdir()?;
    let mut emulators = Vec::new();
    for (_, cfg) in emulator_configs()? {
        emulators.push(spawn_on_port(cfg, 0).await?);
    }
    let (openai, azure, oci, bedrock) =
        (&emulators[0], &emulators[1], &emulators[2], &emulators[3]);
    let anthropic = &emulators[5];
    let mcp = anycloud_emulators::spawn_mcp(0).await?;
    let access_log = dir.path().join("access.log");
    super::demo_console::open(&access_log)?;
    let db = dir.path().join("anycloud.db");
    let admin_token = random_token();
    let mut text = demo_config(&DemoConfig {
        mcp: &mcp.url(),
        azure: &azure.base_url(),
        openai: &openai.base_url(),
        bedrock: &bedrock.base_url(),
        anthropic: &anthropic.base_url(),
        db: &db.display().to_string(),
        port,
        admin_token: &admin_token,
        month: this_month(),
    });
    let oci_key = dir.path().join("oci_api_key.pem");
    std::fs::write(&oci_key, anycloud_emulators::OCI_TEST_PRIVATE_KEY_PEM)?;
    text.push_str(&oci_demo_config(
        &oci.base_url(),
        &oci_key.display().to_string(),
    ));
    let vertex = &emulators[4];
    let sa_path = dir.path().join("gcp-service-account.json");
    std::fs::write(&sa_path, vertex.service_account_json().unwrap_or_default())?;
    text.push_str(&vertex_demo_config(
        &vertex.base_url(),
        &sa_path.display().to_string(),
    ));
    let config_path = dir.path().join("anycloud.toml");
    std::fs::write(&config_path, &text)?;
    let config = anycloud_config::parse_str(&text, &config_path, &|_| None)
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let store = super::open_store(&config).await?;
    let listen = config.server.listen.clone();
    let (ledger, sinks) = super::start_ledger(&store, &config.store);
    let state = anycloud_server::AppState::build_with_sinks(config, store.clone(), sinks).await?;
    state.metrics.watch_ledger(ledger.clone());
    state.governance.bookkeeping.register(ledger.gauge());
    let (_, key) = anycloud_store::create_key(store.as_ref(), "demo", Some("demo")).await?;
    let mut tenant_keys = vec![key.expose_secret().to_string()];
    for tenant in ["payments", "research"] {
        let (_, k) = anycloud_store::create_key(store.as_ref(), tenant, Some("demo")).await?;
        tenant_keys.push(k.expose_secret().to_string());
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e} (try --port)"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let key = key.expose_secret().to_string();
    println!(
        r#"anycloud demo is running at {url}
  emulated clouds: azure-us (Azure OpenAI) {az}, local-openai (OpenAI-compatible) {oa},
                   aws-eu (Bedrock) {br}, oci-eu (Oracle OCI, model llama-3.3-70b) {oci},
                   gcp-eu (Vertex AI, model gemini-flash) {vx}, anthropic (Anthropic) {an}
  emulated MCP tool server: tools {mcp}
  config: {cfg}
  access log: {access}  (a summary line is printed here every 5 s)
  demo key: {key}

Try it:
  curl {url}/v1/chat/completions \
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \
    -d '{{"model":"gpt-4o","messages":[{{"role":"user","content":"Hello!"}}]}}' -i

  python3 -c 'from openai import OpenAI; c = OpenAI(base_url="{url}/v1", api_key="{key}"); print(c.chat.completions.create(model="gpt-4o", messages=[{{"role":"user","content":"Hello!"}}]).choices[0].message.content)'

  curl {url}/v1/messages -H "x-api-key: {key}" -H "anthropic-version: 2023-06-01" \
    -H "Content-Type: application/json" \
    -d '{{"model":"claude-sonnet","max_tokens":256,"messages":[{{"role":"user","content":"Hello!"}}]}}'

  MCP tools (same key): {url}/mcp, e.g. with the official Python SDK:
  python3 -c 'import asyncio, httpx2; from mcp import Client; from mcp.client.streamable_http import streamable_http_client as h
async def main():
    async with Client(h("{url}/mcp", http_client=httpx2.AsyncClient(headers={{"Authorization": "Bearer {key}"}}))) as c:
        print([t.name for t in (await c.list_tools()).tools]); print((await c.call_tool("tools__add", {{"a": 2, "b": 40}})).content)
asyncio.run(main())'

Dashboard: {url}/ui  (log in with the admin token below)
  admin token: {admin_token}
{traffic_note}
Metrics: {url}/metrics    Ctrl-C to stop."#,
        traffic_note = if traffic {
            "  traffic: a steady trickle of mixed requests (tenants demo, payments, research; \
             occasional injected failures) is running; `anycloud demo --no-traffic` starts quiet.\n"
        } else {
            ""
        },
        az = azure.base_url(),
        oa = openai.base_url(),
        oci = oci.base_url(),
        br = bedrock.base_url(),
        vx = vertex.base_url(),
        an = anthropic.base_url(),
        cfg = config_path.display(),
        mcp = mcp.url(),
        access = access_log.display(),
    );
    let agent_keys = tenant_keys.clone();
    let emulators = std::sync::Arc::new(emulators);
    let trickle = traffic.then(|| {
        super::demo_traffic::set_latencies(&emulators);
        tokio::spawn(super::demo_traffic::run(
            url.clone(),
            tenant_keys,
            emulators.clone(),
        ))
    });
    let agents = traffic.then(|| tokio::spawn(super::demo_tools::run(url.clone(), agent_keys)));
    let summaries = tokio::spawn(super::demo_console::summaries(
        std::time::Duration::from_secs(5),
        access_log.clone(),
    ));
    let stop: Vec<tokio::task::AbortHandle> = trickle
        .iter()
        .chain(agents.iter())
        .chain(std::iter::once(&summaries))
        .map(tokio::task::JoinHandle::abort_handle)
        .collect();
    // Stop the trickle and the agents first, so shutdown waits only for real clients.
    let shutdown = async move {
        super::shutdown_signal().await;
        stop.iter().for_each(tokio::task::AbortHandle::abort);
    };
    let served = anycloud_server::serve(listener, state, shutdown).await;
    super::drain_ledger(&ledger).await;
    served?;
    for e in emulators.iter() {
        e.shutdown();
    }
    mcp.shutdown();
    drop(dir);
    Ok(ExitCode::SUCCESS)
}
