//! Fault knobs, request recording, the control plane and shutdown.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{azure_emu, client, openai_emu, sse_data, user_chat, AZ_KEY, OAI_KEY};

fn chat_url(emu: &anycloud_emulators::EmulatorHandle) -> String {
    format!("{}/chat/completions", emu.base_url())
}

fn stream_body() -> Value {
    let mut b = user_chat("gpt-4o-mini", "one two three four");
    b["stream"] = json!(true);
    b
}

#[tokio::test]
async fn fail_next_with_retry_after() {
    let emu = openai_emu().await;
    emu.faults().fail_next(2, 429, Some(7));
    for _ in 0..2 {
        let resp = client()
            .post(chat_url(&emu))
            .bearer_auth(OAI_KEY)
            .json(&user_chat("gpt-4o-mini", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    }
    let resp = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&user_chat("gpt-4o-mini", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(emu.request_count(), 3);
}

#[tokio::test]
async fn azure_throttle_shape() {
    let emu = azure_emu().await;
    emu.faults().fail_next(1, 429, Some(6));
    let url = format!(
        "{}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        emu.base_url()
    );
    let resp = client()
        .post(&url)
        .header("api-key", AZ_KEY)
        .json(&user_chat("x", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "6");
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "429");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21"),
        "{msg}"
    );
    assert!(msg.contains("Please retry after 6 seconds"), "{msg}");
}

#[tokio::test]
async fn fail_rate_one_always_fails() {
    let emu = openai_emu().await;
    emu.faults().fail_rate(1.0, 503);
    for _ in 0..3 {
        let resp = client()
            .post(chat_url(&emu))
            .bearer_auth(OAI_KEY)
            .json(&user_chat("gpt-4o-mini", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
    }
    emu.faults().reset();
    let resp = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&user_chat("gpt-4o-mini", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn cut_stream_ends_without_done() {
    let emu = openai_emu().await;
    emu.faults().cut_stream_after(3);
    let mut resp = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&stream_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = Vec::new();
    let err = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert!(err.is_some(), "the stream must end with a transport error");
    let text = String::from_utf8(got).unwrap();
    let events = sse_data(&text);
    assert_eq!(events.len(), 3, "{text}");
    assert!(!text.contains("[DONE]"));
    assert!(!text.contains("finish_reason\":\"stop"));
}

#[tokio::test]
async fn chunk_delay_and_latency() {
    let emu = openai_emu().await;
    emu.faults().set_latency(Duration::from_millis(150));
    let t = Instant::now();
    let resp = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&user_chat("gpt-4o-mini", "x"))
        .send()
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(resp.status(), 200);
    emu.faults().set_latency(Duration::ZERO);
    emu.faults().set_chunk_delay(Duration::from_millis(20));
    let t = Instant::now();
    let resp = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&stream_body())
        .send()
        .await
        .unwrap();
    let header_time = t.elapsed();
    let events = sse_data(&resp.text().await.unwrap());
    // 1 role + 10 words + finish + [DONE] = 13 events, 12 gaps of 20 ms.
    assert_eq!(events.len(), 13);
    assert!(
        t.elapsed() >= Duration::from_millis(240),
        "{:?}",
        t.elapsed()
    );
    assert!(header_time < Duration::from_millis(200));
}

#[tokio::test]
async fn refuse_connections_gives_connection_error() {
    let emu = openai_emu().await;
    emu.faults().refuse_connections(true);
    let r = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&user_chat("gpt-4o-mini", "x"))
        .send()
        .await;
    assert!(r.is_err(), "expected a connection error, got {r:?}");
    // The control plane is still reachable and can switch it off.
    let base = format!("http://{}", emu.addr());
    let r = client()
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"refuse_connections": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&user_chat("gpt-4o-mini", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An already-open (pooled) connection is dropped too.
    let c = client();
    assert_eq!(
        c.post(chat_url(&emu))
            .bearer_auth(OAI_KEY)
            .json(&user_chat("gpt-4o-mini", "x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    emu.faults().refuse_connections(true);
    assert!(c
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&user_chat("gpt-4o-mini", "x"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn recording() {
    let emu = azure_emu().await;
    let url = format!(
        "{}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
        emu.base_url()
    );
    client()
        .post(&url)
        .header("api-key", AZ_KEY)
        .header("x-custom", "yes")
        .json(&user_chat("x", "record me"))
        .send()
        .await
        .unwrap();
    client()
        .get(format!("{}/_emulator/stats", emu.base_url()))
        .send()
        .await
        .unwrap();
    let reqs = emu.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(r.header("X-Custom"), Some("yes"));
    assert_eq!(r.header("api-key"), Some(AZ_KEY));
    assert_eq!(r.body["messages"][0]["content"], "record me");
    emu.clear_requests();
    assert_eq!(emu.request_count(), 0);
}

#[tokio::test]
async fn control_plane_json() {
    let emu = openai_emu().await;
    let base = format!("http://{}", emu.addr());
    let r = client()
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"fail_next": {"count": 1, "status": 503, "retry_after": 2}, "latency_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let resp = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&user_chat("gpt-4o-mini", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "2");
    let stats: Value = client()
        .get(format!("{base}/_emulator/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 1);
    let bad = client()
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"latency_ms": "slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let r = client()
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({"cut_stream_after": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut resp = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&stream_body())
        .send()
        .await
        .unwrap();
    let mut errored = false;
    loop {
        match resp.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                errored = true;
                break;
            }
        }
    }
    assert!(errored);
    let r = client()
        .post(format!("{base}/_emulator/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stats: Value = client()
        .get(format!("{base}/_emulator/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 0);
    let resp = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&stream_body())
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let emu = openai_emu().await;
    let other = emu.clone();
    assert_eq!(
        client()
            .post(chat_url(&emu))
            .bearer_auth(OAI_KEY)
            .json(&user_chat("gpt-4o-mini", "x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    other.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(emu.is_shut_down());
    let r = client()
        .post(chat_url(&emu))
        .bearer_auth(OAI_KEY)
        .json(&user_chat("gpt-4o-mini", "x"))
        .send()
        .await;
    assert!(r.is_err());
}
