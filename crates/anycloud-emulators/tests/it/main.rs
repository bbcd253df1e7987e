//! Integration tests: spawn emulators on port 0 and talk to them over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod azure;
mod faults;
mod openai;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle, EntraConfig};
use serde_json::Value;

pub const OAI_KEY: &str = "sk-emulator-test-key-0123456789";
pub const AZ_KEY: &str = "az-emulator-test-key-0123456789";

pub async fn openai_emu() -> EmulatorHandle {
    let cfg = EmulatorConfig::openai_compatible(
        "oai-test",
        OAI_KEY,
        vec![
            "gpt-4o-mini".to_string(),
            "text-embedding-3-small".to_string(),
        ],
    );
    spawn_on_port(cfg, 0).await.unwrap()
}

pub fn entra() -> EntraConfig {
    EntraConfig {
        tenant_id: "tenant-1".to_string(),
        client_id: "client-1".to_string(),
        client_secret: "secret-1".to_string(),
    }
}

pub async fn azure_emu() -> EmulatorHandle {
    let cfg = EmulatorConfig::azure(
        "azure-us",
        AZ_KEY,
        vec!["gpt-4o".to_string(), "emb".to_string()],
    )
    .with_entra(entra());
    spawn_on_port(cfg, 0).await.unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// Split an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "SSE body must end with a blank line: {body:?}"
    );
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            assert!(!e.contains('\n'), "one line per event expected: {e:?}");
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data line: {e:?}"))
                .to_string()
        })
        .collect()
}

pub fn parse_events(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

pub fn user_chat(model: &str, text: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}
