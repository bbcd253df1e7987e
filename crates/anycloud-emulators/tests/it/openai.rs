//! OpenAI-compatible emulator: auth, validation, bodies, streaming, tools, embeddings.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::{client, openai_emu, parse_events, sse_data, user_chat, OAI_KEY};

async fn post(url: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut rb = client().post(url).json(body);
    if let Some(k) = key {
        rb = rb.bearer_auth(k);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn auth_is_required_and_key_not_echoed() {
    let emu = openai_emu().await;
    let url = format!("{}/chat/completions", emu.base_url());
    let body = user_chat("gpt-4o-mini", "hi");
    let (s, e) = post(&url, None, &body).await;
    assert_eq!(s, 401);
    assert_eq!(e["error"]["code"], "invalid_api_key");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["param"].is_null());
    let wrong = "sk-wrong-key-abcdefghijklmnop";
    let (s, e) = post(&url, Some(wrong), &body).await;
    assert_eq!(s, 401);
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("Incorrect API key provided"), "{msg}");
    assert!(!msg.contains(wrong), "full key echoed: {msg}");
    let (s, _) = post(&url, Some(OAI_KEY), &body).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn unknown_model_is_404() {
    let emu = openai_emu().await;
    let url = format!("{}/chat/completions", emu.base_url());
    let (s, e) = post(&url, Some(OAI_KEY), &user_chat("gpt-9", "hi")).await;
    assert_eq!(s, 404);
    assert_eq!(e["error"]["code"], "model_not_found");
    assert!(e["error"]["message"].as_str().unwrap().contains("gpt-9"));
}

#[tokio::test]
async fn validation_errors_name_the_param() {
    let emu = openai_emu().await;
    let url = format!("{}/chat/completions", emu.base_url());
    let m = "gpt-4o-mini";
    let cases: Vec<(Value, &str)> = vec![
        (json!({"model": m}), "messages"),
        (json!({"model": m, "messages": []}), "messages"),
        (
            json!({"model": m, "messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": m, "messages": [{"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "call_nope", "content": "r"}]}),
            "messages.[1].role",
        ),
        (
            json!({"model": m, "messages": [{"role": "user", "content": "x"}],
            "stream_options": {"include_usage": true}}),
            "stream_options",
        ),
        (
            json!({"model": m, "messages": [{"role": "user", "content": "x"}], "n": 2}),
            "n",
        ),
        (
            json!({"model": m, "messages": [{"role": "user", "content": "x"}], "temperature": 2.5}),
            "temperature",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
    ];
    for (body, param) in cases {
        let (s, e) = post(&url, Some(OAI_KEY), &body).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(e["error"]["param"], param, "{body} -> {e}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
    }
    // Unknown top-level fields are fine.
    let mut ok = user_chat(m, "x");
    ok["some_future_field"] = json!(true);
    ok["temperature"] = json!(2);
    assert_eq!(post(&url, Some(OAI_KEY), &ok).await.0, 200);
    // Malformed JSON and a wrong content type.
    let resp = client()
        .post(&url)
        .bearer_auth(OAI_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not parse the JSON body"));
    let resp = client()
        .post(&url)
        .bearer_auth(OAI_KEY)
        .header("content-type", "text/plain")
        .body(user_chat(m, "x").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn chat_non_stream_shape() {
    let emu = openai_emu().await;
    let url = format!("{}/chat/completions", emu.base_url());
    let body = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "What is up?"}]}]});
    let (s, r) = post(&url, Some(OAI_KEY), &body).await;
    assert_eq!(s, 200);
    assert!(r["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(r["object"], "chat.completion");
    assert!(r["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(r["model"], "gpt-4o-mini");
    assert!(r["system_fingerprint"].is_string());
    let c = &r["choices"][0];
    assert_eq!(c["index"], 0);
    assert_eq!(c["finish_reason"], "stop");
    assert!(c["logprobs"].is_null());
    assert_eq!(c["message"]["role"], "assistant");
    assert!(c["message"]["refusal"].is_null());
    assert!(c["message"].get("tool_calls").is_none());
    let text = "Hello from oai-test (gpt-4o-mini). You said: What is up?";
    assert_eq!(c["message"]["content"], text);
    let u = &r["usage"];
    // (4 + ceil(8/4)) + (4 + ceil(11/4)) = 6 + 7
    assert_eq!(u["prompt_tokens"], 13);
    assert_eq!(u["completion_tokens"], 9);
    assert_eq!(u["total_tokens"], 22);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 0);
    assert!(r.get("prompt_filter_results").is_none());
}

#[tokio::test]
async fn stream_sequence_with_usage_and_done() {
    let emu = openai_emu().await;
    let url = format!("{}/chat/completions", emu.base_url());
    let mut body = user_chat("gpt-4o-mini", "stream me");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = client()
        .post(&url)
        .bearer_auth(OAI_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(events.iter().filter(|e| *e == "[DONE]").count(), 1);
    let chunks = parse_events(&events);
    let id = chunks[0]["id"].clone();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id);
        assert_eq!(c["model"], "gpt-4o-mini");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 8);
    for c in rest {
        assert!(
            c["usage"].is_null() && c.get("usage").is_some(),
            "usage:null expected on {c}"
        );
    }
    let finish = rest.last().unwrap();
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let text: String = rest[1..rest.len() - 1]
        .iter()
        .map(|c| {
            assert!(c["choices"][0]["finish_reason"].is_null());
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        text,
        "Hello from oai-test (gpt-4o-mini). You said: stream me"
    );
    assert_eq!(rest.len() - 2, 8, "one chunk per word");

    // Without include_usage: no usage key at all, no usage chunk.
    body.as_object_mut().unwrap().remove("stream_options");
    let resp = client()
        .post(&url)
        .bearer_auth(OAI_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let events = sse_data(&resp.text().await.unwrap());
    let chunks = parse_events(&events);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "w",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
            "days": {"type": "integer"}, "verbose": {"type": "boolean"}},
            "required": ["city", "days"]}}},
        {"type": "function", "function": {"name": "other", "parameters": {"type": "object",
            "properties": {"flag": {"type": "boolean"}}}}}])
}

#[tokio::test]
async fn tool_call_round_trip() {
    let emu = openai_emu().await;
    let url = format!("{}/chat/completions", emu.base_url());
    let mut body = user_chat("gpt-4o-mini", "weather in Oslo?");
    body["tools"] = weather_tools();
    let (s, r) = post(&url, Some(OAI_KEY), &body).await;
    assert_eq!(s, 200);
    let c = &r["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls");
    assert!(c["message"]["content"].is_null());
    let call = &c["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Oslo", "days": 1}));
    let call_id = call["id"].as_str().unwrap().to_string();
    assert!(call_id.starts_with("call_"));
    let args_text = call["function"]["arguments"].as_str().unwrap().to_string();
    assert_eq!(
        r["usage"]["completion_tokens"].as_u64().unwrap(),
        args_text.len().div_ceil(4) as u64
    );

    // Same request again: same call id (deterministic).
    let (_, r2) = post(&url, Some(OAI_KEY), &body).await;
    assert_eq!(
        r2["choices"][0]["message"]["tool_calls"][0]["id"],
        call_id.as_str()
    );

    // Forced tool choice picks the named tool.
    let mut forced = body.clone();
    forced["tool_choice"] = json!({"type": "function", "function": {"name": "other"}});
    let (_, r3) = post(&url, Some(OAI_KEY), &forced).await;
    assert_eq!(
        r3["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "other"
    );
    assert_eq!(
        r3["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"flag\":true}"
    );
    // tool_choice none: text.
    let mut none = body.clone();
    none["tool_choice"] = json!("none");
    let (_, r4) = post(&url, Some(OAI_KEY), &none).await;
    assert_eq!(r4["choices"][0]["finish_reason"], "stop");

    // Streamed: first fragment has id/name, later ones only arguments.
    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let resp = client()
        .post(&url)
        .bearer_auth(OAI_KEY)
        .json(&stream)
        .send()
        .await
        .unwrap();
    let chunks = parse_events(&sse_data(&resp.text().await.unwrap()));
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["id"], call_id.as_str());
    assert_eq!(first["function"]["name"], "get_weather");
    assert_eq!(first["function"]["arguments"], "");
    let mut joined = String::new();
    for c in &chunks[1..chunks.len() - 1] {
        let tc = &c["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(tc["index"], 0);
        assert!(tc.get("id").is_none() && tc["function"].get("name").is_none());
        joined.push_str(tc["function"]["arguments"].as_str().unwrap());
    }
    assert_eq!(joined, args_text);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // Send the tool result back.
    let follow = json!({"model": "gpt-4o-mini", "tools": weather_tools(), "messages": [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": null, "tool_calls": [call.clone()]},
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"}]});
    let (s, r5) = post(&url, Some(OAI_KEY), &follow).await;
    assert_eq!(s, 200, "{r5}");
    assert_eq!(
        r5["choices"][0]["message"]["content"],
        "Tool result received from oai-test: sunny, 21C"
    );
    assert_eq!(r5["choices"][0]["finish_reason"], "stop");

    // An unanswered tool call is rejected.
    let mut bad = follow.clone();
    bad["messages"][2] = json!({"role": "user", "content": "and?"});
    assert_eq!(post(&url, Some(OAI_KEY), &bad).await.0, 400);
}

#[tokio::test]
async fn max_tokens_and_json_mode() {
    let emu = openai_emu().await;
    let url = format!("{}/chat/completions", emu.base_url());
    let mut body = user_chat("gpt-4o-mini", "long answer please");
    body["max_completion_tokens"] = json!(3);
    let (_, r) = post(&url, Some(OAI_KEY), &body).await;
    assert_eq!(r["choices"][0]["message"]["content"], "Hello from oai-test");
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    assert_eq!(r["usage"]["completion_tokens"], 3);

    let mut body = user_chat("gpt-4o-mini", "json please");
    body["response_format"] = json!({"type": "json_object"});
    let (_, r) = post(&url, Some(OAI_KEY), &body).await;
    let text = r["choices"][0]["message"]["content"].as_str().unwrap();
    let v: Value = serde_json::from_str(text).unwrap();
    assert_eq!(v["cloud"], "oai-test");
    assert!(v["answer"].as_str().unwrap().contains("json please"));
}

#[tokio::test]
async fn embeddings_float_and_base64_agree() {
    let emu = openai_emu().await;
    let url = format!("{}/embeddings", emu.base_url());
    let m = "text-embedding-3-small";
    let (s, f) = post(
        &url,
        Some(OAI_KEY),
        &json!({"model": m, "input": ["hello world", "bye"]}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(f["object"], "list");
    assert_eq!(f["model"], m);
    assert_eq!(f["data"].as_array().unwrap().len(), 2);
    assert_eq!(f["data"][1]["index"], 1);
    assert_eq!(f["usage"]["prompt_tokens"], 3 + 1);
    let v: Vec<f32> = f["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(v.len(), 16);
    let norm: f32 = v.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-4);

    let (_, b) = post(
        &url,
        Some(OAI_KEY),
        &json!({"model": m, "input": "hello world", "encoding_format": "base64"}),
    )
    .await;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, v);

    let (_, d) = post(
        &url,
        Some(OAI_KEY),
        &json!({"model": m, "input": [[1, 2, 3]], "dimensions": 64}),
    )
    .await;
    assert_eq!(d["data"][0]["embedding"].as_array().unwrap().len(), 64);
    assert_eq!(d["usage"]["prompt_tokens"], 3);

    for bad in [json!(""), json!([]), json!([1, "x"]), json!(5)] {
        let (s, e) = post(&url, Some(OAI_KEY), &json!({"model": m, "input": bad})).await;
        assert_eq!(s, 400, "{bad}");
        assert_eq!(e["error"]["param"], "input");
    }
    let (s, _) = post(&url, Some(OAI_KEY), &json!({"model": "nope", "input": "x"})).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn models_list() {
    let emu = openai_emu().await;
    let r: Value = client()
        .get(format!("{}/models", emu.base_url()))
        .bearer_auth(OAI_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["object"], "list");
    let ids: Vec<&str> = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["gpt-4o-mini", "text-embedding-3-small"]);
    let resp = client()
        .get(format!("{}/models", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .post(format!("{}/nothing", emu.base_url()))
        .bearer_auth(OAI_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
