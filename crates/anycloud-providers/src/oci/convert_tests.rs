//! Unit tests for `oci::convert`: canonical ↔ OCI GENERIC JSON, both ways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use anycloud_types::{ImageSource, SamplingParams, Tool};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

fn msg(role: Role, content: Vec<ContentBlock>) -> Message {
    Message {
        role,
        content,
        name: None,
    }
}

fn req(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "public".into(),
        messages,
        tools: vec![],
        tool_choice: None,
        parallel_tool_calls: None,
        response_format: None,
        params: SamplingParams::default(),
        user: None,
        stream: false,
        cache: Default::default(),
    }
}

#[test]
fn full_request_to_wire() {
    let mut r = req(vec![
        msg(Role::System, vec![ContentBlock::text("Be brief.")]),
        msg(
            Role::User,
            vec![
                ContentBlock::text("Weather in Oslo?"),
                ContentBlock::Image {
                    source: ImageSource::from_url_or_data("data:image/png;base64,AAAA"),
                    detail: None,
                },
            ],
        ),
        msg(
            Role::Assistant,
            vec![ContentBlock::ToolUse {
                id: "c1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Oslo\"}".into(),
            }],
        ),
        msg(
            Role::Tool,
            vec![ContentBlock::ToolResult {
                tool_use_id: "c1".into(),
                content: vec![ContentBlock::text("12 C")],
                is_error: false,
            }],
        ),
    ]);
    r.tools = vec![Tool {
        name: "get_weather".into(),
        description: Some("w".into()),
        parameters: json!({"type": "object"}),
        strict: None,
    }];
    r.tool_choice = Some(ToolChoice::Tool("get_weather".into()));
    r.params = SamplingParams {
        temperature: Some(0.2),
        top_p: Some(0.9),
        max_tokens: Some(512),
        stop: vec!["END".into()],
        seed: Some(7),
        presence_penalty: Some(0.1),
        frequency_penalty: Some(0.3),
        top_k: Some(40),
    };
    let w = chat_to_wire(
        &r,
        "meta.llama-3.3-70b-instruct",
        "ocid1.compartment.oc1..c",
        false,
    )
    .unwrap();
    let v = serde_json::to_value(&w).unwrap();
    assert_eq!(
        v,
        json!({
            "compartmentId": "ocid1.compartment.oc1..c",
            "servingMode": {"servingType": "ON_DEMAND", "modelId": "meta.llama-3.3-70b-instruct"},
            "chatRequest": {
                "apiFormat": "GENERIC",
                "messages": [
                    {"role": "SYSTEM", "content": [{"type": "TEXT", "text": "Be brief."}]},
                    {"role": "USER", "content": [{"type": "TEXT", "text": "Weather in Oslo?"},
                        {"type": "IMAGE", "imageUrl": {"url": "data:image/png;base64,AAAA"}}]},
                    {"role": "ASSISTANT", "toolCalls": [{"id": "c1", "type": "FUNCTION",
                        "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}]},
                    {"role": "TOOL", "toolCallId": "c1", "content": [{"type": "TEXT", "text": "12 C"}]}
                ],
                "maxTokens": 512, "temperature": 0.2, "topP": 0.9, "topK": 40, "stop": ["END"],
                "frequencyPenalty": 0.3, "presencePenalty": 0.1, "seed": 7, "isStream": false,
                "tools": [{"type": "FUNCTION", "name": "get_weather", "description": "w",
                    "parameters": {"type": "object"}}],
                "toolChoice": {"type": "FUNCTION", "name": "get_weather"}
            }
        })
    );
}

#[test]
fn dedicated_endpoints_and_streaming_flags() {
    let r = req(vec![msg(Role::User, vec![ContentBlock::text("hi")])]);
    let w = chat_to_wire(
        &r,
        "ocid1.generativeaiendpoint.oc1.eu-frankfurt-1.abc",
        "c",
        true,
    )
    .unwrap();
    let v = serde_json::to_value(&w).unwrap();
    assert_eq!(
        v["servingMode"],
        json!({"servingType": "DEDICATED", "endpointId": "ocid1.generativeaiendpoint.oc1.eu-frankfurt-1.abc"})
    );
    assert_eq!(v["chatRequest"]["isStream"], true);
    assert_eq!(
        v["chatRequest"]["streamOptions"],
        json!({"isIncludeUsage": true})
    );
    // A model OCID is still on-demand.
    let w = chat_to_wire(&r, "ocid1.generativeaimodel.oc1..m", "c", false).unwrap();
    assert!(matches!(w.serving_mode, ServingMode::OnDemand { .. }));
}

#[test]
fn image_in_tool_result_is_unsupported() {
    let r = req(vec![msg(
        Role::Tool,
        vec![ContentBlock::ToolResult {
            tool_use_id: "c".into(),
            content: vec![ContentBlock::Image {
                source: ImageSource::from_url_or_data("https://x/y.png"),
                detail: None,
            }],
            is_error: false,
        }],
    )]);
    let e = chat_to_wire(&r, "m", "c", false).unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Unsupported);
    assert!(e.message.contains("text only"), "{}", e.message);
}

fn result(v: Value) -> ChatResult {
    serde_json::from_value(v).unwrap()
}

#[test]
fn response_from_wire_text_tools_usage() {
    let r = req(vec![msg(Role::User, vec![ContentBlock::text("hi")])]);
    let w = result(json!({"modelId": "meta.llama", "modelVersion": "1.0.0",
        "chatResponse": {"apiFormat": "GENERIC", "timeCreated": "2025-01-01T00:00:00Z",
        "choices": [{"index": 0, "finishReason": "stop",
            "message": {"role": "ASSISTANT", "content": [{"type": "TEXT", "text": "12 "}, {"type": "TEXT", "text": "C."}]}}],
        "usage": {"promptTokens": 30, "completionTokens": 5, "totalTokens": 35}}}));
    let out = response_from_wire(w, "rid".into(), "t", &r).unwrap();
    assert_eq!(out.id, "rid");
    assert_eq!(out.model, "meta.llama");
    assert_eq!(out.text().as_deref(), Some("12 C."));
    assert_eq!(out.finish_reason, FinishReason::Stop);
    assert_eq!((out.usage.input_tokens, out.usage.output_tokens), (30, 5));

    let w = result(
        json!({"chatResponse": {"choices": [{"finishReason": "TOOL_CALLS",
        "message": {"role": "ASSISTANT", "toolCalls": [{"id": "c9", "type": "FUNCTION",
            "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}]}}]}}),
    );
    let out = response_from_wire(w, "rid".into(), "target-x", &r).unwrap();
    assert_eq!(out.model, "target-x");
    assert_eq!(out.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        out.content,
        vec![ContentBlock::ToolUse {
            id: "c9".into(),
            name: "get_weather".into(),
            arguments: "{\"city\":\"Oslo\"}".into()
        }]
    );
    // No usage from the cloud: estimated, never zero.
    assert!(out.usage.input_tokens > 0 && out.usage.output_tokens > 0);

    let w = result(json!({"chatResponse": {"choices": []}}));
    assert_eq!(
        response_from_wire(w, "r".into(), "t", &r).unwrap_err().kind,
        ProviderErrorKind::Protocol
    );
}

#[test]
fn finish_reasons_in_any_casing() {
    assert_eq!(finish_reason("STOP"), FinishReason::Stop);
    assert_eq!(finish_reason("COMPLETE"), FinishReason::Stop);
    assert_eq!(finish_reason("LENGTH"), FinishReason::Length);
    assert_eq!(finish_reason("MAX_TOKENS"), FinishReason::Length);
    assert_eq!(finish_reason("tool_calls"), FinishReason::ToolCalls);
    assert_eq!(finish_reason("CONTENT_FILTER"), FinishReason::ContentFilter);
    assert_eq!(finish_reason("weird"), FinishReason::Other);
}

#[test]
fn embeddings_both_ways() {
    let r = EmbeddingsRequest {
        model: "e".into(),
        inputs: vec![EmbeddingInput::Text("hello world!".into())],
        dimensions: None,
        user: None,
    };
    let w = embed_to_wire(&r, "cohere.embed-english-v3.0", "c").unwrap();
    assert_eq!(
        serde_json::to_value(&w).unwrap(),
        json!({"compartmentId": "c", "servingMode": {"servingType": "ON_DEMAND",
            "modelId": "cohere.embed-english-v3.0"}, "inputs": ["hello world!"], "truncate": "NONE"})
    );
    let out = embed_from_wire(
        serde_json::from_value(
            json!({"id": "x", "embeddings": [[0.5, -0.5]], "modelId": "cohere.embed"}),
        )
        .unwrap(),
        "t",
        &r,
    )
    .unwrap();
    assert_eq!(out.vectors, vec![vec![0.5, -0.5]]);
    assert_eq!(out.model, "cohere.embed");
    assert_eq!(out.usage.input_tokens, 3);
    let mut bad = r.clone();
    bad.dimensions = Some(8);
    assert_eq!(
        embed_to_wire(&bad, "t", "c").unwrap_err().kind,
        ProviderErrorKind::Unsupported
    );
    bad.dimensions = None;
    bad.inputs = vec![EmbeddingInput::Tokens(vec![1, 2])];
    assert_eq!(
        embed_to_wire(&bad, "t", "c").unwrap_err().kind,
        ProviderErrorKind::Unsupported
    );
    let short = embed_from_wire(EmbedTextResult::default(), "t", &r).unwrap_err();
    assert_eq!(short.kind, ProviderErrorKind::Protocol);
}

#[test]
fn oci_errors_are_classified() {
    let mut h = HeaderMap::new();
    h.insert("opc-request-id", HeaderValue::from_static("ABC/123"));
    h.insert("retry-after", HeaderValue::from_static("2"));
    let e = error_from_response(
        429,
        &h,
        br#"{"code":"TooManyRequests","message":"Too many requests for the tenant"}"#,
    );
    assert_eq!(e.status, Some(429));
    assert!(e.is_retryable());
    assert_eq!(e.retry_after, Some(std::time::Duration::from_secs(2)));
    assert_eq!(
        e.message,
        "oci 429 TooManyRequests: Too many requests for the tenant (opc-request-id ABC/123)"
    );
    let e = error_from_response(
        400,
        &HeaderMap::new(),
        br#"{"code":"InvalidParameter","message":"bad"}"#,
    );
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
    assert!(!e.is_retryable());
    for s in [401, 404, 500, 503] {
        let e = error_from_response(s, &HeaderMap::new(), b"{}");
        assert!(e.is_retryable(), "{s}");
        assert_eq!(e.kind, ProviderErrorKind::Upstream);
    }
    assert_eq!(
        error_from_stream("InvalidParameter", "x").kind,
        ProviderErrorKind::InvalidRequest
    );
}
