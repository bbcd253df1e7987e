//! `anycloud emulate --port P [--cloud C]`: the cloud emulators alone.

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EntraConfig};
use std::process::ExitCode;

pub const EMULATOR_KEY: &str = "emulator-key";

pub fn emulator_configs() -> Vec<(&'static str, EmulatorConfig)> {
    let models = vec![
        "gpt-4o".to_string(),
        "gpt-4o-mini".to_string(),
        "text-embedding-3-small".to_string(),
    ];
    vec![
        (
            "openai_compatible",
            EmulatorConfig::openai_compatible("local-openai", EMULATOR_KEY, models.clone()),
        ),
        (
            "azure_openai",
            EmulatorConfig::azure(
                "azure-us",
                EMULATOR_KEY,
                vec![
                    "gpt-4o-prod".to_string(),
                    "gpt-4o-mini-prod".to_string(),
                    "embed-small".to_string(),
                ],
            )
            .with_entra(EntraConfig {
                tenant_id: "demo-tenant".into(),
                client_id: "demo-client".into(),
                client_secret: "demo-secret".into(),
            }),
        ),
        (
            "anthropic",
            EmulatorConfig::anthropic(
                "anthropic",
                EMULATOR_KEY,
                vec!["claude-sonnet-4-20250514".to_string()],
            ),
        ),
    ]
}

pub async fn run(port: u16, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let configs = emulator_configs();
    if let Some(c) = only {
        if !configs.iter().any(|(k, _)| *k == c) {
            let kinds: Vec<&str> = configs.iter().map(|(k, _)| *k).collect();
            anyhow::bail!("unknown cloud `{c}` (one of: {})", kinds.join(", "));
        }
    }
    let mut handles = Vec::new();
    let mut next_port = port;
    for (kind, cfg) in configs {
        if only.is_some_and(|o| o != kind) {
            continue;
        }
        let h = spawn_on_port(cfg, next_port).await?;
        println!("{kind:<18} {}  (api key: {EMULATOR_KEY})", h.base_url());
        if next_port != 0 {
            next_port = next_port.saturating_add(1);
        }
        handles.push(h);
    }
    println!("fault injection: POST <base>/_emulator/faults, e.g. {{\"fail_next\":{{\"count\":2,\"status\":503,\"retry_after\":1}}}}");
    super::shutdown_signal().await;
    for h in handles {
        h.shutdown();
    }
    Ok(ExitCode::SUCCESS)
}
