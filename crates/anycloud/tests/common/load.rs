//! The chaos harness's load generator: bounded in count and time, aimed at 127.0.0.1 only,
//! and recording every response it got (status, request id, serving cloud, usage, latency)
//! so the run can be reconciled against the ledger (`anycloud ledger reconcile
//! --requests FILE` reads the JSON lines [`write_record`] writes).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One response as the client saw it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub request_id: String,
    /// `x-anycloud-cloud`: the cloud that served it.
    pub route: String,
    pub usage: Value,
    pub took: Duration,
    /// The start of the body of anything but a whole 200.
    pub error: String,
}

/// Sends `n` chat completions (every other one streamed) from `clients` connections to
/// `url`, giving up after `max_time`. A stream counts as 200 only when it ended with
/// `[DONE]`; a transport error is status 0.
pub async fn chat_load(
    url: &str,
    key: &str,
    n: usize,
    clients: usize,
    max_time: Duration,
) -> Vec<Answer> {
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:"),
        "load only ever goes to this machine"
    );
    let out = Arc::new(Mutex::new(Vec::with_capacity(n.min(100_000))));
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + max_time;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, key, out, next) = (url.to_string(), key.to_string(), out.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || Instant::now() > deadline {
                    break;
                }
                let a = one_chat(&http, &url, &key, i).await;
                out.lock().unwrap().push(a);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let v = out.lock().unwrap().clone();
    v
}

async fn one_chat(http: &reqwest::Client, url: &str, key: &str, i: usize) -> Answer {
    let stream = i.is_multiple_of(2);
    let mut body = json!({"model": "gpt-4o", "stream": stream, "max_tokens": 8,
        "messages": [{"role": "user", "content": format!("hello {i}")}]});
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    let started = Instant::now();
    let sent = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await;
    let r = match sent {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                status: 0,
                request_id: String::new(),
                route: String::new(),
                usage: Value::Null,
                took: started.elapsed(),
                error: e.to_string(),
            }
        }
    };
    let status = r.status().as_u16();
    let header = |h: &str| {
        r.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (request_id, route) = (header("x-request-id"), header("x-anycloud-cloud"));
    let text = r.text().await.unwrap_or_default();
    let whole = !stream || text.contains("[DONE]");
    let usage = if stream {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find_map(|v| v.get("usage").filter(|u| !u.is_null()).cloned())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("usage").cloned())
            .unwrap_or(Value::Null)
    };
    let status = if status == 200 && !whole { 0 } else { status };
    Answer {
        status,
        request_id,
        route,
        usage,
        took: started.elapsed(),
        error: if status == 200 {
            String::new()
        } else {
            text.chars().take(300).collect()
        },
    }
}

/// Writes the generator's record: one JSON object per response.
pub fn write_record(path: &Path, answers: &[Answer]) {
    let mut out = String::new();
    for a in answers {
        out.push_str(
            &json!({"request_id": a.request_id, "status": a.status, "route": a.route,
                    "usage": a.usage, "latency_ms": a.took.as_millis() as u64})
            .to_string(),
        );
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// The `q` quantile of the latencies (0 when empty).
pub fn quantile(answers: &[Answer], q: f64) -> Duration {
    let mut v: Vec<Duration> = answers.iter().map(|a| a.took).collect();
    v.sort();
    v.get(((v.len() as f64 - 1.0) * q).round().max(0.0) as usize)
        .copied()
        .unwrap_or_default()
}

/// The gateway config both chaos and soak runs use: one model on a `primary` and a
/// `secondary` OpenAI-compatible cloud, tenant `t`, SQLite at `dir/gw.db`. `store_extra`
/// and `tenant_extra` are TOML lines added to `[store]` and the tenant.
pub fn two_cloud_config(
    dir: &Path,
    primary: &str,
    secondary: &str,
    store_extra: &str,
    tenant_extra: &str,
) -> std::path::PathBuf {
    let deployment = |cloud: &str| {
        format!(
            "[[models.deployments]]\ncloud = \"{cloud}\"\ntarget = \"gpt-4o\"\n\
             capabilities = [\"chat\", \"stream\"]\n\
             price = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}\n"
        )
    };
    let cloud = |name: &str, url: &str| {
        format!(
            "[[clouds]]\nname = \"{name}\"\nprovider = \"openai_compatible\"\n\
             base_url = \"{url}\"\napi_key = \"emu-key\"\n"
        )
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"sqlite://{db}\"\n{store_extra}\n\
         {p}{s}[[models]]\nname = \"gpt-4o\"\n{dp}{ds}[[tenants]]\nname = \"t\"\n{tenant_extra}\n",
        db = dir.join("gw.db").display(),
        p = cloud("primary", primary),
        s = cloud("secondary", secondary),
        dp = deployment("primary"),
        ds = deployment("secondary"),
    );
    let path = dir.join("anycloud.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The kinds of request [`mixed_load`] sends in turn: every API, JSON and streamed, with
/// and without tools. `(api label, path)`.
pub const MIXED: [(&str, &str); 9] = [
    ("chat", "/v1/chat/completions"),
    ("chat_stream", "/v1/chat/completions"),
    ("chat_tools", "/v1/chat/completions"),
    ("chat_tools_stream", "/v1/chat/completions"),
    ("messages", "/v1/messages"),
    ("messages_stream", "/v1/messages"),
    ("responses", "/v1/responses"),
    ("responses_stream", "/v1/responses"),
    ("embeddings", "/v1/embeddings"),
];

/// The body of request `i` of [`mixed_load`] and the text a whole stream ends with.
fn mixed_body(i: usize) -> (Value, Option<&'static str>) {
    let tools = json!([{"type": "function", "function": {"name": "lookup",
        "description": "Looks a word up", "parameters": {"type": "object",
        "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]);
    let say = format!("hello {i}");
    let chat = json!({"model": "gpt-4o", "max_tokens": 16,
        "messages": [{"role": "user", "content": say}]});
    let mut b = match MIXED[i % MIXED.len()].0 {
        "chat" | "chat_stream" => chat,
        "chat_tools" | "chat_tools_stream" => {
            let mut c = chat;
            c["tools"] = tools;
            c
        }
        "messages" | "messages_stream" => json!({"model": "gpt-4o", "max_tokens": 16,
            "messages": [{"role": "user", "content": say}]}),
        "responses" | "responses_stream" => {
            json!({"model": "gpt-4o", "max_output_tokens": 16, "input": say})
        }
        _ => json!({"model": "text-embedding-3-small", "input": say}),
    };
    let kind = MIXED[i % MIXED.len()].0;
    let end = if kind.ends_with("_stream") {
        b["stream"] = json!(true);
        if kind.starts_with("chat") {
            b["stream_options"] = json!({"include_usage": true});
            Some("[DONE]")
        } else if kind.starts_with("messages") {
            Some("message_stop")
        } else {
            Some("response.completed")
        }
    } else {
        None
    };
    (b, end)
}

/// Like [`chat_load`], over every API in turn ([`MIXED`]); `Answer::route` holds the
/// kind of request (its label in [`MIXED`]) rather than the serving cloud.
pub async fn mixed_load(
    url: &str,
    key: &str,
    n: usize,
    clients: usize,
    max_time: Duration,
    first: usize,
) -> Vec<Answer> {
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "load only ever goes to this machine"
    );
    let out = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + max_time;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, key, out, next) = (url.to_string(), key.to_string(), out.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || Instant::now() > deadline {
                    break;
                }
                let i = i + first;
                let (body, end) = mixed_body(i);
                let started = Instant::now();
                let sent = http
                    .post(format!("{url}{}", MIXED[i % MIXED.len()].1))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await;
                let (status, request_id, text) = match sent {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let id = r
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        (status, id, r.text().await.unwrap_or_default())
                    }
                    Err(e) => (0, String::new(), e.to_string()),
                };
                let whole = end.is_none_or(|e| text.contains(e));
                let status = if status == 200 && !whole { 0 } else { status };
                out.lock().unwrap().push(Answer {
                    status,
                    request_id,
                    route: MIXED[i % MIXED.len()].0.to_string(),
                    usage: Value::Null,
                    took: started.elapsed(),
                    error: if status == 200 {
                        String::new()
                    } else {
                        text.chars().take(300).collect()
                    },
                });
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let v = out.lock().unwrap().clone();
    v
}

/// [`two_cloud_config`] for [`mixed_load`]: `gpt-4o` with tools on both clouds, and
/// `text-embedding-3-small` on both (the emulators must serve both models).
pub fn mixed_config(
    dir: &Path,
    primary: &str,
    secondary: &str,
    store_extra: &str,
    tenant_extra: &str,
) -> std::path::PathBuf {
    let path = two_cloud_config(dir, primary, secondary, store_extra, tenant_extra);
    let text = std::fs::read_to_string(&path).unwrap();
    let embed = |cloud: &str| {
        format!(
            "[[models.deployments]]\ncloud = \"{cloud}\"\ntarget = \"text-embedding-3-small\"\n\
             capabilities = [\"embeddings\"]\nprice = {{ input_per_mtok = 0.02, output_per_mtok = 0.0 }}\n"
        )
    };
    let text = text
        .replace(
            "capabilities = [\"chat\", \"stream\"]",
            "capabilities = [\"chat\", \"stream\", \"tools\"]",
        )
        .replace(
            "[[tenants]]",
            &format!(
                "[[models]]\nname = \"text-embedding-3-small\"\n{}{}[[tenants]]",
                embed("primary"),
                embed("secondary")
            ),
        );
    std::fs::write(&path, text).unwrap();
    path
}
