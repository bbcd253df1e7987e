//! The OpenAI-compatible API served by an Oracle OCI deployment: a gateway on
//! port 0 whose only cloud is the OCI emulator (signature-verifying), the API
//! key written to a temp file as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{
    spawn_on_port, EmulatorConfig, EmulatorHandle, OCI_TEST_KEY_FINGERPRINT,
    OCI_TEST_PRIVATE_KEY_PEM,
};
use serde_json::{json, Value};

const MODEL: &str = "meta.llama-3.3-70b-instruct";

struct Gateway {
    url: String,
    key: String,
    oci: EmulatorHandle,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Gateway {
    let oci = spawn_on_port(
        EmulatorConfig::oci(
            "oci-eu",
            "ocid1.tenancy.oc1..t",
            "ocid1.user.oc1..u",
            OCI_TEST_KEY_FINGERPRINT,
            "ocid1.compartment.oc1..c",
            vec![MODEL.into()],
        ),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("oci_api_key.pem");
    std::fs::write(&key_file, OCI_TEST_PRIVATE_KEY_PEM).unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[store]
url = "sqlite://{db}"

[[clouds]]
name = "oci-eu"
provider = "oci"
base_url = "{base}"
region = "eu-frankfurt-1"
jurisdiction = "eu"
tenancy = "ocid1.tenancy.oc1..t"
user = "ocid1.user.oc1..u"
fingerprint = "{fp}"
key_file = "{key}"
compartment_id = "ocid1.compartment.oc1..c"

[[models]]
name = "llama-3.3-70b"
[[models.deployments]]
cloud = "oci-eu"
target = "{MODEL}"
capabilities = ["chat", "stream", "tools"]

[[tenants]]
name = "team"
"#,
        db = dir.path().join("gw.db").display(),
        base = oci.base_url(),
        fp = OCI_TEST_KEY_FINGERPRINT,
        key = key_file.display(),
    );
    let path = dir.path().join("anycloud.toml");
    let config = anycloud_config::parse_str(&text, &path, &|_| None).unwrap();
    let store = anycloud_store::open(&config.store.url).await.unwrap();
    let state = anycloud_server::AppState::build(config, store.clone())
        .await
        .unwrap();
    let (_, k) = anycloud_store::create_key(store.as_ref(), "team", None)
        .await
        .unwrap();
    let (url, tx) = common::listen(state).await;
    Gateway {
        url,
        key: secrecy::ExposeSecret::expose_secret(&k).to_string(),
        oci,
        _dir: dir,
        _stop: tx,
    }
}

impl Gateway {
    async fn chat(&self, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn openai_chat_json_through_oci() {
    let gw = start().await;
    let r = gw
        .chat(json!({"model": "llama-3.3-70b", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello Oracle!"}]}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("x-anycloud-cloud")
            .unwrap()
            .to_str()
            .unwrap(),
        "oci-eu"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "llama-3.3-70b");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("Hello from oci-eu ({MODEL}). You said: Hello Oracle!")
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 8);
    // The cloud saw a signed GENERIC request with both messages.
    let sent = &gw.oci.requests()[0];
    assert!(sent
        .header("authorization")
        .unwrap()
        .starts_with("Signature "));
    assert_eq!(sent.body["chatRequest"]["messages"][0]["role"], "SYSTEM");
}

#[tokio::test]
async fn openai_sse_through_oci_with_usage() {
    let gw = start().await;
    let r = gw
        .chat(json!({"model": "llama-3.3-70b", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "stream it"}]}))
        .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        content,
        format!("Hello from oci-eu ({MODEL}). You said: stream it")
    );
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let last = chunks.last().unwrap();
    assert_eq!(last["usage"]["completion_tokens"], 8, "{text}");
}
