//! `anycloud route explain` (the built binary) and the live gateway's
//! `x-anycloud-route` header agree on the same config and inputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anycloud_emulators::{spawn_on_port, EmulatorConfig};
use std::process::Command;

fn explain(config: &std::path::Path, model: &str, needs: &str) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_anycloud"))
        .args(["route", "explain", "--config"])
        .arg(config)
        .args(["--model", model, "--tenant", "team", "--format", "json"])
        .args(if needs.is_empty() {
            vec![]
        } else {
            vec!["--needs", needs]
        })
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), v)
}

#[tokio::test]
async fn cli_explain_matches_the_live_route_header() {
    let azure = spawn_on_port(
        EmulatorConfig::azure("azure-us", "az-key", vec!["gpt-4o-prod".into()]),
        0,
    )
    .await
    .unwrap();
    let local = spawn_on_port(
        EmulatorConfig::openai_compatible("local-openai", "local-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[store]
url = "sqlite://{db}"

[[clouds]]
name = "azure-us"
provider = "azure_openai"
base_url = "{azure}"
api_key = "az-key"
api_version = "2024-10-21"
jurisdiction = "us"

[[clouds]]
name = "local-openai"
provider = "openai_compatible"
base_url = "{local}"
api_key = "local-key"
jurisdiction = "us"

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
capabilities = ["chat", "stream"]
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"
capabilities = ["chat", "stream", "tools"]

[[models]]
name = "new-model"
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"

[agreements.primary]
cloud = "azure-us"
ship_first = true

[[tenants]]
name = "team"
"#,
        db = dir.path().join("gw.db").display(),
        azure = azure.base_url(),
        local = local.base_url(),
    );
    let path = dir.path().join("anycloud.toml");
    std::fs::write(&path, &text).unwrap();
    let config = anycloud_config::load(&path).unwrap();
    let store = anycloud_store::open(&config.store.url).await.unwrap();
    let state = anycloud_server::AppState::build(config, store.clone())
        .await
        .unwrap();
    let (_, key) = anycloud_store::create_key(store.as_ref(), "team", None)
        .await
        .unwrap();
    let key = secrecy::ExposeSecret::expose_secret(&key).to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/chat/completions",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(anycloud_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let send = |body: serde_json::Value| http.post(&url).bearer_auth(&key).json(&body).send();

    // A request needing tools: the primary lacks them.
    let live = send(serde_json::json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
    }))
    .await
    .unwrap();
    assert_eq!(live.status(), 200);
    let live_header = live.headers()["x-anycloud-route"]
        .to_str()
        .unwrap()
        .to_string();
    let (ok, ex) = explain(&path, "gpt-4o", "tools");
    assert!(ok);
    assert_eq!(
        live_header,
        "azure-us:declined(capability:tools) local-openai:ok"
    );
    assert_eq!(ex["route_header"], live_header);

    // Plain chat: the primary first (first look).
    let live = send(
        serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .unwrap();
    let (_, ex) = explain(&path, "gpt-4o", "");
    assert_eq!(
        ex["route_header"],
        live.headers()["x-anycloud-route"].to_str().unwrap()
    );
    assert_eq!(ex["candidates"][0]["why"], "primary (first look)");

    // Ship-first: the primary neither serves nor declined new-model → 403.
    let live = send(
        serde_json::json!({"model": "new-model", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .unwrap();
    assert_eq!(live.status(), 403);
    let (ok, ex) = explain(&path, "new-model", "");
    assert!(!ok, "exit 1 when nothing may serve");
    assert_eq!(
        ex["route_header"],
        live.headers()["x-anycloud-route"].to_str().unwrap()
    );
    assert_eq!(ex["route_header"], "local-openai:declined(ship_first)");
    assert_eq!(ex["error"]["status"], 403);

    // The human table names every reason.
    let out = Command::new(env!("CARGO_BIN_EXE_anycloud"))
        .args(["route", "explain", "--config"])
        .arg(&path)
        .args([
            "--model",
            "new-model",
            "--tenant",
            "team",
            "--at",
            "2031-01-01",
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("ship_first") && table.contains("2031-01-01"),
        "{table}"
    );
    let _ = tx.send(());
}
