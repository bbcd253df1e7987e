//! The `oci` provider against the OCI emulator: signed requests, on-demand and
//! dedicated serving modes, streams, OCI error shapes, embeddings — and the
//! emulator refusing a wrong key, a tampered body and a stale date.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{
    spawn_on_port, EmulatorConfig, EmulatorHandle, OCI_TEST_KEY_FINGERPRINT,
    OCI_TEST_PRIVATE_KEY_PEM,
};
use anycloud_providers::oci::auth::{now_http_date, OciSigner};
use anycloud_providers::{build_provider, CallCtx, Provider, ProviderErrorKind};
use anycloud_types::{EmbeddingInput, EmbeddingsRequest, FinishReason, ProviderKind, StreamEvent};
use common::*;
use serde_json::json;
use std::sync::Arc;

const TENANCY: &str = "ocid1.tenancy.oc1..aaaatenancy";
const USER: &str = "ocid1.user.oc1..aaaauser";
const COMPARTMENT: &str = "ocid1.compartment.oc1..aaaacomp";
const MODEL: &str = "meta.llama-3.3-70b-instruct";
const ENDPOINT: &str = "ocid1.generativeaiendpoint.oc1.eu-frankfurt-1.aaaaendpoint";
const EMBED: &str = "cohere.embed-english-v3.0";
const OTHER_KEY: &str = include_str!("data/oci_other_key_pkcs8.pem");

async fn emulator() -> EmulatorHandle {
    let cfg = EmulatorConfig::oci(
        "oci-eu",
        TENANCY,
        USER,
        OCI_TEST_KEY_FINGERPRINT,
        COMPARTMENT,
        vec![MODEL.into(), ENDPOINT.into(), EMBED.into()],
    );
    spawn_on_port(cfg, 0).await.unwrap()
}

/// Writes `pem` to a temp file and builds the provider with it.
fn provider_with(
    h: &EmulatorHandle,
    pem: &str,
    compartment: &str,
) -> (Arc<dyn Provider>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("oci_api_key.pem");
    std::fs::write(&key, pem).unwrap();
    let p = build_provider(&cloud(json!({"name": "oci-eu", "provider": "oci",
        "base_url": h.base_url(), "region": "eu-frankfurt-1",
        "tenancy": TENANCY, "user": USER, "fingerprint": OCI_TEST_KEY_FINGERPRINT,
        "key_file": key.to_str().unwrap(), "compartment_id": compartment})))
    .unwrap();
    (p, dir)
}

fn provider(h: &EmulatorHandle) -> (Arc<dyn Provider>, tempfile::TempDir) {
    provider_with(h, OCI_TEST_PRIVATE_KEY_PEM, COMPARTMENT)
}

fn ctx() -> CallCtx {
    CallCtx {
        request_id: "req-oci".into(),
        traceparent: None,
    }
}

#[tokio::test]
async fn on_demand_chat_is_signed_and_answered() {
    let h = emulator().await;
    let (p, _dir) = provider(&h);
    assert_eq!(p.kind(), ProviderKind::Oci);
    let mut req = chat(vec![user("hello oracle")]);
    req.params.max_tokens = Some(64);
    req.params.top_k = Some(5);
    let out = p.chat(MODEL, &req, &ctx()).await.unwrap();
    assert_eq!(
        out.text().unwrap(),
        format!("Hello from oci-eu ({MODEL}). You said: hello oracle")
    );
    assert_eq!(out.finish_reason, FinishReason::Stop);
    assert_eq!(out.model, MODEL);
    assert!(out.id.starts_with("req-oci/"), "{}", out.id);
    assert!(out.usage.input_tokens > 0);
    assert_eq!(out.usage.output_tokens, 8);

    let sent = &h.requests()[0];
    assert_eq!(sent.path, "/20231130/actions/chat");
    assert!(sent.header("authorization").unwrap().starts_with(&format!(
        "Signature version=\"1\",keyId=\"{TENANCY}/{USER}/{OCI_TEST_KEY_FINGERPRINT}\",algorithm=\"rsa-sha256\""
    )));
    assert_eq!(
        sent.body["servingMode"],
        json!({"servingType": "ON_DEMAND", "modelId": MODEL})
    );
    assert_eq!(sent.body["compartmentId"], COMPARTMENT);
    assert_eq!(sent.body["chatRequest"]["apiFormat"], "GENERIC");
    assert_eq!(sent.body["chatRequest"]["topK"], 5);
    assert_eq!(
        sent.body["chatRequest"]["messages"][0],
        json!({"role": "USER", "content": [{"type": "TEXT", "text": "hello oracle"}]})
    );
}

#[tokio::test]
async fn dedicated_endpoint_and_tool_round_trip() {
    let h = emulator().await;
    let (p, _dir) = provider(&h);
    let mut req = chat(vec![user("weather in Oslo?")]);
    req.tools = vec![weather_tool()];
    let out = p.chat(ENDPOINT, &req, &ctx()).await.unwrap();
    assert_eq!(
        h.requests()[0].body["servingMode"],
        json!({"servingType": "DEDICATED", "endpointId": ENDPOINT})
    );
    assert_eq!(out.finish_reason, FinishReason::ToolCalls);
    let anycloud_types::ContentBlock::ToolUse {
        id,
        name,
        arguments,
    } = &out.content[0]
    else {
        panic!("tool call expected: {:?}", out.content)
    };
    assert_eq!(
        (name.as_str(), arguments.as_str()),
        ("get_weather", "{\"city\":\"Oslo\"}")
    );

    // Send the result back: the emulator validates TOOL/toolCallId and answers.
    req.messages.push(anycloud_types::Message {
        role: anycloud_types::Role::Assistant,
        content: out.content.clone(),
        name: None,
    });
    req.messages.push(anycloud_types::Message {
        role: anycloud_types::Role::Tool,
        content: vec![anycloud_types::ContentBlock::ToolResult {
            tool_use_id: id.clone(),
            content: vec![anycloud_types::ContentBlock::text("12 C")],
            is_error: false,
        }],
        name: None,
    });
    let out = p.chat(ENDPOINT, &req, &ctx()).await.unwrap();
    assert_eq!(
        out.text().unwrap(),
        "Tool result received from oci-eu: 12 C"
    );
}

#[tokio::test]
async fn stream_text_finish_and_usage() {
    let h = emulator().await;
    let (p, _dir) = provider(&h);
    let mut req = chat(vec![user("stream please")]);
    req.stream = true;
    let (events, err) = drain(p.chat_stream(MODEL, &req, &ctx()).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert!(matches!(events[0], StreamEvent::Start { .. }));
    assert_eq!(
        streamed_text(&events),
        format!("Hello from oci-eu ({MODEL}). You said: stream please")
    );
    assert!(events.contains(&StreamEvent::Finish {
        reason: FinishReason::Stop
    }));
    let Some(StreamEvent::Usage(u)) = events.last() else {
        panic!("usage last: {events:?}")
    };
    assert_eq!(u.output_tokens, 8);
    let sent = &h.requests()[0];
    assert_eq!(sent.body["chatRequest"]["isStream"], true);
    assert_eq!(
        sent.body["chatRequest"]["streamOptions"]["isIncludeUsage"],
        true
    );
}

#[tokio::test]
async fn streamed_tool_call_arguments_are_reassembled() {
    let h = emulator().await;
    let (p, _dir) = provider(&h);
    let mut req = chat(vec![user("weather?")]);
    req.tools = vec![weather_tool()];
    let (events, err) = drain(p.chat_stream(MODEL, &req, &ctx()).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    let args: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments,
            } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(args, "{\"city\":\"Oslo\"}");
    let starts = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::ToolCallStart { .. }))
        .count();
    assert_eq!(starts, 1);
}

#[tokio::test]
async fn a_cut_stream_is_an_error_not_an_empty_success() {
    let h = emulator().await;
    h.faults().cut_stream_after(2);
    let (p, _dir) = provider(&h);
    let (events, err) = drain(
        p.chat_stream(MODEL, &chat(vec![user("a b c d")]), &ctx())
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_some(), "{events:?}");
    assert!(!events
        .iter()
        .any(|e| matches!(e, StreamEvent::Finish { .. })));
}

#[tokio::test]
async fn wrong_key_is_rejected_by_the_emulator_and_fails_over() {
    let h = emulator().await;
    let (p, _dir) = provider_with(&h, OTHER_KEY, COMPARTMENT);
    let e = p
        .chat(MODEL, &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(401));
    assert!(e.message.contains("NotAuthenticated"), "{}", e.message);
    assert!(
        e.message.contains("signature does not verify"),
        "{}",
        e.message
    );
    assert!(e.is_retryable(), "a cloud's bad credentials fail over");
}

/// Signs a request by hand (as the provider does) and lets the test alter it.
async fn raw_post(
    h: &EmulatorHandle,
    body: &str,
    sent_body: &str,
    date: &str,
) -> (u16, serde_json::Value) {
    let signer = OciSigner::from_pem(
        format!("{TENANCY}/{USER}/{OCI_TEST_KEY_FINGERPRINT}"),
        OCI_TEST_PRIVATE_KEY_PEM,
    )
    .unwrap();
    let host = h.addr().to_string();
    let s = signer.sign_post(
        &host,
        "/20231130/actions/chat",
        "application/json",
        body.as_bytes(),
        date,
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/20231130/actions/chat", h.base_url()))
        .header("date", s.date)
        .header("x-content-sha256", s.x_content_sha256)
        .header("content-type", "application/json")
        .header("authorization", s.authorization)
        .body(sent_body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert!(resp.headers().contains_key("opc-request-id"));
    (status, resp.json().await.unwrap())
}

fn body_json(text: &str) -> String {
    json!({"compartmentId": COMPARTMENT, "servingMode": {"servingType": "ON_DEMAND", "modelId": MODEL},
        "chatRequest": {"apiFormat": "GENERIC", "messages": [{"role": "USER", "content": [{"type": "TEXT", "text": text}]}]}})
    .to_string()
}

#[tokio::test]
async fn tampered_body_and_stale_date_are_rejected() {
    let h = emulator().await;
    let now = now_http_date();
    let good = body_json("hi");
    let (status, _) = raw_post(&h, &good, &good, &now).await;
    assert_eq!(status, 200, "the hand-signed control request must pass");

    // Same length, different content: the signed x-content-sha256 no longer matches.
    let (status, body) = raw_post(&h, &good, &body_json("ho"), &now).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "NotAuthenticated");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("x-content-sha256"));

    let stale =
        httpdate::fmt_http_date(std::time::SystemTime::now() - std::time::Duration::from_secs(600));
    let (status, body) = raw_post(&h, &good, &good, &stale).await;
    assert_eq!(status, 401);
    assert!(body["message"].as_str().unwrap().contains("5 minutes"));
}

#[tokio::test]
async fn throttling_is_retryable_and_invalid_input_is_the_clients() {
    let h = emulator().await;
    let (p, _dir) = provider(&h);
    h.faults().fail_next(1, 429, Some(3));
    let e = p
        .chat(MODEL, &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(429));
    assert!(e.message.contains("TooManyRequests"), "{}", e.message);
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(3)));
    assert!(e.is_retryable());

    h.faults().fail_next(1, 503, None);
    assert!(p
        .chat(MODEL, &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err()
        .is_retryable());

    // The emulator's own validation: an empty message list is InvalidParameter.
    let e = p.chat(MODEL, &chat(vec![]), &ctx()).await.unwrap_err();
    assert_eq!(e.status, Some(400));
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
    assert!(!e.is_retryable());
    assert!(e.message.contains("InvalidParameter"), "{}", e.message);
}

#[tokio::test]
async fn unknown_model_or_compartment_is_not_found_and_fails_over() {
    let h = emulator().await;
    let (p, _dir) = provider(&h);
    let e = p
        .chat("meta.no-such-model", &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(404));
    assert!(e.message.contains("NotAuthorizedOrNotFound"));
    assert!(e.is_retryable());
    let (p, _dir2) = provider_with(&h, OCI_TEST_PRIVATE_KEY_PEM, "ocid1.compartment.oc1..other");
    assert_eq!(
        p.chat(MODEL, &chat(vec![user("hi")]), &ctx())
            .await
            .unwrap_err()
            .status,
        Some(404)
    );
}

#[tokio::test]
async fn embeddings() {
    let h = emulator().await;
    let (p, _dir) = provider(&h);
    let req = EmbeddingsRequest {
        model: "public-embed".into(),
        inputs: vec![
            EmbeddingInput::Text("one".into()),
            EmbeddingInput::Text("two".into()),
        ],
        dimensions: None,
        user: None,
    };
    let out = p.embed(EMBED, &req, &ctx()).await.unwrap();
    assert_eq!(out.vectors.len(), 2);
    assert_eq!(out.vectors[0].len(), 1024);
    assert_ne!(out.vectors[0], out.vectors[1]);
    assert_eq!(out.model, EMBED);
    assert!(out.usage.input_tokens > 0);
    let sent = &h.requests()[0];
    assert_eq!(sent.path, "/20231130/actions/embedText");
    assert_eq!(sent.body["inputs"], json!(["one", "two"]));
    assert_eq!(sent.body["truncate"], "NONE");
}

#[tokio::test]
async fn bad_key_files_fail_at_build_time() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    std::fs::write(&key, "not a key").unwrap();
    let c = cloud(
        json!({"name": "o", "provider": "oci", "region": "us-chicago-1",
        "tenancy": TENANCY, "user": USER, "fingerprint": "f", "key_file": key.to_str().unwrap(),
        "compartment_id": COMPARTMENT}),
    );
    let e = build_provider(&c).unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Unsupported);
    assert!(
        e.message.contains("not a PEM RSA private key"),
        "{}",
        e.message
    );
    let mut c = c;
    c.key_file = Some(dir.path().join("missing.pem").to_str().unwrap().into());
    assert!(build_provider(&c)
        .unwrap_err()
        .message
        .contains("cannot read key_file"));
}
