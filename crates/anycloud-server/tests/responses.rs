//! The Responses API with stored state that survives a change of cloud.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{json, Value};

async fn create(gw: &Gateway, key: &str, body: Value) -> reqwest::Response {
    gw.post("/v1/responses", Some(key), body).await
}

async fn get(gw: &Gateway, key: &str, path: &str) -> reqwest::Response {
    gw.http
        .get(format!("{}{}", gw.url, path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn create_retrieve_list_and_delete() {
    let gw = start().await;
    let key = gw.key.clone();
    let r = create(
        &gw,
        &key,
        json!({"model": "gpt-4o", "input": "Hello!", "instructions": "Be brief.",
        "metadata": {"ticket": "42"}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-anycloud-cloud"), "azure-us");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["metadata"]["ticket"], "42");
    let text = v["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("Hello from azure-us"), "{text}");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    // The instructions reached the cloud as a system message.
    let sent = &gw.azure.requests()[0].body;
    assert_eq!(sent["messages"][0]["role"], "system");
    let id = v["id"].as_str().unwrap();

    let got: Value = get(&gw, &key, &format!("/v1/responses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got, v);
    let items: Value = get(&gw, &key, &format!("/v1/responses/{id}/input_items"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"][0]["content"], "Hello!");
    assert_eq!(items["has_more"], false);

    let d: Value = gw
        .http
        .delete(format!("{}/v1/responses/{id}", gw.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d, json!({"id": id, "object": "response", "deleted": true}));
    error_of(get(&gw, &key, &format!("/v1/responses/{id}")).await, 404).await;
}

#[tokio::test]
async fn another_tenants_key_gets_404() {
    let gw = start().await;
    let key = gw.key.clone();
    let v: Value = create(
        &gw,
        &key,
        json!({"model": "gpt-4o", "input": "secret plans"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = v["id"].as_str().unwrap();
    let narrow = gw.narrow_key.clone();
    for path in [
        format!("/v1/responses/{id}"),
        format!("/v1/responses/{id}/input_items"),
    ] {
        let e = error_of(get(&gw, &narrow, &path).await, 404).await;
        assert!(!e["message"].as_str().unwrap().contains("secret"), "{e}");
    }
    let r = gw
        .http
        .delete(format!("{}/v1/responses/{id}", gw.url))
        .bearer_auth(&narrow)
        .send()
        .await
        .unwrap();
    error_of(r, 404).await;
    let e = error_of(
        create(
            &gw,
            &narrow,
            json!({"model": "other-model", "input": "x", "previous_response_id": id}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(e["code"], "previous_response_not_found");
    // Still there for its owner.
    assert_eq!(
        get(&gw, &key, &format!("/v1/responses/{id}"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_conversation_survives_draining_the_first_cloud() {
    let gw = start().await;
    let key = gw.key.clone();
    let first: Value = create(
        &gw,
        &key,
        json!({"model": "gpt-4o", "input": "My name is Ada."}),
    )
    .await
    .json()
    .await
    .unwrap();
    let first_text = first["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(first_text.contains("azure-us"));
    assert!(gw.state.clouds.set_drained("azure-us", true));
    let r = create(
        &gw,
        &key,
        json!({"model": "gpt-4o", "input": "What is my name?",
        "previous_response_id": first["id"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-anycloud-cloud"), "local-openai");
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:declined(drained) local-openai:ok"
    );
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["previous_response_id"], first["id"]);
    // The second cloud received the whole history: turn one, its answer, turn two.
    assert_eq!(gw.azure.request_count(), 1);
    let sent = &gw.local.requests()[0].body["messages"];
    let texts: Vec<&str> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        texts,
        vec!["My name is Ada.", first_text.as_str(), "What is my name?"]
    );
    assert_eq!(sent[1]["role"], "assistant");
}

#[tokio::test]
async fn function_calls_and_their_outputs_round_trip() {
    let gw = start().await;
    let key = gw.key.clone();
    let tools = json!([{"type": "function", "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let v: Value = create(
        &gw,
        &key,
        json!({"model": "gpt-4o", "input": "Weather in Oslo?", "tools": tools}),
    )
    .await
    .json()
    .await
    .unwrap();
    let call = &v["output"][0];
    assert_eq!(call["type"], "function_call");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(call["name"], "get_weather");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["city"], "Oslo");
    let r = create(&gw, &key, json!({"model": "gpt-4o", "tools": tools, "previous_response_id": v["id"],
        "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]})).await;
    assert_eq!(r.status(), 200);
    let v2: Value = r.json().await.unwrap();
    assert!(
        v2["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("sunny"),
        "{v2}"
    );
}

#[tokio::test]
async fn streaming_emits_the_responses_event_sequence_and_stores_the_result() {
    let gw = start().await;
    let key = gw.key.clone();
    let r = create(
        &gw,
        &key,
        json!({"model": "gpt-4o", "input": "Hello there", "stream": true}),
    )
    .await;
    assert_eq!(header(&r, "content-type"), "text/event-stream");
    let text = r.text().await.unwrap();
    let mut types = Vec::new();
    let mut last = Value::Null;
    let mut deltas = String::new();
    for (n, ev) in text.split("\n\n").filter(|e| !e.is_empty()).enumerate() {
        let mut lines = ev.lines();
        let ty = lines.next().unwrap().strip_prefix("event: ").unwrap();
        let data: Value =
            serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], ty);
        assert_eq!(data["sequence_number"], n as u64);
        if ty == "response.output_text.delta" {
            deltas.push_str(data["delta"].as_str().unwrap());
        }
        if !types.contains(&ty.to_string()) {
            types.push(ty.to_string());
        }
        last = data;
    }
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert!(!text.contains("[DONE]"));
    let done = &last["response"];
    assert_eq!(done["status"], "completed");
    assert!(done["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        done["output"][0]["content"][0]["text"].as_str().unwrap(),
        deltas
    );
    let id = done["id"].as_str().unwrap();
    let stored: Value = get(&gw, &key, &format!("/v1/responses/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(&stored, done);
}

#[tokio::test]
async fn bad_requests_never_reach_a_cloud() {
    let gw = start().await;
    let key = gw.key.clone();
    let e = error_of(create(&gw, &key, json!({"model": "gpt-4o"})).await, 400).await;
    assert_eq!(e["param"], "input");
    let e = error_of(
        create(
            &gw,
            &key,
            json!({"model": "gpt-4o", "input": [{"type": "mystery"}]}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(e["param"], "input[0].type");
    let e = error_of(
        create(
            &gw,
            &key,
            json!({"model": "gpt-4o", "input": "x", "previous_response_id": "resp_nope"}),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(e["code"], "previous_response_not_found");
    assert_eq!(gw.upstream_requests(), 0);
}

#[tokio::test]
async fn stored_state_is_encrypted_at_rest_with_the_configured_key() {
    // 32 bytes of 0x07, base64.
    let key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let gw = start_with(Options {
        routing: format!("[capture]\nkey = \"{key}\"\nkey_id = \"k-test\"\n"),
        ..Options::default()
    })
    .await;
    let k = gw.key.clone();
    let secret = "my-very-distinctive-conversation-marker";
    let v: Value = create(&gw, &k, json!({"model": "gpt-4o", "input": secret}))
        .await
        .json()
        .await
        .unwrap();
    let id = v["id"].as_str().unwrap();
    // Readable through the API, for its tenant …
    let got: Value = get(&gw, &k, &format!("/v1/responses/{id}/input_items"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["data"][0]["content"], secret);
    // … and the second turn still replays it …
    let r = create(
        &gw,
        &k,
        json!({"model": "gpt-4o", "input": "again", "previous_response_id": id}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let sent = gw.azure.requests().last().cloned().unwrap().body;
    assert_eq!(sent["messages"][0]["content"], secret);
    // … but nowhere in the SQLite files in clear.
    for entry in std::fs::read_dir(gw.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains(secret),
            "plaintext conversation found at rest"
        );
    }
}
