//! A gateway on port 0 over two strict emulators (Azure OpenAI `azure-us`
//! first, OpenAI-compatible `local-openai` second), with a temp SQLite
//! store and keys for each configured tenant. Tests run in parallel.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use std::sync::Arc;

pub struct Gateway {
    pub url: String,
    pub azure: EmulatorHandle,
    pub local: EmulatorHandle,
    pub key: String,
    pub narrow_key: String,
    pub eu_key: String,
    pub state: Arc<anycloud_server::AppState>,
    /// Every finished request, as the ledger and audit log see them.
    pub outcomes: Arc<anycloud_server::outcome::MemorySink>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub struct Options {
    pub max_body_bytes: usize,
    pub first_byte_timeout_ms: u64,
    /// Extra TOML appended to the `[server]`-first config, before clouds
    /// (e.g. a `[routing]` section).
    pub routing: String,
    /// Changes the parsed config before the state is built (for settings validation
    /// would refuse, as a config built in code could carry them).
    pub adjust: Option<fn(&mut anycloud_config::Config)>,
}

/// `server.admin_token` of every test gateway.
pub const ADMIN_TOKEN: &str = "admin-secret-token";

impl Default for Options {
    fn default() -> Self {
        Options {
            max_body_bytes: 65_536,
            first_byte_timeout_ms: 10_000,
            routing: String::new(),
            adjust: None,
        }
    }
}

/// Serves `state` on a free port of 127.0.0.1: its base URL, and the sender whose drop
/// shuts the server down.
pub async fn listen(
    state: Arc<anycloud_server::AppState>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = anycloud_server::serve(listener, state, async move {
            let _ = rx.await;
        })
        .await;
    });
    (url, tx)
}

pub async fn start() -> Gateway {
    start_with(Options::default()).await
}

pub async fn start_with(o: Options) -> Gateway {
    let azure = spawn_on_port(
        EmulatorConfig::azure(
            "azure-us",
            "az-key",
            vec!["gpt-4o-prod".into(), "embed-small".into()],
        ),
        0,
    )
    .await
    .unwrap();
    let local = spawn_on_port(
        EmulatorConfig::openai_compatible(
            "local-openai",
            "local-key",
            vec!["gpt-4o".into(), "text-embedding-3-small".into()],
        ),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = {max_body}
request_timeout_ms = 20000
admin_token = "{admin}"

[store]
url = "sqlite://{db}"

{routing}

[[clouds]]
name = "azure-us"
provider = "azure_openai"
base_url = "{azure}"
api_key = "az-key"
api_version = "2024-10-21"
jurisdiction = "us"
first_byte_timeout_ms = {fbt}

[[clouds]]
name = "local-openai"
provider = "openai_compatible"
base_url = "{local}"
api_key = "local-key"
jurisdiction = "us"
first_byte_timeout_ms = {fbt}

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]
price = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"
capabilities = ["chat", "stream", "tools"]

[[models]]
name = "text-embedding-3-small"
[[models.deployments]]
cloud = "azure-us"
target = "embed-small"
capabilities = ["embeddings"]
[[models.deployments]]
cloud = "local-openai"
target = "text-embedding-3-small"
capabilities = ["embeddings"]

[[models]]
name = "other-model"
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"

[[tenants]]
name = "team"

[[tenants]]
name = "narrow"
models = ["other-model"]

[[tenants]]
name = "eu-only"
jurisdictions = ["eu"]
"#,
        max_body = o.max_body_bytes,
        fbt = o.first_byte_timeout_ms,
        admin = ADMIN_TOKEN,
        routing = o.routing,
        db = dir.path().join("gw.db").display(),
        azure = azure.base_url(),
        local = local.base_url(),
    );
    let path = dir.path().join("anycloud.toml");
    let mut config = anycloud_config::parse_str(&text, &path, &|_| None).unwrap();
    if let Some(adjust) = o.adjust {
        adjust(&mut config);
    }
    let store = anycloud_store::open(&config.store.url).await.unwrap();
    let outcomes = Arc::new(anycloud_server::outcome::MemorySink::default());
    let sink: Arc<dyn anycloud_server::outcome::OutcomeSink> = outcomes.clone();
    let state = anycloud_server::AppState::build_with_sinks(config, store.clone(), vec![sink])
        .await
        .unwrap();
    let mut keys = Vec::new();
    for t in ["team", "narrow", "eu-only"] {
        let (_, k) = anycloud_store::create_key(store.as_ref(), t, None)
            .await
            .unwrap();
        keys.push(secrecy::ExposeSecret::expose_secret(&k).to_string());
    }
    let (url, tx) = listen(state.clone()).await;
    Gateway {
        url,
        azure,
        local,
        key: keys[0].clone(),
        narrow_key: keys[1].clone(),
        eu_key: keys[2].clone(),
        state,
        outcomes,
        http: reqwest::Client::new(),
        dir,
        _stop: tx,
    }
}

impl Gateway {
    /// The `x-anycloud-route` of a plain chat request for `model`.
    pub async fn route_of(&self, model: &str) -> String {
        let r = self.chat(hello(model)).await;
        header(&r, "x-anycloud-route").to_string()
    }

    /// Outcomes recorded so far (waits briefly for streams to finish).
    pub async fn outcomes(&self, n: usize) -> Vec<anycloud_server::outcome::RequestOutcome> {
        for _ in 0..200 {
            let got = self.outcomes.outcomes.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.outcomes.outcomes.lock().unwrap().clone()
    }

    pub fn upstream_requests(&self) -> usize {
        self.azure.request_count() + self.local.request_count()
    }

    pub async fn post(
        &self,
        path: &str,
        key: Option<&str>,
        body: serde_json::Value,
    ) -> reqwest::Response {
        let mut rb = self.http.post(format!("{}{}", self.url, path)).json(&body);
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        rb.send().await.unwrap()
    }

    pub async fn chat(&self, body: serde_json::Value) -> reqwest::Response {
        self.post("/v1/chat/completions", Some(&self.key.clone()), body)
            .await
    }
}

pub fn hello(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
}

pub fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Asserts the OpenAI error shape and returns the error object.
pub async fn error_of(r: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(r.status().as_u16(), status, "status");
    assert!(
        !header(&r, "x-request-id").is_empty(),
        "x-request-id on errors"
    );
    assert!(!header(&r, "x-anycloud-cloud").is_empty());
    assert!(!header(&r, "x-anycloud-route").is_empty());
    let v: serde_json::Value = r.json().await.unwrap();
    let e = v
        .get("error")
        .cloned()
        .unwrap_or_else(|| panic!("no error object in {v}"));
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {e}"
    );
    assert!(
        e.get("type").is_some() && e.get("param").is_some() && e.get("code").is_some(),
        "shape {e}"
    );
    e
}

/// A ledger record of `usd` for `gpt-4o` on `cloud`, for tests that fill the ledger directly.
pub fn usage_record(
    at: chrono::DateTime<chrono::Utc>,
    cloud: &str,
    tenant: &str,
    tokens: (u64, u64),
    usd: f64,
) -> anycloud_store::UsageRecord {
    anycloud_store::UsageRecord {
        at,
        request_id: format!("req-{}-{cloud}-{tenant}", at.timestamp()),
        tenant: tenant.into(),
        key_id: "k1".into(),
        model: "gpt-4o".into(),
        cloud: cloud.into(),
        deployment: "gpt-4o".into(),
        input_tokens: tokens.0,
        output_tokens: tokens.1,
        cached_tokens: 0,
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        reasoning_tokens: 0,
        cache_saved_nanos: 0,
        usage_estimated: false,
        price: anycloud_store::RecordedPrice::default(),
        cost_nanos: (usd * 1e9).round() as i64,
        outcome: "ok".into(),
        upstream_status: Some(200),
        latency_ms: 10,
        ttft_ms: None,
        needs: None,
        estimated_tokens: None,
    }
}

/// One admin API call to the gateway at `url` with `token`: the status and the JSON body
/// (`null` when there is none).
pub async fn admin_call(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut rb = http
        .request(method, format!("{url}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// A new key for `tenant` through the admin API, with `extra` fields (budget, limits)
/// in the request; the key itself.
pub async fn create_key(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    tenant: &str,
    extra: serde_json::Value,
) -> String {
    let mut body = serde_json::json!({"tenant": tenant});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, v) = admin_call(
        http,
        url,
        token,
        reqwest::Method::POST,
        "/admin/v1/keys",
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["key"].as_str().unwrap().to_string()
}
