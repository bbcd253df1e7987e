#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use serde_json::{json, Value};

#[test]
fn anthropic_style_tool_results_in_a_user_message_become_tool_messages_first() {
    let m = Message {
        role: Role::User,
        content: vec![
            ContentBlock::text("and now?"),
            ContentBlock::ToolResult {
                tool_use_id: "t1".into(),
                content: vec![ContentBlock::text("r1")],
                is_error: false,
            },
        ],
        name: None,
    };
    let out = message_to_wire(&m);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].role, "tool");
    assert_eq!(out[0].tool_call_id.as_deref(), Some("t1"));
    assert_eq!(out[1].role, "user");
    assert!(matches!(&out[1].content, Some(MessageContent::Text(t)) if t == "and now?"));
}

fn wire_response(v: Value) -> ChatCompletionResponse {
    serde_json::from_value(v).unwrap()
}

#[test]
fn response_from_wire_text_tools_finish_usage() {
    let r = response_from_wire(wire_response(json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1735689600,
        "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": "Let me check.", "refusal": null,
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
        "usage": {"prompt_tokens": 52, "completion_tokens": 17, "total_tokens": 69,
            "prompt_tokens_details": {"cached_tokens": 12, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 5, "audio_tokens": 0}}
    })))
    .unwrap();
    assert_eq!(r.id, "chatcmpl-abc");
    assert_eq!(r.model, "gpt-4o-2024-08-06");
    assert_eq!(r.created, 1735689600);
    assert_eq!(r.system_fingerprint.as_deref(), Some("fp_1"));
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        r.content,
        vec![
            ContentBlock::text("Let me check."),
            ContentBlock::ToolUse {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Oslo\"}".into()
            }
        ]
    );
    assert_eq!(
        r.usage,
        Usage {
            input_tokens: 52,
            output_tokens: 17,
            cached_input_tokens: 12,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: 5
        }
    );
}

#[test]
fn response_from_wire_edge_cases() {
    let no_choices =
        response_from_wire(wire_response(json!({"id": "x", "choices": []}))).unwrap_err();
    assert_eq!(no_choices.kind, ProviderErrorKind::Protocol);

    let filtered = response_from_wire(wire_response(
        json!({"choices": [{"finish_reason": "content_filter",
        "message": {"role": "assistant", "content": null}}]}),
    ))
    .unwrap();
    assert_eq!(filtered.finish_reason, FinishReason::ContentFilter);
    assert!(filtered.content.is_empty());
    assert_eq!(filtered.usage, Usage::default());

    let refusal = response_from_wire(wire_response(json!({"choices": [{"finish_reason": "stop",
        "message": {"role": "assistant", "content": null, "refusal": "I can't."}}]})))
    .unwrap();
    assert_eq!(refusal.text().as_deref(), Some("I can't."));
}

#[test]
fn usage_without_details_reads_as_zero() {
    let bare: UsageWire =
        serde_json::from_value(json!({"prompt_tokens": 3, "completion_tokens": 4})).unwrap();
    assert_eq!(
        usage_from_wire(&bare),
        Usage {
            input_tokens: 3,
            output_tokens: 4,
            ..Usage::default()
        }
    );
}
