//! Unit tests for the Bedrock translations (both directions).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use anycloud_types::{Message, SamplingParams, Tool};
use serde_json::json;

fn msg(role: Role, content: Vec<ContentBlock>) -> Message {
    Message {
        role,
        content,
        name: None,
    }
}

fn req(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "claude".into(),
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

fn weather() -> Tool {
    Tool {
        name: "get_weather".into(),
        description: Some("Weather by city".into()),
        parameters: json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
        strict: None,
    }
}

fn tool_history() -> Vec<Message> {
    vec![
        msg(Role::System, vec![ContentBlock::text("Be brief.")]),
        msg(Role::User, vec![ContentBlock::text("Weather in Oslo?")]),
        msg(
            Role::Assistant,
            vec![ContentBlock::ToolUse {
                id: "tooluse_1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Oslo\"}".into(),
            }],
        ),
        msg(
            Role::Tool,
            vec![ContentBlock::ToolResult {
                tool_use_id: "tooluse_1".into(),
                content: vec![ContentBlock::text("12 C")],
                is_error: false,
            }],
        ),
    ]
}

#[test]
fn system_roles_merging_and_tool_results_in_user_messages() {
    let mut messages = tool_history();
    messages.insert(
        1,
        msg(Role::Developer, vec![ContentBlock::text("No emojis.")]),
    );
    messages.push(msg(Role::User, vec![ContentBlock::text("And tomorrow?")]));
    let mut r = req(messages);
    r.tools = vec![weather()];
    r.params = SamplingParams {
        max_tokens: Some(64),
        temperature: Some(0.2),
        top_p: Some(0.9),
        stop: vec!["END".into()],
        top_k: Some(40),
        ..SamplingParams::default()
    };
    let w = serde_json::to_value(request_to_wire(&r).unwrap()).unwrap();
    assert_eq!(
        w,
        json!({
            "messages": [
                {"role": "user", "content": [{"text": "Weather in Oslo?"}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Oslo"}}}]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "12 C"}], "status": "success"}},
                    {"text": "And tomorrow?"}]}
            ],
            "system": [{"text": "Be brief."}, {"text": "No emojis."}],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather by city",
                    "inputSchema": {"json": {"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}}],
                "toolChoice": {"auto": {}}},
            "additionalModelRequestFields": {"top_k": 40}
        })
    );
}

#[test]
fn tool_choice_variants() {
    let choice = |c: Option<ToolChoice>, history: bool| {
        let mut r = req(if history {
            tool_history()
        } else {
            vec![msg(Role::User, vec![ContentBlock::text("hi")])]
        });
        r.tools = vec![weather()];
        r.tool_choice = c;
        serde_json::to_value(request_to_wire(&r).unwrap()).unwrap()
    };
    assert_eq!(
        choice(Some(ToolChoice::Required), false)["toolConfig"]["toolChoice"],
        json!({"any": {}})
    );
    assert_eq!(
        choice(Some(ToolChoice::Tool("get_weather".into())), false)["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "get_weather"}})
    );
    // none without tool history: no toolConfig at all.
    assert!(choice(Some(ToolChoice::None), false)
        .get("toolConfig")
        .is_none());
    // none with tool history: toolConfig kept (Converse demands it) but no toolChoice.
    let w = choice(Some(ToolChoice::None), true);
    assert_eq!(
        w["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    assert!(w["toolConfig"].get("toolChoice").is_none());
}

#[test]
fn tool_history_without_tools_declares_stubs() {
    let w = serde_json::to_value(request_to_wire(&req(tool_history())).unwrap()).unwrap();
    assert_eq!(
        w["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
}

#[test]
fn images_base64_ok_urls_refused() {
    let img = |source| {
        req(vec![msg(
            Role::User,
            vec![ContentBlock::Image {
                source,
                detail: None,
            }],
        )])
    };
    let w = request_to_wire(&img(ImageSource::from_url_or_data(
        "data:image/jpeg;base64,QUJD",
    )))
    .unwrap();
    assert_eq!(
        serde_json::to_value(&w.messages[0].content[0]).unwrap(),
        json!({"image": {"format": "jpeg", "source": {"bytes": "QUJD"}}})
    );
    let e = request_to_wire(&img(ImageSource::from_url_or_data("https://x/y.png"))).unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Unsupported);
    assert!(e.message.contains("cannot fetch image URLs"));
    let e = request_to_wire(&img(ImageSource::from_url_or_data(
        "data:image/tiff;base64,QUJD",
    )))
    .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
}

#[test]
fn response_text_tools_stop_reasons_and_cached_usage() {
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Oslo"}}}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 100, "outputTokens": 9, "totalTokens": 139,
                  "cacheReadInputTokens": 20, "cacheWriteInputTokens": 10},
        "metrics": {"latencyMs": 812}
    });
    let wire: wire::ConverseResponse = serde_json::from_value(body).unwrap();
    let r = response_from_wire(wire, "id1".into(), "m", 7).unwrap();
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.text().as_deref(), Some("Let me check."));
    assert_eq!(
        r.content[1],
        ContentBlock::ToolUse {
            id: "t1".into(),
            name: "get_weather".into(),
            arguments: "{\"city\":\"Oslo\"}".into()
        }
    );
    assert_eq!(r.usage.input_tokens, 130);
    assert_eq!(r.usage.cached_input_tokens, 20);
    assert_eq!(r.usage.cache_write_tokens, 10);
    assert_eq!(r.usage.output_tokens, 9);
    for (s, f) in [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("max_tokens", FinishReason::Length),
        ("guardrail_intervened", FinishReason::ContentFilter),
        ("content_filtered", FinishReason::ContentFilter),
        ("model_context_window_exceeded", FinishReason::Other),
    ] {
        assert_eq!(finish_reason(s), f, "{s}");
    }
}

#[test]
fn errors_are_classified_by_exception_name() {
    let e = error_from_response(
        429,
        Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        br#"{"message":"Too many requests, please wait before trying again."}"#,
    );
    assert_eq!((e.kind, e.status), (ProviderErrorKind::Upstream, Some(429)));
    assert!(e.is_retryable());
    assert!(e.message.contains("Too many requests"));
    let e = error_from_response(400, Some("ValidationException"), br#"{"Message":"bad"}"#);
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
    assert!(!e.is_retryable());
    for (name, status) in [
        ("ServiceUnavailableException", 503),
        ("ModelNotReadyException", 429),
        ("InternalServerException", 500),
        ("ModelTimeoutException", 408),
        ("AccessDeniedException", 403),
        ("ResourceNotFoundException", 404),
    ] {
        let e = error_from_response(status, Some(name), b"{}");
        assert_eq!(e.status, Some(status), "{name}");
        assert!(e.is_retryable(), "{name}");
    }
    let e = exception_error("modelStreamErrorException", None, "boom");
    assert!(e.is_retryable());
    let e = error_from_response(502, None, b"gateway");
    assert_eq!(e.status, Some(502));
}

#[test]
fn breakpoints_become_cache_points_after_their_block_for_models_that_cache() {
    use anycloud_types::{CacheAt, CacheBreakpoint, CacheTtl};
    let mut r = req(vec![
        msg(Role::System, vec![ContentBlock::text("rules")]),
        msg(
            Role::User,
            vec![ContentBlock::text("a"), ContentBlock::text("b")],
        ),
    ]);
    r.tools = vec![Tool {
        name: "t".into(),
        description: None,
        parameters: json!({"type": "object"}),
        strict: None,
    }];
    let mark = |at| CacheBreakpoint {
        at,
        ttl: CacheTtl::FiveMinutes,
    };
    r.cache.breakpoints = vec![
        mark(CacheAt::Tool(0)),
        mark(CacheAt::Block {
            message: 0,
            block: 0,
        }),
        mark(CacheAt::Block {
            message: 1,
            block: 0,
        }),
    ];
    let claude = "anthropic.claude-3-5-sonnet-20240620-v1:0";
    let w = serde_json::to_value(request_to_wire(&for_target(&r, claude)).unwrap()).unwrap();
    let point = json!({"cachePoint": {"type": "default"}});
    assert_eq!(w["toolConfig"]["tools"][1], point);
    assert_eq!(w["system"], json!([{"text": "rules"}, point]));
    assert_eq!(
        w["messages"][0]["content"],
        json!([{"text": "a"}, point, {"text": "b"}])
    );
    // Llama on Bedrock would reject a cachePoint: it gets none.
    let w = serde_json::to_value(
        request_to_wire(&for_target(&r, "meta.llama3-70b-instruct-v1:0")).unwrap(),
    )
    .unwrap();
    assert!(!w.to_string().contains("cachePoint"));
}
