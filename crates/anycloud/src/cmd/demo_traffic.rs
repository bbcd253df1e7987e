//! The demo's steady trickle of traffic, so the dashboard is alive the
//! moment someone opens it: a mix of chat, streaming chat, `/v1/messages`
//! (plain and streamed) and embeddings from several tenants over several
//! models, through the real gateway over HTTP, with failures injected now
//! and then through the emulators' fault knobs (and a little latency per
//! cloud so the latency chart has something to tell apart). Now and then a streamed
//! answer from Anthropic is cut mid-answer by an in-band `overloaded_error`, and the
//! gateway continues it on Bedrock (the dashboard and `anycloud_stream_resumes_total`
//! show the resume).
//!
//! Bounded: one request at a time, a few per second, only to 127.0.0.1.

use anycloud_emulators::EmulatorHandle;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use std::time::Duration;

/// Pause between two requests of the trickle.
const PAUSE: Duration = Duration::from_millis(350);
/// Roughly how often a fault is injected into one emulated cloud.
const FAULT_EVERY: u32 = 40;
/// How often a streamed answer is interrupted mid-answer (and resumed elsewhere).
const INTERRUPT_EVERY: u32 = 25;

/// One kind of request the trickle sends.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Chat,
    ChatStream,
    Messages,
    MessagesStream,
    Embeddings,
}

/// (kind, model, tenant index) — tenants are the demo's keys, in order.
const MIX: [(Kind, &str, usize); 11] = [
    (Kind::Chat, "gpt-4o", 0),
    (Kind::Chat, "gpt-4o", 1),
    (Kind::ChatStream, "gpt-4o-mini", 2),
    (Kind::ChatStream, "gpt-4o", 0),
    (Kind::Messages, "claude-sonnet", 0),
    (Kind::MessagesStream, "claude-sonnet", 1),
    (Kind::Embeddings, "text-embedding-3-small", 2),
    (Kind::Chat, "gemini-flash", 1),
    (Kind::Chat, "llama-3.3-70b", 2),
    (Kind::ChatStream, "gemini-flash", 0),
    (Kind::Messages, "claude-vertex", 2),
];

const PROMPTS: [&str; 5] = [
    "Summarise our Q3 cloud spend in one line.",
    "Write a haiku about failover.",
    "What is the capital of Portugal?",
    "Translate 'good morning' into German.",
    "List three uses of embeddings.",
];

/// Gives each emulated cloud its own small, steady latency.
pub fn set_latencies(emulators: &[EmulatorHandle]) {
    for (i, e) in emulators.iter().enumerate() {
        e.faults()
            .set_latency(Duration::from_millis(15 + 20 * i as u64));
    }
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    kind: Kind,
    model: &str,
) -> Option<u16> {
    let prompt = PROMPTS
        .choose(&mut rand::thread_rng())
        .copied()
        .unwrap_or("Hello!");
    let (path, body): (&str, Value) = match kind {
        Kind::Chat | Kind::ChatStream => (
            "/v1/chat/completions",
            json!({"model": model, "stream": matches!(kind, Kind::ChatStream),
                   "messages": [{"role": "user", "content": prompt}], "max_tokens": 64}),
        ),
        Kind::Messages | Kind::MessagesStream => (
            "/v1/messages",
            json!({"model": model, "stream": matches!(kind, Kind::MessagesStream), "max_tokens": 64,
                   "messages": [{"role": "user", "content": prompt}]}),
        ),
        Kind::Embeddings => ("/v1/embeddings", json!({"model": model, "input": [prompt]})),
    };
    let resp = http
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    // Read streams to the end, as a client would.
    let _ = resp.bytes().await;
    Some(status)
}

/// Injects one failure: a few 503s, 429s or 500s in a row on a random cloud.
fn inject_fault(emulators: &[EmulatorHandle]) {
    let mut rng = rand::thread_rng();
    let Some(e) = emulators.choose(&mut rng) else {
        return;
    };
    let status = *[503u16, 429, 500].choose(&mut rng).unwrap_or(&503);
    e.faults().fail_next(rng.gen_range(1..=3), status, None);
}

/// One long streamed answer whose cloud (Anthropic) fails mid-answer: the gateway
/// continues it on Bedrock and the client reads one whole answer.
async fn interrupted_stream(
    http: &reqwest::Client,
    base: &str,
    keys: &[String],
    emulators: &[EmulatorHandle],
) {
    let Some(anthropic) = emulators
        .iter()
        .find(|e| e.config().cloud == anycloud_emulators::EmulatedCloud::Anthropic)
    else {
        return;
    };
    let Some(key) = keys.first() else { return };
    anthropic.faults().stream_error_after(8, "overloaded_error");
    let body = json!({"model": "claude-sonnet", "stream": true, "max_tokens": 256,
        "messages": [{"role": "user", "content": "story: the night the primary cloud went down"}]});
    let sent = http
        .post(format!("{base}/v1/messages"))
        .bearer_auth(key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await;
    if let Ok(resp) = sent {
        let _ = resp.bytes().await;
    }
    anthropic.faults().clear_stream_error();
}

/// Runs until the task is aborted: one request from [`MIX`] at a time.
pub async fn run(base: String, keys: Vec<String>, emulators: std::sync::Arc<Vec<EmulatorHandle>>) {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    else {
        return;
    };
    let mut n: u32 = 0;
    loop {
        let pick = MIX[rand::thread_rng().gen_range(0..MIX.len())];
        let (kind, model, tenant) = pick;
        if let Some(key) = keys.get(tenant % keys.len().max(1)) {
            if send(&http, &base, key, kind, model).await.is_none() {
                tracing::debug!("demo traffic: request failed to send");
            }
        }
        n = n.wrapping_add(1);
        if n.is_multiple_of(INTERRUPT_EVERY) {
            interrupted_stream(&http, &base, &keys, &emulators).await;
        }
        if n.is_multiple_of(FAULT_EVERY) {
            inject_fault(&emulators);
        }
        // The emulators record every request for tests; the demo has no use
        // for them, so memory stays flat however long it runs.
        if n.is_multiple_of(200) {
            emulators.iter().for_each(EmulatorHandle::clear_requests);
        }
        tokio::time::sleep(PAUSE).await;
    }
}
