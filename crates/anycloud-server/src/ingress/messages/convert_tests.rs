#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use super::*;
use anycloud_providers::anthropic::convert::usage_from_wire;
use serde_json::json;

fn ingress(v: serde_json::Value) -> Result<ChatRequest, InvalidRequest> {
    request_from_wire(serde_json::from_value(v).unwrap())
}

#[test]
fn ingress_parses_the_documented_request() {
    let r = ingress(json!({"model": "claude-sonnet", "max_tokens": 1024,
        "system": [{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
        "messages": [
          {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"},
             {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
          {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 C"}, {"type":"text","text":"thanks"}]}],
        "tools": [{"name": "get_weather", "description": "Weather by city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
        "temperature": 0.2, "top_k": 40, "stop_sequences": ["END"], "stream": true,
        "metadata": {"user_id": "u-1"}}))
    .unwrap();
    let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        vec![
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User
        ]
    );
    assert_eq!(
        r.messages[2].content[0],
        ContentBlock::ToolUse {
            id: "toolu_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Oslo"}"#.into(),
        }
    );
    assert!(matches!(
        &r.messages[3].content[0],
        ContentBlock::ToolResult { tool_use_id, content, is_error: false }
            if tool_use_id == "toolu_1" && content == &[ContentBlock::text("12 C")]
    ));
    assert_eq!(r.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
    assert_eq!(r.parallel_tool_calls, Some(false));
    assert_eq!(r.params.max_tokens, Some(1024));
    assert_eq!(r.params.top_k, Some(40));
    assert_eq!(r.user.as_deref(), Some("u-1"));
    assert!(r.stream);
    assert!(r.needs().contains(&anycloud_types::Capability::Vision));
}

#[test]
fn ingress_rejects_what_anthropic_rejects() {
    let base = || json!({"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]});
    let cases: Vec<(Box<dyn Fn(&mut serde_json::Value)>, &str)> = vec![
        (
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("max_tokens");
            }),
            "max_tokens",
        ),
        (Box::new(|v| v["messages"] = json!([])), "messages"),
        (Box::new(|v| v["temperature"] = json!(1.5)), "temperature"),
        (
            Box::new(|v| v["messages"][0]["role"] = json!("system")),
            "messages.0.role",
        ),
        (
            Box::new(|v| {
                v["tools"] = json!([{"name":"bad name","input_schema":{"type":"object"}}])
            }),
            "tools.0.name",
        ),
        (
            Box::new(|v| v["tools"] = json!([{"name":"f"}])),
            "tools.0.input_schema",
        ),
        (
            Box::new(|v| v["tool_choice"] = json!({"type":"sometimes"})),
            "tool_choice.type",
        ),
        (
            Box::new(|v| v["messages"][0]["content"] = json!([{"type":"document","source":{}}])),
            "messages.0.content.0",
        ),
    ];
    for (edit, param) in cases {
        let mut v = base();
        edit(&mut v);
        let e = ingress(v.clone()).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(param), "{v} → {e}");
    }
    assert!(ingress(base()).is_ok());
}

#[test]
fn response_to_wire_names_the_public_model_and_splits_usage() {
    let r = ChatResponse {
        id: "up".into(),
        model: "gpt-4o-prod".into(),
        created: 0,
        content: vec![
            ContentBlock::text("hi"),
            ContentBlock::ToolUse {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "not json".into(),
            },
        ],
        finish_reason: FinishReason::ToolCalls,
        usage: Usage {
            input_tokens: 20,
            output_tokens: 4,
            cached_input_tokens: 5,
            ..Usage::default()
        },
        system_fingerprint: None,
    };
    let v = serde_json::to_value(response_to_wire(&r, "claude-sonnet", "msg_1")).unwrap();
    assert_eq!(v["model"], "claude-sonnet");
    assert_eq!(v["type"], "message");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][1]["input"], json!({}));
    assert_eq!(v["usage"]["input_tokens"], 15);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 5);
}

#[test]
fn usage_splits_and_joins_again() {
    let u = Usage {
        input_tokens: 113,
        output_tokens: 5,
        cached_input_tokens: 100,
        cache_write_tokens: 3,
        cache_write_1h_tokens: 0,
        reasoning_tokens: 0,
    };
    let w = usage_to_wire(&u);
    assert_eq!(
        (
            w.input_tokens,
            w.cache_read_input_tokens,
            w.cache_creation_input_tokens
        ),
        (Some(10), Some(100), Some(3))
    );
    assert_eq!(usage_from_wire(&w), u);
    assert_eq!(stop_reason_to_wire(FinishReason::ToolCalls), "tool_use");
    assert_eq!(stop_reason_to_wire(FinishReason::Other), "end_turn");
}

#[test]
fn cache_control_survives_the_hop_at_the_same_places() {
    let cc = json!({"type": "ephemeral"});
    let hour = json!({"type": "ephemeral", "ttl": "1h"});
    let r = ingress(json!({
        "model": "m", "max_tokens": 10,
        "tools": [{"name": "a", "input_schema": {"type": "object"}, "cache_control": hour},
                  {"name": "b", "input_schema": {"type": "object"}}],
        "system": [{"type": "text", "text": "rules"},
                   {"type": "text", "text": "more rules", "cache_control": cc}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q1"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "a", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                {"type": "text", "text": "and?", "cache_control": cc}]}
        ]
    }))
    .unwrap();
    // Canonically: the tool result is its own message before the user text.
    assert_eq!(
        r.cache.breakpoints,
        vec![
            CacheBreakpoint {
                at: CacheAt::Tool(0),
                ttl: CacheTtl::OneHour
            },
            CacheBreakpoint {
                at: CacheAt::Block {
                    message: 0,
                    block: 1
                },
                ttl: CacheTtl::FiveMinutes
            },
            CacheBreakpoint {
                at: CacheAt::Block {
                    message: 4,
                    block: 0
                },
                ttl: CacheTtl::FiveMinutes
            },
        ]
    );
    let w = serde_json::to_value(
        anycloud_providers::anthropic::convert::request_to_wire(&r, Some("claude"), None).unwrap(),
    )
    .unwrap();
    assert_eq!(w["tools"][0]["cache_control"], hour);
    assert!(w["tools"][1].get("cache_control").is_none());
    // The system prompt goes out as blocks, the breakpoint on the second.
    assert_eq!(
        w["system"][1],
        json!({"type": "text", "text": "more rules", "cache_control": cc})
    );
    assert!(w["system"][0].get("cache_control").is_none());
    // The tool result and the text merge back into one user message; the mark stays on
    // the text.
    assert_eq!(w["messages"][2]["content"][1]["cache_control"], cc);
    assert!(w["messages"][2]["content"][0]
        .get("cache_control")
        .is_none());
    assert!(w["messages"][0]["content"][0]
        .get("cache_control")
        .is_none());
    // Without breakpoints nothing changes: the system prompt stays one string.
    let plain = ingress(json!({"model": "m", "max_tokens": 10, "system": "s",
        "messages": [{"role": "user", "content": "hi"}]}))
    .unwrap();
    assert!(plain.cache.breakpoints.is_empty());
    let w = serde_json::to_value(
        anycloud_providers::anthropic::convert::request_to_wire(&plain, Some("claude"), None)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(w["system"], "s");
}

#[test]
fn bad_cache_control_is_rejected_as_anthropic_does() {
    let base = |cc: serde_json::Value| {
        ingress(json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": cc}]}]}))
    };
    let e = base(json!({"type": "ephemeral", "ttl": "2h"})).unwrap_err();
    assert!(e.message.contains("'5m' or '1h'"), "{}", e.message);
    let e = base(json!({"type": "persistent"})).unwrap_err();
    assert!(e.message.contains("'ephemeral'"), "{}", e.message);
    let cc = json!({"type": "ephemeral"});
    let many: Vec<serde_json::Value> = (0..5)
        .map(|i| json!({"type": "text", "text": format!("p{i}"), "cache_control": cc}))
        .collect();
    let e = ingress(json!({"model": "m", "max_tokens": 10,
        "messages": [{"role": "user", "content": many}]}))
    .unwrap_err();
    assert!(e.message.contains("A maximum of 4 blocks"), "{}", e.message);
}
