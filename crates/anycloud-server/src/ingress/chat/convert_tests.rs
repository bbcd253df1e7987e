#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use anycloud_providers::openai::convert::{
    request_to_wire, response_from_wire, usage_from_wire, MaxTokensField,
};
use anycloud_types::FinishReason;
use serde_json::{json, Value};

fn wire(v: Value) -> ChatCompletionRequest {
    serde_json::from_value(v).unwrap()
}

fn parse(v: Value) -> Result<ChatRequest, InvalidRequest> {
    request_from_wire(wire(v))
}

fn param_of(v: Value) -> Option<String> {
    parse(v).unwrap_err().param
}

fn full_request() -> Value {
    json!({
        "model": "public-gpt",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "really"},
            {"role": "user", "name": "ann", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"a\":1}"}},
                {"id": "call_2", "type": "function", "function": {"name": "peek", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "grey"}]},
            {"role": "assistant", "content": "A grey cat."},
            {"role": "user", "content": "thanks"}
        ],
        "tools": [{"type": "function", "function": {"name": "look", "description": "d",
                   "parameters": {"type": "object"}, "strict": true}}],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "parallel_tool_calls": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}, "strict": true}},
        "temperature": 0.5, "top_p": 0.9, "max_completion_tokens": 100,
        "stop": ["\n\n", "END"], "seed": 7, "presence_penalty": 0.1, "frequency_penalty": -0.1,
        "n": 1, "user": "u-1", "stream": true, "stream_options": {"include_usage": false}
    })
}

#[test]
fn request_from_wire_keeps_everything() {
    let r = parse(full_request()).unwrap();
    assert_eq!(r.model, "public-gpt");
    assert_eq!(r.messages.len(), 8);
    assert_eq!(r.messages[0].role, Role::System);
    assert_eq!(r.messages[1].role, Role::Developer);
    let user = &r.messages[2];
    assert_eq!(user.name.as_deref(), Some("ann"));
    assert_eq!(
        user.content[1],
        ContentBlock::Image {
            source: ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "AAAA".into()
            },
            detail: Some("low".into())
        }
    );
    assert_eq!(
        r.messages[3].content,
        vec![
            ContentBlock::ToolUse {
                id: "call_1".into(),
                name: "look".into(),
                arguments: "{\"a\":1}".into()
            },
            ContentBlock::ToolUse {
                id: "call_2".into(),
                name: "peek".into(),
                arguments: "{}".into()
            },
        ]
    );
    // Consecutive tool messages: one Tool message each, one result block each.
    for (m, (id, text)) in r.messages[4..6]
        .iter()
        .zip([("call_1", "a cat"), ("call_2", "grey")])
    {
        assert_eq!(m.role, Role::Tool);
        assert_eq!(
            m.content,
            vec![ContentBlock::ToolResult {
                tool_use_id: id.into(),
                content: vec![ContentBlock::text(text)],
                is_error: false
            }]
        );
    }
    assert_eq!(r.tool_choice, Some(ToolChoice::Tool("look".into())));
    assert_eq!(r.tools[0].strict, Some(true));
    assert_eq!(r.parallel_tool_calls, Some(false));
    assert!(
        matches!(r.response_format, Some(ResponseFormat::JsonSchema { ref name, .. }) if name == "s")
    );
    assert_eq!(r.params.max_tokens, Some(100));
    assert_eq!(r.params.stop, vec!["\n\n".to_string(), "END".into()]);
    assert_eq!(r.params.seed, Some(7));
    assert_eq!(r.user.as_deref(), Some("u-1"));
    assert!(r.stream);
}

#[test]
fn request_round_trips_through_the_wire() {
    let r = parse(full_request()).unwrap();
    let w = request_to_wire(&r, "gpt-4o-2024-08-06", MaxTokensField::MaxCompletionTokens);
    assert_eq!(w.model, "gpt-4o-2024-08-06");
    assert_eq!(w.max_completion_tokens, Some(100));
    assert_eq!(w.max_tokens, None);
    assert_eq!(w.stream_options.as_ref().unwrap().include_usage, Some(true));
    let mut back = request_from_wire(w).unwrap();
    back.model = r.model.clone();
    assert_eq!(back, r);

    let w = request_to_wire(&r, "t", MaxTokensField::MaxTokens);
    assert_eq!((w.max_tokens, w.max_completion_tokens), (Some(100), None));
}

#[test]
fn request_to_wire_shapes() {
    let mut r = parse(full_request()).unwrap();
    r.stream = false;
    let w = serde_json::to_value(request_to_wire(&r, "t", MaxTokensField::MaxTokens)).unwrap();
    assert!(w.get("stream").is_none());
    assert!(w.get("stream_options").is_none());
    assert_eq!(
        w["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    // Assistant with only tool calls: content null, calls as sent.
    assert_eq!(w["messages"][3]["content"], Value::Null);
    assert_eq!(
        w["messages"][3]["tool_calls"][1]["function"]["name"],
        "peek"
    );
    assert_eq!(
        w["messages"][4],
        json!({"role": "tool", "content": "a cat", "tool_call_id": "call_1"})
    );
    assert_eq!(
        w["messages"][2]["content"][1]["image_url"]["url"],
        "data:image/png;base64,AAAA"
    );
    assert_eq!(
        w["tool_choice"],
        json!({"type": "function", "function": {"name": "look"}})
    );
    assert_eq!(
        w["response_format"]["json_schema"]["schema"],
        json!({"type": "object"})
    );
    assert_eq!(w["stop"], json!(["\n\n", "END"]));
}

#[test]
fn request_from_wire_validates() {
    let base = |extra: Value| {
        let mut v = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    assert_eq!(
        param_of(json!({"model": "m", "messages": []})).as_deref(),
        Some("messages")
    );
    assert_eq!(
        param_of(json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]})).as_deref(),
        Some("messages[0].role")
    );
    assert_eq!(
        param_of(json!({"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}]}))
            .as_deref(),
        Some("messages[1].tool_call_id")
    );
    assert_eq!(
        param_of(json!({"model": "m", "messages": [{"role": "user"}]})).as_deref(),
        Some("messages[0].content")
    );
    assert_eq!(
        param_of(
            json!({"model": "m", "messages": [{"role": "system", "content": [
            {"type": "image_url", "image_url": {"url": "https://x"}}]}]})
        )
        .as_deref(),
        Some("messages[0].content[0].type")
    );
    assert_eq!(
        param_of(base(json!({"temperature": 2.5}))).as_deref(),
        Some("temperature")
    );
    assert_eq!(
        param_of(base(json!({"temperature": -0.1}))).as_deref(),
        Some("temperature")
    );
    assert!(parse(base(json!({"temperature": 2.0, "top_p": 0.0}))).is_ok());
    assert_eq!(
        param_of(base(json!({"top_p": 1.5}))).as_deref(),
        Some("top_p")
    );
    assert_eq!(param_of(base(json!({"n": 2}))).as_deref(), Some("n"));
    assert!(parse(base(json!({"n": 1}))).is_ok());
    assert_eq!(
        param_of(base(json!({"stop": ["a", "b", "c", "d", "e"]}))).as_deref(),
        Some("stop")
    );
    assert_eq!(
        parse(base(json!({"stop": "x"}))).unwrap().params.stop,
        vec!["x".to_string()]
    );
    assert_eq!(
        param_of(base(json!({"stream_options": {"include_usage": true}}))).as_deref(),
        Some("stream_options")
    );
    assert!(parse(base(
        json!({"stream": true, "stream_options": {"include_usage": true}})
    ))
    .is_ok());
    assert_eq!(
        param_of(base(
            json!({"tools": [{"type": "retrieval", "function": {"name": "f"}}]})
        ))
        .as_deref(),
        Some("tools[0].type")
    );
    assert_eq!(
        param_of(base(json!({"tool_choice": "sometimes"}))).as_deref(),
        Some("tool_choice")
    );
    // A forced tool must be one of `tools`; `required` needs some tools.
    assert_eq!(
        param_of(base(
            json!({"tool_choice": {"type": "function", "function": {"name": "g"}},
            "tools": [{"type": "function", "function": {"name": "f"}}]})
        ))
        .as_deref(),
        Some("tool_choice")
    );
    assert_eq!(
        param_of(base(json!({"tool_choice": "required"}))).as_deref(),
        Some("tool_choice")
    );
    for (mode, want) in [
        ("auto", ToolChoice::Auto),
        ("none", ToolChoice::None),
        ("required", ToolChoice::Required),
    ] {
        assert_eq!(
            parse(base(json!({"tool_choice": mode, "tools": [
                {"type": "function", "function": {"name": "f"}}]})))
            .unwrap()
            .tool_choice,
            Some(want)
        );
    }
    assert_eq!(
        param_of(base(
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "s"}}})
        ))
        .as_deref(),
        Some("response_format.json_schema.schema")
    );
    assert_eq!(
        param_of(base(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "", "schema": {}}}})))
            .as_deref(),
        Some("response_format.json_schema.name")
    );
    assert_eq!(
        parse(base(json!({"response_format": {"type": "json_object"}})))
            .unwrap()
            .response_format,
        Some(ResponseFormat::JsonObject)
    );
    // max_tokens is the older name; max_completion_tokens wins when both are sent.
    assert_eq!(
        parse(base(json!({"max_tokens": 5})))
            .unwrap()
            .params
            .max_tokens,
        Some(5)
    );
    assert_eq!(
        parse(base(json!({"max_tokens": 5, "max_completion_tokens": 9})))
            .unwrap()
            .params
            .max_tokens,
        Some(9)
    );
}

#[test]
fn response_to_wire_shapes_and_round_trip() {
    let r = ChatResponse {
        id: "up-1".into(),
        model: "gpt-4o-2024-08-06".into(),
        created: 5,
        content: vec![ContentBlock::ToolUse {
            id: "call_1".into(),
            name: "f".into(),
            arguments: "{}".into(),
        }],
        finish_reason: FinishReason::ToolCalls,
        usage: Usage {
            input_tokens: 10,
            output_tokens: 3,
            cached_input_tokens: 4,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: 1,
        },
        system_fingerprint: None,
    };
    let w = response_to_wire(&r, "public", "chatcmpl-gw", 99);
    let v = serde_json::to_value(&w).unwrap();
    assert_eq!(v["id"], "chatcmpl-gw");
    assert_eq!(v["model"], "public");
    assert_eq!(v["created"], 99);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["total_tokens"], 13);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        1
    );

    let mut back = response_from_wire(w).unwrap();
    back.id = r.id.clone();
    back.model = r.model.clone();
    back.created = r.created;
    assert_eq!(back, r);

    let text_only = ChatResponse {
        content: vec![ContentBlock::text("hi")],
        finish_reason: FinishReason::Stop,
        ..r.clone()
    };
    let v = serde_json::to_value(response_to_wire(&text_only, "p", "i", 1)).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "hi");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());

    let empty = ChatResponse {
        content: vec![],
        ..text_only
    };
    let v = serde_json::to_value(response_to_wire(&empty, "p", "i", 1)).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "");
}

#[test]
fn usage_round_trips() {
    let u = Usage {
        input_tokens: 100,
        output_tokens: 50,
        cached_input_tokens: 30,
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        reasoning_tokens: 20,
    };
    assert_eq!(usage_from_wire(&usage_to_wire(&u)), u);
}

#[test]
fn prompt_cache_key_passes_through_and_is_absent_when_unset() {
    let r = parse(
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "prompt_cache_key": "agent-7"}),
    )
    .unwrap();
    assert_eq!(r.cache.key.as_deref(), Some("agent-7"));
    let w = serde_json::to_value(request_to_wire(&r, "t", MaxTokensField::MaxTokens)).unwrap();
    assert_eq!(w["prompt_cache_key"], "agent-7");
    let plain =
        parse(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
    let w = serde_json::to_value(request_to_wire(&plain, "t", MaxTokensField::MaxTokens)).unwrap();
    assert!(w.get("prompt_cache_key").is_none());
}
