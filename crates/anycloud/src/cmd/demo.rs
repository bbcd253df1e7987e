//! `anycloud demo`: the gateway over emulated clouds, with a temporary
//! SQLite store and a ready demo key, in one command.

use super::emulate::{emulator_configs, EMULATOR_KEY};
use anycloud_emulators::spawn_on_port;
use secrecy::ExposeSecret;
use std::process::ExitCode;

/// The demo's config: the primary Azure cloud first, the OpenAI-compatible
/// cloud as fallback, and one tenant.
pub fn demo_config(azure: &str, openai: &str, db: &str, port: u16) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{port}"

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

[[tenants]]
name = "demo"
"#
    )
}

pub async fn run(port: u16) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("anycloud-demo-")
        .tempdir()?;
    let mut emulators = Vec::new();
    for (_, cfg) in emulator_configs() {
        emulators.push(spawn_on_port(cfg, 0).await?);
    }
    let (openai, azure) = (&emulators[0], &emulators[1]);
    let db = dir.path().join("anycloud.db");
    let text = demo_config(
        &azure.base_url(),
        &openai.base_url(),
        &db.display().to_string(),
        port,
    );
    let config_path = dir.path().join("anycloud.toml");
    std::fs::write(&config_path, &text)?;
    let config = anycloud_config::parse_str(&text, &config_path, &|_| None)
        .map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let store = super::open_store(&config).await?;
    let listen = config.server.listen.clone();
    let (ledger, sinks) = super::start_ledger(&store);
    let state = anycloud_server::AppState::build_with_sinks(config, store.clone(), sinks).await?;
    let (_, key) = anycloud_store::create_key(store.as_ref(), "demo", Some("demo")).await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e} (try --port)"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let key = key.expose_secret().to_string();
    println!(
        r#"anycloud demo is running at {url}
  emulated clouds: azure-us (Azure OpenAI) {az}, local-openai (OpenAI-compatible) {oa}
  config: {cfg}
  demo key: {key}

Try it:
  curl {url}/v1/chat/completions \
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \
    -d '{{"model":"gpt-4o","messages":[{{"role":"user","content":"Hello!"}}]}}' -i

  python3 -c 'from openai import OpenAI; c = OpenAI(base_url="{url}/v1", api_key="{key}"); print(c.chat.completions.create(model="gpt-4o", messages=[{{"role":"user","content":"Hello!"}}]).choices[0].message.content)'

Metrics: {url}/metrics    Ctrl-C to stop."#,
        az = azure.base_url(),
        oa = openai.base_url(),
        cfg = config_path.display(),
    );
    let served = anycloud_server::serve(listener, state, super::shutdown_signal()).await;
    super::drain_ledger(&ledger).await;
    served?;
    for e in emulators {
        e.shutdown();
    }
    drop(dir);
    Ok(ExitCode::SUCCESS)
}
