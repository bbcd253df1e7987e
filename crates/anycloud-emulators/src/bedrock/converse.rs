//! Converse request validation and deterministic replies for the Bedrock emulator
//! (provider-wire-formats §3.3–§3.5): the same checks Bedrock makes, answered with its
//! ValidationException wording, and the reply as a Converse body or as the ordered
//! ConverseStream events (`metadata` last, after `messageStop`).

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::reply::{self, ReplyBody};

const TOP_LEVEL: [&str; 10] = [
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
];
const BLOCK_KINDS: [&str; 9] = [
    "text",
    "image",
    "document",
    "video",
    "toolUse",
    "toolResult",
    "reasoningContent",
    "cachePoint",
    "guardContent",
];

/// A ValidationException message.
pub(crate) type Invalid = String;

fn one_error(value: &str, at: &str, constraint: &str) -> Invalid {
    format!("1 validation error detected: Value '{value}' at '{at}' failed to satisfy constraint: {constraint}")
}

/// A validated Converse request, reduced to what the reply needs (in the OpenAI-like
/// shape `reply` works on).
#[derive(Debug)]
pub(crate) struct Converse {
    messages: Vec<Value>,
    tools: Vec<Value>,
    tool_choice: Option<Value>,
    max_tokens: Option<u64>,
}

fn is_tool_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Validates a Converse body like Bedrock does.
pub(crate) fn validate(body: &Map<String, Value>) -> Result<Converse, Invalid> {
    if let Some(k) = body.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(format!("Malformed input request: extraneous key [{k}] is not permitted, please reformat your input and try again."));
    }
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("A conversation must start with a user message. Try again with a conversation that starts with a user message.")?;
    if let Some(system) = body.get("system") {
        let ok = system.as_array().is_some_and(|a| {
            a.iter().all(|b| {
                b.get("text").is_some_and(Value::is_string) || b.get("cachePoint").is_some()
            })
        });
        if !ok {
            return Err("The system field must be a list of SystemContentBlock objects.".into());
        }
    }
    let mut max_tokens = None;
    if let Some(cfg) = body.get("inferenceConfig") {
        let cfg = cfg
            .as_object()
            .ok_or("inferenceConfig must be an object.")?;
        if let Some(m) = cfg.get("maxTokens") {
            match m.as_i64() {
                Some(n) if n >= 1 => max_tokens = u64::try_from(n).ok(),
                _ => {
                    return Err(one_error(
                        &m.to_string(),
                        "inferenceConfig.maxTokens",
                        "Member must have value greater than or equal to 1",
                    ))
                }
            }
        }
        for (k, lo, hi) in [("temperature", 0.0, 1.0), ("topP", 0.0, 1.0)] {
            if let Some(v) = cfg.get(k) {
                if !v.as_f64().is_some_and(|x| (lo..=hi).contains(&x)) {
                    return Err(one_error(
                        &v.to_string(),
                        &format!("inferenceConfig.{k}"),
                        "Member must have value less than or equal to 1",
                    ));
                }
            }
        }
    }
    let (tools, tool_choice) = match body.get("toolConfig") {
        Some(tc) => tool_config(tc)?,
        None => (Vec::new(), None),
    };
    let mut out = Vec::with_capacity(messages.len());
    let mut prev_role = "";
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if !matches!(role, "user" | "assistant") {
            return Err(one_error(
                role,
                &format!("messages.{}.member.role", i + 1),
                "Member must satisfy enum value set: [user, assistant]",
            ));
        }
        if i == 0 && role != "user" {
            return Err("A conversation must start with a user message. Try again with a conversation that starts with a user message.".into());
        }
        if role == prev_role {
            return Err("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.".into());
        }
        prev_role = role;
        let content = m
            .get("content")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| format!("The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again."))?;
        out.extend(message_for_reply(
            role,
            content,
            i,
            body.contains_key("toolConfig"),
        )?);
    }
    Ok(Converse {
        messages: out,
        tools,
        tool_choice,
        max_tokens,
    })
}

fn tool_config(tc: &Value) -> Result<(Vec<Value>, Option<Value>), Invalid> {
    let tools = tc
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            one_error(
                "[]",
                "toolConfig.tools",
                "Member must have length greater than or equal to 1",
            )
        })?;
    let mut out = Vec::with_capacity(tools.len());
    // `cachePoint` entries are checked with the prompt cache (`cache.rs`).
    for (i, t) in tools
        .iter()
        .enumerate()
        .filter(|(_, t)| t.get("cachePoint").is_none())
    {
        let spec = t
            .get("toolSpec")
            .ok_or("The provided request is not valid: each tool needs a toolSpec.")?;
        let name = spec.get("name").and_then(Value::as_str).unwrap_or_default();
        if !is_tool_name(name) {
            return Err(one_error(
                name,
                &format!("toolConfig.tools.{}.member.toolSpec.name", i + 1),
                "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
            ));
        }
        let schema = spec
            .pointer("/inputSchema/json")
            .filter(|s| s.is_object())
            .ok_or_else(|| {
                format!("The inputSchema of tool {name} must be a JSON object under 'json'.")
            })?;
        out.push(json!({"type": "function", "function": {"name": name, "parameters": schema}}));
    }
    let choice = match tc.get("toolChoice") {
        None => None,
        Some(c) if c.get("auto").is_some() || c.get("any").is_some() => None,
        Some(c) => match c.pointer("/tool/name").and_then(Value::as_str) {
            Some(n)
                if out
                    .iter()
                    .any(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(n)) =>
            {
                Some(json!({"type": "function", "function": {"name": n}}))
            }
            Some(n) => {
                return Err(format!(
                    "The tool {n} named in toolChoice is not defined in toolConfig.tools."
                ))
            }
            None => return Err("toolChoice must be one of auto, any or tool.".into()),
        },
    };
    Ok((out, choice))
}

/// One Converse message as reply-input messages: tool results become `tool` messages.
fn message_for_reply(
    role: &str,
    content: &[Value],
    i: usize,
    has_tool_config: bool,
) -> Result<Vec<Value>, Invalid> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    let mut results = Vec::new();
    for block in content {
        let obj = block.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
            format!("Each ContentBlock in messages.{i} must set exactly one member.")
        })?;
        let (kind, value) = obj.iter().next().ok_or("empty content block")?;
        if !BLOCK_KINDS.contains(&kind.as_str()) {
            return Err(format!(
                "Malformed input request: unknown content block type [{kind}]."
            ));
        }
        match kind.as_str() {
            "text" => texts.push(value.as_str().ok_or("text must be a string.")?.to_string()),
            "image" => check_image(value)?,
            "toolUse" | "toolResult" if !has_tool_config => {
                return Err("The toolConfig field must be defined when using toolUse and toolResult content blocks.".into())
            }
            "toolUse" if role == "assistant" => {
                let name = value.get("name").and_then(Value::as_str).unwrap_or_default();
                if !is_tool_name(name) || value.get("toolUseId").and_then(Value::as_str).is_none() || !value.get("input").is_some_and(Value::is_object) {
                    return Err(format!("The toolUse block in messages.{i} needs toolUseId, a valid name and an input object."));
                }
                calls.push(json!({"function": {"name": name, "arguments": value["input"].to_string()}}));
            }
            "toolResult" if role == "user" => {
                if value.get("toolUseId").and_then(Value::as_str).is_none() {
                    return Err(format!("The toolResult block in messages.{i} needs a toolUseId."));
                }
                let text: Vec<String> = value.get("content").and_then(Value::as_array).into_iter().flatten().filter_map(|c| {
                    c.get("text").and_then(Value::as_str).map(str::to_string).or_else(|| c.get("json").map(Value::to_string))
                }).collect();
                results.push(text.join(" "));
            }
            "toolUse" | "toolResult" => return Err(format!("A {kind} block is not allowed in a {role} message.")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if !results.is_empty() {
        out.push(json!({"role": "tool", "content": results.join(" ")}));
    }
    if !texts.is_empty() || !calls.is_empty() || results.is_empty() {
        let mut m = json!({"role": role, "content": texts.join(" ")});
        if !calls.is_empty() {
            m["tool_calls"] = Value::Array(calls);
        }
        out.push(m);
    }
    Ok(out)
}

fn check_image(v: &Value) -> Result<(), Invalid> {
    let format = v.get("format").and_then(Value::as_str).unwrap_or_default();
    if !matches!(format, "png" | "jpeg" | "gif" | "webp") {
        return Err(one_error(
            format,
            "image.format",
            "Member must satisfy enum value set: [png, jpeg, gif, webp]",
        ));
    }
    let bytes = v
        .pointer("/source/bytes")
        .and_then(Value::as_str)
        .ok_or("The image source must carry bytes.")?;
    base64::engine::general_purpose::STANDARD
        .decode(bytes)
        .map_err(|_| "Invalid base64 in image.source.bytes.".to_string())?;
    Ok(())
}

/// The generated reply as a Converse `output.message`, stop reason and usage.
pub(crate) struct Answer {
    pub content: Vec<Value>,
    pub stop_reason: &'static str,
    pub usage: Value,
    /// Streaming pieces: text fragments or tool-input fragments.
    pub tool: Option<(String, String, Vec<String>)>,
    pub text_pieces: Vec<String>,
}

pub(crate) fn answer(c: &Converse, cloud: &str, model: &str) -> Answer {
    let r = reply::chat_reply(&reply::ChatInput {
        cloud,
        model,
        messages: &c.messages,
        tools: &c.tools,
        tool_choice: c.tool_choice.as_ref(),
        max_tokens: c.max_tokens,
        json_mode: false,
        // Claude continues a final assistant message; Bedrock's other models do not.
        prefill: model.starts_with("anthropic."),
    });
    let stop_reason = match r.finish_reason {
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        _ => "end_turn",
    };
    let usage = json!({"inputTokens": r.prompt_tokens, "outputTokens": r.completion_tokens,
        "totalTokens": r.prompt_tokens + r.completion_tokens});
    match r.body {
        ReplyBody::Text(text) => {
            let text_pieces = split_words(&text);
            Answer {
                content: vec![json!({"text": text})],
                stop_reason,
                usage,
                tool: None,
                text_pieces,
            }
        }
        ReplyBody::Tool(call) => {
            let id = call.id.replacen("call_", "tooluse_", 1);
            let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
            let mid = call.arguments.len() / 2;
            let mid = (mid..=call.arguments.len())
                .find(|i| call.arguments.is_char_boundary(*i))
                .unwrap_or(0);
            let pieces = vec![
                call.arguments[..mid].to_string(),
                call.arguments[mid..].to_string(),
            ];
            Answer {
                content: vec![
                    json!({"toolUse": {"toolUseId": id, "name": call.name, "input": input}}),
                ],
                stop_reason,
                usage,
                tool: Some((id, call.name, pieces)),
                text_pieces: Vec::new(),
            }
        }
    }
}

/// Text split after each space, so deltas rejoin to the exact text.
fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        cur.push(ch);
        if ch == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The non-streaming Converse body.
pub(crate) fn response_body(a: &Answer) -> Value {
    json!({"output": {"message": {"role": "assistant", "content": a.content}},
        "stopReason": a.stop_reason, "usage": a.usage, "metrics": {"latencyMs": 42}})
}

/// The ConverseStream events in order, as (event type, payload).
pub(crate) fn stream_events(a: &Answer) -> Vec<(&'static str, Value)> {
    let mut out = vec![("messageStart", json!({"role": "assistant"}))];
    match &a.tool {
        Some((id, name, pieces)) => {
            out.push(("contentBlockStart", json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": id, "name": name}}})));
            for p in pieces.iter().filter(|p| !p.is_empty()) {
                out.push((
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": p}}}),
                ));
            }
        }
        None => {
            for p in &a.text_pieces {
                out.push((
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": p}}),
                ));
            }
        }
    }
    out.push(("contentBlockStop", json!({"contentBlockIndex": 0})));
    out.push(("messageStop", json!({"stopReason": a.stop_reason})));
    out.push((
        "metadata",
        json!({"usage": a.usage, "metrics": {"latencyMs": 42}}),
    ));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn check(body: Value) -> Result<Converse, Invalid> {
        validate(body.as_object().unwrap())
    }

    #[test]
    fn bedrock_rules_are_enforced() {
        let user = json!({"role": "user", "content": [{"text": "hi"}]});
        assert!(check(json!({"messages": [user]})).is_ok());
        assert!(check(json!({}))
            .unwrap_err()
            .contains("must start with a user message"));
        assert!(check(json!({"messages": [user, user]}))
            .unwrap_err()
            .contains("alternate"));
        assert!(
            check(json!({"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}))
                .is_err()
        );
        assert!(
            check(json!({"messages": [{"role": "system", "content": [{"text": "x"}]}]}))
                .unwrap_err()
                .contains("enum value set")
        );
        assert!(
            check(json!({"messages": [user], "inferenceConfig": {"maxTokens": 0}}))
                .unwrap_err()
                .contains("maxTokens")
        );
        let tool_use = json!({"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]});
        assert!(check(json!({"messages": [user, tool_use]}))
            .unwrap_err()
            .contains("toolConfig field must be defined"));
        let bad_tool = json!({"tools": [{"toolSpec": {"name": "get.weather", "inputSchema": {"json": {"type": "object"}}}}]});
        assert!(check(json!({"messages": [user], "toolConfig": bad_tool}))
            .unwrap_err()
            .contains("[a-zA-Z0-9_-]+"));
        assert!(check(json!({"messages": [user], "stream": true}))
            .unwrap_err()
            .contains("extraneous key [stream]"));
    }

    #[test]
    fn stream_events_end_with_metadata_after_message_stop() {
        let c = check(json!({"messages": [{"role": "user", "content": [{"text": "hi there"}]}]}))
            .unwrap();
        let a = answer(&c, "aws-eu", "m");
        let evs = stream_events(&a);
        let names: Vec<&str> = evs.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.last(), Some(&"metadata"));
        assert_eq!(names[names.len() - 2], "messageStop");
        let text: String = evs
            .iter()
            .filter_map(|(_, p)| p.pointer("/delta/text").and_then(Value::as_str))
            .collect();
        assert_eq!(text, "Hello from aws-eu (m). You said: hi there");
    }
}
