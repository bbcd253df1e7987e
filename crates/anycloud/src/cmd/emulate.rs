//! `anycloud emulate --port P [--cloud C]`: the cloud emulators alone.

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EntraConfig, OCI_TEST_KEY_FINGERPRINT};
use std::process::ExitCode;

pub const EMULATOR_KEY: &str = "emulator-key";
/// The Vertex emulator's project and region.
pub const VERTEX_PROJECT: &str = "anycloud-demo";
pub const VERTEX_REGION: &str = "europe-west4";
/// The demo's AWS keys: the Bedrock emulator verifies SigV4 signatures made with them.
pub const DEMO_AWS_ACCESS_KEY_ID: &str = "AKIDANYCLOUDDEMO";
pub const DEMO_AWS_SECRET_ACCESS_KEY: &str = "anycloud-demo-secret";
pub const DEMO_AWS_REGION: &str = "eu-central-1";

/// The OCI emulator's identity; requests must be signed with
/// `anycloud_emulators::OCI_TEST_PRIVATE_KEY_PEM` under this key id.
pub const OCI_TENANCY: &str = "ocid1.tenancy.oc1..demotenancy";
pub const OCI_USER: &str = "ocid1.user.oc1..demouser";
pub const OCI_COMPARTMENT: &str = "ocid1.compartment.oc1..democompartment";
pub const OCI_KEY_FINGERPRINT_FOR_DEMO: &str = OCI_TEST_KEY_FINGERPRINT;
pub const OCI_MODEL: &str = "meta.llama-3.3-70b-instruct";
/// Claude as Vertex names it (served by `rawPredict` on `publishers/anthropic`).
pub const VERTEX_CLAUDE_MODEL: &str = "claude-sonnet-4@20250514";

pub fn emulator_configs() -> anyhow::Result<Vec<(&'static str, EmulatorConfig)>> {
    let models = vec![
        "gpt-4o".to_string(),
        "gpt-4o-mini".to_string(),
        "text-embedding-3-small".to_string(),
    ];
    Ok(vec![
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
            "oci",
            EmulatorConfig::oci(
                "oci-eu",
                OCI_TENANCY,
                OCI_USER,
                OCI_KEY_FINGERPRINT_FOR_DEMO,
                OCI_COMPARTMENT,
                vec![OCI_MODEL.to_string()],
            ),
        ),
        (
            "bedrock",
            EmulatorConfig::bedrock(
                "aws-eu",
                DEMO_AWS_ACCESS_KEY_ID,
                DEMO_AWS_SECRET_ACCESS_KEY,
                vec![
                    "anthropic.claude-3-5-sonnet-20240620-v1:0".to_string(),
                    "openai.gpt-oss-120b-1:0".to_string(),
                    "amazon.titan-embed-text-v2:0".to_string(),
                ],
            )
            .with_region(DEMO_AWS_REGION),
        ),
        (
            "vertex",
            EmulatorConfig::vertex(
                "gcp-eu",
                VERTEX_PROJECT,
                VERTEX_REGION,
                vec![
                    "gemini-2.0-flash".to_string(),
                    "text-embedding-005".to_string(),
                    VERTEX_CLAUDE_MODEL.to_string(),
                ],
            )
            .map_err(|e| anyhow::anyhow!("vertex emulator key: {e}"))?,
        ),
        (
            "anthropic",
            EmulatorConfig::anthropic(
                "anthropic",
                EMULATOR_KEY,
                vec!["claude-sonnet-4-20250514".to_string()],
            ),
        ),
    ])
}

pub async fn run(port: u16, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let configs = emulator_configs()?;
    if let Some(c) = only {
        if c != "mcp" && !configs.iter().any(|(k, _)| *k == c) {
            let mut kinds: Vec<&str> = configs.iter().map(|(k, _)| *k).collect();
            kinds.push("mcp");
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
        if kind == "oci" {
            // The private key the emulator's fingerprint names, for a gateway's key_file.
            let key_file =
                std::env::temp_dir().join(format!("anycloud-emulate-oci-{}.pem", h.addr().port()));
            std::fs::write(&key_file, anycloud_emulators::OCI_TEST_PRIVATE_KEY_PEM)?;
            println!(
                "{kind:<18} {}  (tenancy {OCI_TENANCY}, user {OCI_USER}, fingerprint {OCI_KEY_FINGERPRINT_FOR_DEMO}, compartment {OCI_COMPARTMENT}, key_file {})",
                h.base_url(),
                key_file.display()
            );
        } else if kind == "bedrock" {
            println!(
                "{kind:<18} {}  (SigV4: access key {DEMO_AWS_ACCESS_KEY_ID}, secret {DEMO_AWS_SECRET_ACCESS_KEY}, region {DEMO_AWS_REGION})",
                h.base_url()
            );
        } else if let Some(sa) = h.service_account_json() {
            // The key file's token_uri points at this emulator: point credentials_file at it.
            let path = std::env::temp_dir()
                .join(format!("anycloud-emulate-vertex-{}.json", h.addr().port()));
            std::fs::write(&path, sa)?;
            println!(
                "{kind:<18} {}  (project {VERTEX_PROJECT}, region {VERTEX_REGION}, credentials_file {}; Gemini API key: {})",
                h.base_url(),
                path.display(),
                h.config().api_key
            );
        } else {
            println!("{kind:<18} {}  (api key: {EMULATOR_KEY})", h.base_url());
        }
        if next_port != 0 {
            next_port = next_port.saturating_add(1);
        }
        handles.push(h);
    }
    let mcp = if only.is_none_or(|o| o == "mcp") {
        let h = anycloud_emulators::spawn_mcp(next_port).await?;
        println!(
            "{:<18} {}  (tools: echo, add, lookup_order, slow, fail; stats: GET /_emulator/stats)",
            "mcp",
            h.url()
        );
        Some(h)
    } else {
        None
    };
    println!("fault injection: POST <base>/_emulator/faults, e.g. {{\"fail_next\":{{\"count\":2,\"status\":503,\"retry_after\":1}}}}");
    super::shutdown_signal().await;
    for h in handles {
        h.shutdown();
    }
    if let Some(h) = mcp {
        h.shutdown();
    }
    Ok(ExitCode::SUCCESS)
}
