//! The `bedrock` provider against the SigV4-verifying Bedrock emulator: Converse,
//! ConverseStream (event-stream frames split across writes, usage from `metadata`),
//! tools incl. streamed tool input, images, model ids with `:`, credentials, throttling,
//! exception frames inside a 200 stream, validation errors, Titan embeddings.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use anycloud_providers::{build_provider, CallCtx, Provider, ProviderErrorKind};
use anycloud_types::{
    ContentBlock, EmbeddingInput, EmbeddingsRequest, FinishReason, ImageSource, Message,
    ProviderKind, Role, StreamEvent,
};
use common::*;
use serde_json::json;
use std::sync::Arc;

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const TITAN: &str = "amazon.titan-embed-text-v2:0";
const AKID: &str = "AKIDEMULATOR0001";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const REGION: &str = "eu-central-1";

async fn emulator_with(cfg: EmulatorConfig) -> EmulatorHandle {
    spawn_on_port(cfg.with_region(REGION), 0).await.unwrap()
}

async fn emulator() -> EmulatorHandle {
    emulator_with(EmulatorConfig::bedrock(
        "aws-eu",
        AKID,
        SECRET,
        vec![HAIKU.into(), "mistral.small".into(), TITAN.into()],
    ))
    .await
}

fn provider(h: &EmulatorHandle, secret: &str, token: Option<&str>) -> Arc<dyn Provider> {
    let mut c = json!({"name": "aws", "provider": "bedrock", "region": REGION,
        "base_url": h.base_url(), "access_key_id": AKID, "secret_access_key": secret});
    if let Some(t) = token {
        c["session_token"] = json!(t);
    }
    build_provider(&cloud(c)).unwrap()
}

fn ctx() -> CallCtx {
    CallCtx {
        request_id: "req-br".into(),
        traceparent: None,
    }
}

#[tokio::test]
async fn chat_signs_the_double_encoded_path_for_a_model_id_with_a_colon() {
    let h = emulator().await;
    let p = provider(&h, SECRET, None);
    assert_eq!(p.kind(), ProviderKind::Bedrock);
    let mut req = chat(vec![
        Message {
            role: Role::System,
            content: vec![ContentBlock::text("Be brief.")],
            name: None,
        },
        user("hello bedrock"),
    ]);
    req.params.max_tokens = Some(64);
    req.params.temperature = Some(0.5);
    let r = p.chat(HAIKU, &req, &ctx()).await.unwrap();
    assert_eq!(
        r.text().unwrap(),
        format!("Hello from aws-eu ({HAIKU}). You said: hello bedrock")
    );
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert!(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
    assert!(r.id.starts_with("bedrock-"), "{}", r.id);

    let rec = &h.requests()[0];
    assert_eq!(
        rec.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    let auth = rec.header("authorization").unwrap();
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={AKID}/")),
        "{auth}"
    );
    assert!(
        auth.contains(&format!("/{REGION}/bedrock/aws4_request")),
        "{auth}"
    );
    assert_eq!(rec.body["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        rec.body["inferenceConfig"],
        json!({"maxTokens": 64, "temperature": 0.5})
    );
    assert!(rec.header("x-amz-security-token").is_none());
}

#[tokio::test]
async fn stream_reports_text_and_usage_from_metadata() {
    let h = emulator().await;
    let p = provider(&h, SECRET, None);
    let (events, err) = drain(
        p.chat_stream(HAIKU, &chat(vec![user("stream me please")]), &ctx())
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        streamed_text(&events),
        format!("Hello from aws-eu ({HAIKU}). You said: stream me please")
    );
    assert!(matches!(events[0], StreamEvent::Start { .. }));
    let n = events.len();
    assert_eq!(
        events[n - 2],
        StreamEvent::Finish {
            reason: FinishReason::Stop
        }
    );
    let StreamEvent::Usage(u) = events[n - 1] else {
        panic!("usage last: {events:?}")
    };
    assert!(u.input_tokens > 0);
    assert_eq!(u.output_tokens, 9); // words in the reply
    assert_eq!(
        h.requests()[0].path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
}

#[tokio::test]
async fn tool_round_trip_with_streamed_tool_input() {
    let h = emulator().await;
    let p = provider(&h, SECRET, None);
    let mut req = chat(vec![user("weather in Oslo?")]);
    req.tools = vec![weather_tool()];
    let r = p.chat(HAIKU, &req, &ctx()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    let ContentBlock::ToolUse {
        id,
        name,
        arguments,
    } = r.content[0].clone()
    else {
        panic!("{r:?}")
    };
    assert_eq!(name, "get_weather");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&arguments).unwrap(),
        json!({"city": "Oslo"})
    );
    assert!(id.starts_with("tooluse_"));

    // Streamed: start, then the input in fragments that rejoin to the same JSON.
    let (events, err) = drain(p.chat_stream(HAIKU, &req, &ctx()).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert!(events.contains(&StreamEvent::ToolCallStart {
        index: 0,
        id: id.clone(),
        name: name.clone()
    }));
    let args: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments,
            } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert!(args.len() >= 2, "{events:?}");
    assert_eq!(args.concat(), arguments);
    assert!(events.contains(&StreamEvent::Finish {
        reason: FinishReason::ToolCalls
    }));

    // The result goes back as a toolResult in a user message; the emulator acknowledges it.
    let mut req2 = req.clone();
    req2.messages.push(Message {
        role: Role::Assistant,
        content: vec![r.content[0].clone()],
        name: None,
    });
    req2.messages.push(Message {
        role: Role::Tool,
        content: vec![ContentBlock::ToolResult {
            tool_use_id: id.clone(),
            content: vec![ContentBlock::text("12 C and cloudy")],
            is_error: false,
        }],
        name: None,
    });
    let r2 = p.chat(HAIKU, &req2, &ctx()).await.unwrap();
    assert_eq!(
        r2.text().unwrap(),
        "Tool result received from aws-eu: 12 C and cloudy"
    );
    let body = &h.requests()[2].body;
    assert_eq!(body["messages"][2]["role"], "user");
    assert_eq!(
        body["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        json!(id)
    );

    // tool_choice none with tool history: toolConfig kept, so Bedrock accepts the history.
    let mut req3 = req2.clone();
    req3.tool_choice = Some(anycloud_types::ToolChoice::None);
    let r3 = p.chat(HAIKU, &req3, &ctx()).await.unwrap();
    assert_eq!(r3.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn images_inline_work_and_urls_are_refused_before_sending() {
    let h = emulator().await;
    let p = provider(&h, SECRET, None);
    let img = |url: &str| {
        chat(vec![Message {
            role: Role::User,
            content: vec![
                ContentBlock::text("what is this?"),
                ContentBlock::Image {
                    source: ImageSource::from_url_or_data(url),
                    detail: None,
                },
            ],
            name: None,
        }])
    };
    let r = p
        .chat(HAIKU, &img("data:image/png;base64,iVBORw0KGgo="), &ctx())
        .await
        .unwrap();
    assert!(r.text().unwrap().ends_with("You said: what is this?"));
    assert_eq!(
        h.requests()[0].body["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
    let e = p
        .chat(HAIKU, &img("https://example.com/cat.png"), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Unsupported);
    assert!(e.message.contains("cannot fetch image URLs"));
    assert_eq!(h.request_count(), 1);
}

#[tokio::test]
async fn wrong_secret_is_rejected_by_the_emulator_and_is_retryable_elsewhere() {
    let h = emulator().await;
    let p = provider(&h, "not-the-secret", None);
    let e = p
        .chat(HAIKU, &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(403));
    assert!(
        e.message.contains("InvalidSignatureException"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("signature we calculated does not match"),
        "{}",
        e.message
    );
    assert!(e.is_retryable());
    assert!(!e.message.contains("not-the-secret"));
    // A model id without reserved characters is rejected just the same.
    let e = p
        .chat("mistral.small", &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(403));
}

#[tokio::test]
async fn session_token_is_sent_and_required() {
    let h = emulator_with(
        EmulatorConfig::bedrock("aws-eu", AKID, SECRET, vec![HAIKU.into()])
            .with_session_token("FwoGZXIvYXdzEXAMPLE"),
    )
    .await;
    let ok = provider(&h, SECRET, Some("FwoGZXIvYXdzEXAMPLE"));
    ok.chat(HAIKU, &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap();
    assert_eq!(
        h.requests()[0].header("x-amz-security-token"),
        Some("FwoGZXIvYXdzEXAMPLE")
    );
    let e = provider(&h, SECRET, None)
        .chat(HAIKU, &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(403));
    assert!(
        e.message.contains("UnrecognizedClientException"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn throttling_and_unavailability_are_retryable_upstream_errors() {
    let h = emulator().await;
    let p = provider(&h, SECRET, None);
    h.faults().fail_next(1, 429, None);
    let e = p
        .chat(HAIKU, &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.status), (ProviderErrorKind::Upstream, Some(429)));
    assert!(e.message.contains("ThrottlingException"), "{}", e.message);
    assert!(e.is_retryable());
    h.faults().fail_next(1, 503, None);
    let e = p
        .chat_stream(HAIKU, &chat(vec![user("hi")]), &ctx())
        .await
        .err()
        .unwrap();
    assert_eq!(e.status, Some(503));
    assert!(e.message.contains("ServiceUnavailableException"));
    assert!(e.is_retryable());
    // Unknown model: ResourceNotFoundException, fail over.
    let e = p
        .chat("anthropic.nope-v1:0", &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(404));
    assert!(e.is_retryable());
}

#[tokio::test]
async fn exception_frame_mid_stream_and_cut_stream_are_errors() {
    let h = emulator().await;
    let p = provider(&h, SECRET, None);
    h.faults().stream_error_after(3, "throttlingException");
    let (events, err) = drain(
        p.chat_stream(HAIKU, &chat(vec![user("one two three four")]), &ctx())
            .await
            .unwrap(),
    )
    .await;
    let err = err.expect("an error");
    assert_eq!(err.status, Some(429));
    assert!(
        err.message.contains("throttlingException"),
        "{}",
        err.message
    );
    assert!(err.is_retryable());
    assert!(!events
        .iter()
        .any(|e| matches!(e, StreamEvent::Finish { .. })));
    h.faults().reset();

    h.faults().cut_stream_after(4);
    let (_, err) = drain(
        p.chat_stream(HAIKU, &chat(vec![user("hi")]), &ctx())
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_some());
}

#[tokio::test]
async fn validation_errors_are_the_clients() {
    let h = emulator().await;
    let p = provider(&h, SECRET, None);
    let mut req = chat(vec![user("hi")]);
    req.tools = vec![anycloud_types::Tool {
        name: "get.weather".into(),
        ..weather_tool()
    }];
    let e = p.chat(HAIKU, &req, &ctx()).await.unwrap_err();
    assert_eq!(
        (e.kind, e.status),
        (ProviderErrorKind::InvalidRequest, Some(400))
    );
    assert!(e.message.contains("ValidationException"));
    assert!(e.message.contains("[a-zA-Z0-9_-]+"));
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn titan_embeddings_one_call_per_input() {
    let h = emulator().await;
    let p = provider(&h, SECRET, None);
    let req = EmbeddingsRequest {
        model: "embed".into(),
        inputs: vec![
            EmbeddingInput::Text("hello world".into()),
            EmbeddingInput::Text("second input here".into()),
        ],
        dimensions: Some(256),
        user: None,
    };
    let r = p.embed(TITAN, &req, &ctx()).await.unwrap();
    assert_eq!(r.vectors.len(), 2);
    assert_eq!(r.vectors[0].len(), 256);
    assert_ne!(r.vectors[0], r.vectors[1]);
    assert_eq!(r.usage.input_tokens, 5);
    let recs = h.requests();
    assert_eq!(recs.len(), 2);
    assert!(recs
        .iter()
        .all(|r| r.path == "/model/amazon.titan-embed-text-v2%3A0/invoke"));
    assert!(recs.iter().any(
        |r| r.body == json!({"inputText": "hello world", "dimensions": 256, "normalize": true})
    ));
}
