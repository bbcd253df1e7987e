//! Claude on Vertex (§5.6): `rawPredict` / `streamRawPredict` on
//! `publishers/anthropic/models/{model}` speaking the Anthropic Messages format. The body
//! must carry `anthropic_version: "vertex-2023-10-16"` and no `model` (it is in the URL);
//! errors about the body use Anthropic's shape, streams Anthropic's named SSE events
//! (§5.3: message_start, content_block_start, ping, content_block_delta,
//! content_block_stop, message_delta, message_stop).

use axum::response::Response;
use serde_json::{json, Map, Value};

use super::json_body;
use crate::http::{self, Incoming};
use crate::prompt_cache;
use crate::reply::{self, ReplyBody};
use crate::Shared;

pub const VERTEX_ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

fn anthropic_error(status: u16, kind: &str, message: &str) -> Response {
    http::json(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
        &[],
    )
}

fn invalid(message: &str) -> Response {
    anthropic_error(400, "invalid_request_error", message)
}

/// Anthropic's 529.
pub(crate) fn overloaded() -> Response {
    anthropic_error(529, "overloaded_error", "Overloaded")
}

fn block_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn validate(body: &Map<String, Value>, streaming_method: bool) -> Result<(), String> {
    match body.get("anthropic_version").and_then(Value::as_str) {
        Some(VERTEX_ANTHROPIC_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "anthropic_version: unsupported version {v:?}; use {VERTEX_ANTHROPIC_VERSION:?}"
            ))
        }
        None => return Err("anthropic_version: Field required".into()),
    }
    if body.contains_key("model") {
        return Err(
            "model: Extra inputs are not permitted (on Vertex AI the model is part of the URL)"
                .into(),
        );
    }
    if body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .is_none_or(|m| m == 0)
    {
        return Err("max_tokens: Field required".into());
    }
    let Some(messages) = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return Err("messages: Field required".into());
    };
    for (i, m) in messages.iter().enumerate() {
        if !matches!(
            m.get("role").and_then(Value::as_str),
            Some("user" | "assistant")
        ) {
            return Err(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        match m.get("content") {
            Some(Value::String(_)) => {}
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    let ok = match b.get("type").and_then(Value::as_str) {
                        Some("text") => b.get("text").is_some_and(Value::is_string),
                        Some("image") => b.get("source").is_some_and(Value::is_object),
                        Some("tool_use") => {
                            b.get("id").is_some_and(Value::is_string)
                                && b.get("name").is_some_and(Value::is_string)
                                && b.get("input").is_some_and(Value::is_object)
                        }
                        Some("tool_result") => b.get("tool_use_id").is_some_and(Value::is_string),
                        Some("thinking" | "redacted_thinking" | "document") => true,
                        _ => false,
                    };
                    if !ok {
                        return Err(format!("messages.{i}.content.{j}: invalid content block"));
                    }
                }
            }
            _ => return Err(format!("messages.{i}.content: Field required")),
        }
    }
    for (i, t) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if t.get("name").and_then(Value::as_str).is_none()
            || !t.get("input_schema").is_some_and(Value::is_object)
        {
            return Err(format!("tools.{i}: name and input_schema are required"));
        }
    }
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    if streaming_method && !stream {
        return Err("streamRawPredict requires \"stream\": true".into());
    }
    Ok(())
}

fn reply_for(shared: &Shared, body: &Map<String, Value>, model: &str) -> reply::Reply {
    let mut messages = Vec::new();
    for m in body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let content = m.get("content");
        let results: Vec<&Value> = content
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            .collect();
        if !results.is_empty() {
            for r in results {
                messages.push(json!({"role": "tool", "content": block_text(r.get("content"))}));
            }
            continue;
        }
        messages.push(json!({"role": m.get("role").cloned().unwrap_or(Value::Null), "content": block_text(content)}));
    }
    let tools: Vec<Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| json!({"type": "function", "function": {"name": t.get("name").cloned().unwrap_or(Value::Null), "parameters": t.get("input_schema").cloned().unwrap_or(json!({}))}}))
        .collect();
    let tool_choice = match body
        .get("tool_choice")
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
    {
        Some("none") => Some(json!("none")),
        Some("tool") => body
            .get("tool_choice")
            .and_then(|c| c.get("name"))
            .map(|n| json!({"type": "function", "function": {"name": n}})),
        _ => None,
    };
    reply::chat_reply(&reply::ChatInput {
        cloud: &shared.config.name,
        model,
        messages: &messages,
        tools: &tools,
        tool_choice: tool_choice.as_ref(),
        max_tokens: body.get("max_tokens").and_then(Value::as_u64),
        json_mode: false,
        prefill: true,
    })
}

/// `rawPredict` / `streamRawPredict`.
pub(crate) fn handle(shared: &Shared, req: &Incoming, model: &str, method: &str) -> Response {
    let streaming_method = match method {
        "rawPredict" => false,
        "streamRawPredict" => true,
        _ => {
            return super::google_error(
                404,
                "NOT_FOUND",
                &format!("Method {method} is not found for Anthropic models."),
                None,
            )
        }
    };
    let body = match json_body(req) {
        Ok(b) => b,
        Err(_) => {
            return invalid("request body must be a JSON object with Content-Type application/json")
        }
    };
    if let Err(m) = validate(&body, streaming_method) {
        return invalid(&m);
    }
    let prefix = match prompt_cache::anthropic_prefix(model, &body) {
        Ok(p) => p,
        Err(m) => return invalid(&m),
    };
    let r = reply_for(shared, &body, model);
    let usage = crate::anthropic::cache_usage(shared, &prefix, model);
    shared.report_usage(&usage(r.completion_tokens));
    let id = format!("msg_vrtx_{:016}", req.seq);
    let stop_reason = match r.finish_reason {
        "tool_calls" => "tool_use",
        "length" => "max_tokens",
        _ => "end_turn",
    };
    let (block, tool_json) = match &r.body {
        ReplyBody::Text(t) => (json!({"type": "text", "text": t}), None),
        ReplyBody::Tool(call) => {
            let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
            let id = call.id.replacen("call_", "toolu_vrtx_", 1);
            (
                json!({"type": "tool_use", "id": id, "name": call.name, "input": input}),
                Some(call.arguments.clone()),
            )
        }
    };
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return http::json(
            200,
            &json!({"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [block], "stop_reason": stop_reason, "stop_sequence": null,
            "usage": usage(r.completion_tokens)}),
            &[],
        );
    }
    let ev = |name: &str, data: Value| (name.to_string(), data.to_string());
    let mut events = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage(1)}}),
    )];
    match (&r.body, tool_json) {
        (ReplyBody::Text(t), _) => {
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            events.push(ev("ping", json!({"type": "ping"})));
            for w in t.split_inclusive(' ') {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
            }
        }
        (_, args) => {
            let mut start = block.clone();
            start["input"] = json!({});
            events.push(ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": start}),
            ));
            events.push(ev("ping", json!({"type": "ping"})));
            let args = args.unwrap_or_default();
            let mid = args
                .char_indices()
                .nth(args.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            for piece in ["", &args[..mid], &args[mid..]] {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}})));
            }
        }
    }
    events.push(ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": r.completion_tokens}})));
    events.push(ev("message_stop", json!({"type": "message_stop"})));
    if let Some((k, kind)) = shared.faults.stream_error() {
        // As on Anthropic's own API: `event: error` inside the 200, then the end.
        events.truncate(usize::try_from(k).unwrap_or(usize::MAX));
        events.push(ev(
            "error",
            json!({"type": "error", "error": {"type": kind, "message": "Overloaded"}}),
        ));
    }
    http::sse_named(events, &shared.faults, &[])
}
