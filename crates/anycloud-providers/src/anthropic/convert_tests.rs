#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use super::*;
use anycloud_types::Message;
use anycloud_types::SamplingParams;
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

fn tool_use(id: &str, args: &str) -> ContentBlock {
    ContentBlock::ToolUse {
        id: id.into(),
        name: "get_weather".into(),
        arguments: args.into(),
    }
}

fn tool_result(id: &str, text: &str) -> ContentBlock {
    ContentBlock::ToolResult {
        tool_use_id: id.into(),
        content: vec![ContentBlock::text(text)],
        is_error: false,
    }
}

#[test]
fn egress_lifts_system_merges_tool_results_and_defaults_max_tokens() {
    let mut r = req(vec![
        msg(Role::System, vec![ContentBlock::text("Be brief.")]),
        msg(Role::Developer, vec![ContentBlock::text("Metric units.")]),
        msg(Role::User, vec![ContentBlock::text("Weather?")]),
        msg(
            Role::Assistant,
            vec![tool_use("t1", r#"{"city":"Oslo"}"#), tool_use("t2", "")],
        ),
        msg(Role::Tool, vec![tool_result("t1", "12 C")]),
        msg(Role::Tool, vec![tool_result("t2", "rain")]),
    ]);
    r.user = Some("u-1".into());
    r.params.stop = vec!["END".into()];
    r.tool_choice = Some(ToolChoice::Required);
    r.parallel_tool_calls = Some(false);
    let w = request_to_wire(&r, Some("claude-x"), None).unwrap();
    let v = serde_json::to_value(&w).unwrap();
    assert_eq!(v["model"], "claude-x");
    assert!(v.get("anthropic_version").is_none());
    assert_eq!(v["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(v["system"], "Be brief.\n\nMetric units.");
    assert_eq!(v["metadata"]["user_id"], "u-1");
    assert_eq!(v["stop_sequences"], json!(["END"]));
    assert_eq!(
        v["tool_choice"],
        json!({"type":"any","disable_parallel_tool_use":true})
    );
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{v}");
    assert_eq!(msgs[1]["content"][0]["input"], json!({"city":"Oslo"}));
    assert_eq!(msgs[1]["content"][1]["input"], json!({}));
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"].as_array().unwrap().len(), 2);
    assert_eq!(msgs[2]["content"][1]["tool_use_id"], "t2");
    assert_eq!(msgs[2]["content"][1]["content"][0]["text"], "rain");
}

#[test]
fn egress_vertex_variant_has_no_model_and_a_body_version() {
    let r = req(vec![msg(Role::User, vec![ContentBlock::text("hi")])]);
    let v = serde_json::to_value(request_to_wire(&r, None, Some("vertex-2023-10-16")).unwrap())
        .unwrap();
    assert!(v.get("model").is_none());
    assert_eq!(v["anthropic_version"], "vertex-2023-10-16");
}

#[test]
fn egress_rejects_bad_arguments_and_json_schema() {
    let r = req(vec![
        msg(Role::User, vec![ContentBlock::text("hi")]),
        msg(Role::Assistant, vec![tool_use("t1", "[1,2]")]),
    ]);
    let e = request_to_wire(&r, Some("m"), None).unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
    let mut r = req(vec![msg(Role::User, vec![ContentBlock::text("hi")])]);
    r.response_format = Some(ResponseFormat::JsonSchema {
        name: "x".into(),
        schema: json!({}),
        strict: None,
        description: None,
    });
    assert_eq!(
        request_to_wire(&r, Some("m"), None).unwrap_err().kind,
        ProviderErrorKind::Unsupported
    );
}

#[test]
fn egress_images_both_sources() {
    let r = req(vec![msg(
        Role::User,
        vec![
            ContentBlock::Image {
                source: ImageSource::from_url_or_data("data:image/png;base64,AAAA"),
                detail: None,
            },
            ContentBlock::Image {
                source: ImageSource::from_url_or_data("https://x/y.png"),
                detail: None,
            },
        ],
    )]);
    let v = serde_json::to_value(request_to_wire(&r, Some("m"), None).unwrap()).unwrap();
    assert_eq!(
        v["messages"][0]["content"][0]["source"],
        json!({"type":"base64","media_type":"image/png","data":"AAAA"})
    );
    assert_eq!(
        v["messages"][0]["content"][1]["source"],
        json!({"type":"url","url":"https://x/y.png"})
    );
}

#[test]
fn response_usage_adds_cache_tokens_and_maps_stop_reasons() {
    let w: MessagesResponse = serde_json::from_value(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type":"thinking","thinking":"hmm","signature":"s"},
                    {"type":"text","text":"Let me check."},
                    {"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5,
                  "cache_creation_input_tokens": 3, "cache_read_input_tokens": 100}}))
    .unwrap();
    let r = response_from_wire(w).unwrap();
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.usage.input_tokens, 113);
    assert_eq!(r.usage.cached_input_tokens, 100);
    assert_eq!(r.usage.cache_write_tokens, 3);
    assert_eq!(r.content.len(), 2);
    assert_eq!(r.content[1], tool_use_named("toolu_1", "f", r#"{"a":1}"#));
    for (s, f) in [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("max_tokens", FinishReason::Length),
        ("refusal", FinishReason::ContentFilter),
    ] {
        assert_eq!(stop_reason_from_wire(Some(s)), f);
    }
}

fn tool_use_named(id: &str, name: &str, args: &str) -> ContentBlock {
    ContentBlock::ToolUse {
        id: id.into(),
        name: name.into(),
        arguments: args.into(),
    }
}
