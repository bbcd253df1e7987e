//! The client API through both an Azure and an OpenAI-compatible cloud.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::json;

fn sse_data(text: &str) -> Vec<serde_json::Value> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test]
async fn chat_reports_usage_and_the_public_model_name() {
    let gw = start().await;
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-anycloud-cloud"), "azure-us");
    assert_eq!(header(&r, "x-anycloud-route"), "azure-us:ok");
    assert!(header(&r, "x-request-id").starts_with("req_"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        v["usage"]["total_tokens"].as_u64().unwrap(),
        v["usage"]["prompt_tokens"].as_u64().unwrap()
            + v["usage"]["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn streaming_usage_only_when_asked() {
    let gw = start().await;
    for include in [false, true] {
        let mut body = hello("gpt-4o");
        body["stream"] = json!(true);
        if include {
            body["stream_options"] = json!({"include_usage": true});
        }
        let text = gw.chat(body).await.text().await.unwrap();
        let chunks = sse_data(&text);
        let with_usage: Vec<_> = chunks
            .iter()
            .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
            .collect();
        if include {
            assert_eq!(with_usage.len(), 1, "{text}");
            let last = chunks.last().unwrap();
            assert_eq!(last["choices"], json!([]));
            assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0);
            assert!(chunks[..chunks.len() - 1]
                .iter()
                .all(|c| c["usage"].is_null()));
        } else {
            assert!(with_usage.is_empty(), "{text}");
            assert!(chunks.iter().all(|c| c.get("usage").is_none()), "{text}");
        }
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(content.starts_with("Hello from azure-us"), "{content}");
        // Upstream was always asked for usage (metering needs it).
        let last_req = gw.azure.requests().last().cloned().unwrap();
        assert_eq!(last_req.body["stream_options"]["include_usage"], true);
    }
}

#[tokio::test]
async fn streamed_tool_calls_arrive_as_indexed_deltas() {
    let gw = start().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let text = gw
        .chat(json!({"model": "gpt-4o", "stream": true, "tools": tools,
            "messages": [{"role": "user", "content": "Weather in Oslo?"}]}))
        .await
        .text()
        .await
        .unwrap();
    let chunks = sse_data(&text);
    let mut name = String::new();
    let mut args = String::new();
    let mut id = String::new();
    for c in &chunks {
        if let Some(tc) = c["choices"][0]["delta"]["tool_calls"].as_array() {
            assert_eq!(tc[0]["index"], 0);
            if let Some(n) = tc[0]["function"]["name"].as_str() {
                name.push_str(n);
                id = tc[0]["id"].as_str().unwrap().to_string();
            }
            args.push_str(tc[0]["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(name, "get_weather");
    assert!(id.starts_with("call_"));
    let parsed: serde_json::Value = serde_json::from_str(&args).unwrap();
    assert_eq!(parsed["city"], "Oslo");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));

    // Round trip: the tool result goes back and the model answers in text.
    let r = gw
        .chat(json!({"model": "gpt-4o", "tools": tools, "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function",
                "function": {"name": "get_weather", "arguments": args}}]},
            {"role": "tool", "tool_call_id": id, "content": "sunny, 21C"}]}))
        .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("sunny, 21C"),
        "{v}"
    );
}

#[tokio::test]
async fn embeddings_float_and_base64_agree() {
    let gw = start().await;
    let key = gw.key.clone();
    let f: serde_json::Value = gw
        .post(
            "/v1/embeddings",
            Some(&key),
            json!({"model": "text-embedding-3-small", "input": ["a", "b"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(f["data"].as_array().unwrap().len(), 2);
    assert_eq!(f["model"], "text-embedding-3-small");
    let b: serde_json::Value = gw
        .post("/v1/embeddings", Some(&key),
            json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "base64"}))
        .await
        .json()
        .await
        .unwrap();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["data"][1]["embedding"].as_str().unwrap())
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let expected: Vec<f32> = f["data"][1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(floats, expected);
}

#[tokio::test]
async fn models_lists_what_the_tenant_may_use() {
    let gw = start().await;
    let list = |k: String| {
        let gw = &gw;
        async move {
            let v: serde_json::Value = gw
                .http
                .get(format!("{}/v1/models", gw.url))
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(gw.key.clone()).await,
        vec!["gpt-4o", "text-embedding-3-small", "other-model"]
    );
    assert_eq!(list(gw.narrow_key.clone()).await, vec!["other-model"]);
    let r = gw
        .http
        .get(format!("{}/v1/models/gpt-4o", gw.url))
        .bearer_auth(&gw.narrow_key)
        .send()
        .await
        .unwrap();
    error_of(r, 404).await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let gw = start().await;
    assert_eq!(
        gw.http
            .get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = gw
        .http
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    gw.azure.faults().fail_next(1, 503, None);
    assert_eq!(gw.chat(hello("gpt-4o")).await.status(), 200);
    let _ = gw.chat(hello("no-such-model")).await;
    let m = gw
        .http
        .get(format!("{}/metrics", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains(r#"anycloud_requests_total{api="chat_completions",cloud="local-openai",model="gpt-4o",status="200"} 1"#), "{m}");
    assert!(
        m.contains(
            r#"anycloud_upstream_attempts_total{cloud="azure-us",outcome="upstream_503"} 1"#
        ),
        "{m}"
    );
    assert!(m.contains(r#"model="unknown",status="404""#), "{m}");
    assert!(
        m.contains("anycloud_request_duration_seconds_bucket"),
        "{m}"
    );
}
