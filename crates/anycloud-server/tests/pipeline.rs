//! One request pipeline for every API: each governance feature takes effect on chat
//! completions, messages, responses and embeddings alike, JSON and streamed — payload
//! capture (streams reassembled), the ledger, the audit trail, metrics, budget
//! settlement, the access log, and tokens-per-minute corrected to real usage. A client
//! that leaves mid-stream leaves a partial, estimated attempt on the ledger.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use anycloud_server::AppState;
use base64::Engine;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const ADMIN: &str = "admin-token-for-pipeline-tests-42";

/// Every access-log line written by this test binary.
fn access_log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("anycloud::access=info"))
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Gw {
    url: String,
    state: Arc<AppState>,
    store: Arc<dyn anycloud_store::Store>,
    ledger: Arc<anycloud_ledger::LedgerWriter>,
    http: reqwest::Client,
    emu: EmulatorHandle,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Gw {
    let emu = spawn_on_port(
        EmulatorConfig::openai_compatible(
            "local",
            "local-key",
            vec!["gpt-4o".into(), "text-embedding-3-small".into()],
        ),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN}"

[store]
url = "sqlite://{db}"

[capture]
key = "{key}"
key_id = "pipeline-1"

[[clouds]]
name = "local"
provider = "openai_compatible"
base_url = "{emu}"
api_key = "local-key"

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "local"
target = "gpt-4o"
price = {{ input_per_mtok = 1000.0, output_per_mtok = 1000.0 }}

[[models]]
name = "text-embedding-3-small"
[[models.deployments]]
cloud = "local"
target = "text-embedding-3-small"
capabilities = ["embeddings"]
price = {{ input_per_mtok = 1000.0, output_per_mtok = 0.0 }}

[[tenants]]
name = "captured"
capture = true
"#,
        db = dir.path().join("gw.db").display(),
        emu = emu.base_url(),
    );
    let config =
        anycloud_config::parse_str(&text, &dir.path().join("anycloud.toml"), &|_| None).unwrap();
    let store = anycloud_store::open(&config.store.url).await.unwrap();
    let ledger = Arc::new(anycloud_ledger::LedgerWriter::start(
        store.clone(),
        anycloud_ledger::WriterConfig::default(),
    ));
    let sink: Arc<dyn anycloud_server::outcome::OutcomeSink> = Arc::new(
        anycloud_server::ledger_sink::LedgerSink::new(ledger.clone()),
    );
    let state = AppState::build_with_sinks(config, store.clone(), vec![sink])
        .await
        .unwrap();
    let (url, stop) = common::listen(state.clone()).await;
    Gw {
        url,
        state,
        store,
        ledger,
        http: reqwest::Client::new(),
        emu,
        _dir: dir,
        _stop: stop,
    }
}

impl Gw {
    async fn admin_get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// A new key of the capturing tenant with its own budget and token limit: (key, id).
    async fn key(&self) -> (String, String) {
        let r = self
            .http
            .post(format!("{}/admin/v1/keys", self.url))
            .bearer_auth(ADMIN)
            .json(&json!({"tenant": "captured",
                "budget": {"usd": 100.0, "period": "total"},
                "rate_limit": {"tokens_per_minute": 10000}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        (
            v["key"].as_str().unwrap().to_string(),
            v["id"].as_str().unwrap().to_string(),
        )
    }

    async fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `anycloud_requests_total` summed over every series of `api`.
    fn requests_metric(&self, api: &str) -> f64 {
        let label = format!("api=\"{api}\"");
        self.state
            .metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("anycloud_requests_total{") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn ledger_rows(&self, request_id: &str) -> Vec<anycloud_store::UsageRecord> {
        self.ledger.flush().await;
        let now = chrono::Utc::now();
        self.store
            .usage_records(
                now - chrono::Duration::hours(1),
                now + chrono::Duration::hours(1),
                10_000,
            )
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.request_id == request_id)
            .collect()
    }
}

/// Polls `f` until it returns `Some` (background writers, streams ending), for up to
/// 10 s: on a loaded CI machine a batch can miss the store's write timeout and be retried.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..1000 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} never happened");
}

struct Case {
    api: &'static str,
    path: &'static str,
    body: Value,
    stream: bool,
    /// Where the answer's text (or vector) sits in the API's non-streaming shape.
    answer: &'static str,
}

fn cases() -> Vec<Case> {
    let chat = json!({"model": "gpt-4o", "max_tokens": 2000,
        "messages": [{"role": "user", "content": "Say hello."}]});
    let messages = json!({"model": "gpt-4o", "max_tokens": 2000,
        "messages": [{"role": "user", "content": "Say hello."}]});
    let responses = json!({"model": "gpt-4o", "max_output_tokens": 2000, "input": "Say hello."});
    let streamed = |mut b: Value| {
        b["stream"] = json!(true);
        b
    };
    vec![
        Case {
            api: "chat_completions",
            path: "/v1/chat/completions",
            body: chat.clone(),
            stream: false,
            answer: "/choices/0/message/content",
        },
        Case {
            api: "chat_completions",
            path: "/v1/chat/completions",
            body: streamed(chat),
            stream: true,
            answer: "/choices/0/message/content",
        },
        Case {
            api: "messages",
            path: "/v1/messages",
            body: messages.clone(),
            stream: false,
            answer: "/content/0/text",
        },
        Case {
            api: "messages",
            path: "/v1/messages",
            body: streamed(messages),
            stream: true,
            answer: "/content/0/text",
        },
        Case {
            api: "responses",
            path: "/v1/responses",
            body: responses.clone(),
            stream: false,
            answer: "/output/0/content/0/text",
        },
        Case {
            api: "responses",
            path: "/v1/responses",
            body: streamed(responses),
            stream: true,
            answer: "/output/0/content/0/text",
        },
        Case {
            api: "embeddings",
            path: "/v1/embeddings",
            body: json!({"model": "text-embedding-3-small", "input": "Say hello."}),
            stream: false,
            answer: "/data/0/embedding/0",
        },
    ]
}

#[tokio::test]
async fn every_governance_feature_applies_to_every_api_json_and_stream() {
    let log = access_log();
    let gw = start().await;
    for case in cases() {
        let what = format!(
            "{} {}",
            case.api,
            if case.stream { "stream" } else { "JSON" }
        );
        let (key, key_id) = gw.key().await;
        let metric_before = gw.requests_metric(case.api);
        let r = gw.post(case.path, &key, &case.body).await;
        assert_eq!(r.status(), 200, "{what}");
        let rid = r
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let text = r.text().await.unwrap();
        if case.stream {
            assert!(text.contains("data: "), "{what}: an SSE body: {text}");
        }

        // Budget settled to the real cost (reservation released), streams at their end.
        let scope = format!("key:{key_id}");
        let spent = eventually(&format!("{what}: budget settle"), || {
            let (spent, reserved) = gw
                .state
                .governance
                .budgets
                .usage(&scope, anycloud_config::BudgetPeriod::Total);
            async move { (spent > 0.0 && reserved == 0.0).then_some(spent) }
        })
        .await;

        // The payload, captured and readable by the admin; a stream reassembled into
        // the API's non-streaming shape.
        let (_, cap) = eventually(&format!("{what}: capture"), || async {
            let got = gw.admin_get(&format!("/admin/v1/captures/{rid}")).await;
            (got.0 == 200).then_some(got)
        })
        .await;
        assert_eq!(cap["request"], case.body, "{what}: the request as sent");
        let answer = cap["response"].pointer(case.answer);
        assert!(
            answer.is_some_and(|a| a.as_str().map_or(a.is_number(), |s| !s.is_empty())),
            "{what}: the answer in the capture: {cap}"
        );
        if !case.stream {
            let client: Value = serde_json::from_str(&text).unwrap();
            if case.api == "embeddings" {
                // Vectors are f32: the capture holds them widened to f64.
                assert_eq!(cap["response"]["usage"], client["usage"], "{what}");
                assert_eq!(
                    cap["response"]["data"][0]["embedding"]
                        .as_array()
                        .map(Vec::len),
                    client["data"][0]["embedding"].as_array().map(Vec::len),
                    "{what}"
                );
            } else {
                assert_eq!(cap["response"], client, "{what}: what the client got");
            }
        }

        // One ledger row, with the real cost. `flush` returns once the record is committed
        // or, when a write failed (a timeout under load), spooled for retry: poll.
        let rows = eventually(&format!("{what}: ledger row"), || async {
            let rows = gw.ledger_rows(&rid).await;
            (!rows.is_empty()).then_some(rows)
        })
        .await;
        assert_eq!(rows.len(), 1, "{what}: {rows:?}");
        assert_eq!(rows[0].outcome, "ok", "{what}");
        assert!(rows[0].input_tokens > 0, "{what}");
        assert!(
            ((rows[0].cost_nanos as f64 / 1e9) - spent).abs() < 1e-9,
            "{what}: the budget settled what the ledger charged"
        );

        // An audit entry under ai.<api>.
        gw.state.governance.flush().await;
        let (s, audit) = gw
            .admin_get(&format!("/admin/v1/audit?action=ai.{}&limit=100", case.api))
            .await;
        assert_eq!(s, 200);
        let entry = audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["request_id"] == rid.as_str())
            .unwrap_or_else(|| panic!("{what}: no audit entry in {audit}"));
        assert_eq!(entry["status"], 200, "{what}");

        // A metric sample.
        assert_eq!(
            gw.requests_metric(case.api),
            metric_before + 1.0,
            "{what}: anycloud_requests_total"
        );

        // An access-log line with the tokens.
        let line = {
            let buf = log.lock().unwrap();
            String::from_utf8_lossy(&buf)
                .lines()
                .find(|l| l.contains(&format!("request_id={rid}")))
                .map(str::to_string)
        };
        let line = line.unwrap_or_else(|| panic!("{what}: no access-log line"));
        assert!(
            line.contains(&format!("api=\"{}\"", case.api))
                || line.contains(&format!("api={}", case.api)),
            "{what}: {line}"
        );
        assert!(line.contains("status=200"), "{what}: {line}");

        // Tokens per minute were charged at the estimate (prompt + 2000 output tokens)
        // and corrected to the real usage when the request ended: a second request
        // finds nearly the whole limit left minus its own estimate.
        if case.api != "embeddings" {
            let r = gw.post(case.path, &key, &case.body).await;
            assert_eq!(r.status(), 200, "{what}");
            let remaining: u64 = r
                .headers()
                .get("x-ratelimit-remaining-tokens")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what}: no x-ratelimit-remaining-tokens"));
            assert!(
                remaining > 7000,
                "{what}: {remaining} tokens left: the first request was not corrected"
            );
            let _ = r.text().await;
        }
    }
}

#[tokio::test]
async fn a_client_leaving_mid_stream_drops_the_upstream_and_leaves_an_estimated_partial_attempt() {
    let gw = start().await;
    // The emulator echoes the prompt a word per chunk: 40 words at 150 ms a chunk take
    // six seconds to finish.
    gw.emu.faults().set_chunk_delay(Duration::from_millis(150));
    let story = "word ".repeat(40);
    for (path, body) in [
        (
            "/v1/messages",
            json!({"model": "gpt-4o", "max_tokens": 200, "stream": true,
                "messages": [{"role": "user", "content": story}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "stream": true,
                "messages": [{"role": "user", "content": story}]}),
        ),
        (
            "/v1/responses",
            json!({"model": "gpt-4o", "stream": true, "input": story}),
        ),
    ] {
        let (key, _) = gw.key().await;
        let mut r = gw.post(path, &key, &body).await;
        let rid = r
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        // Read until some text has arrived, then go away.
        let mut seen = String::new();
        while !(seen.contains("text_delta")
            || seen.contains("\"content\":\"word")
            || seen.contains("output_text.delta"))
        {
            let chunk = r.chunk().await.unwrap().expect("the stream ended early");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        let left = std::time::Instant::now();
        drop(r);
        let row = eventually(&format!("{path}: the partial attempt"), || async {
            gw.ledger_rows(&rid).await.pop()
        })
        .await;
        // Recorded as soon as the client left: the rest of the upstream stream was
        // dropped, not read to its end.
        assert!(left.elapsed() < Duration::from_millis(2000), "{path}");
        assert_eq!(row.outcome, "ok", "{path}");
        assert!(row.usage_estimated, "{path}: {row:?}");
        assert!(row.input_tokens > 0, "{path}: {row:?}");
        assert!(
            row.output_tokens > 0,
            "{path}: estimated output tokens: {row:?}"
        );
    }
}
