//! Anthropic Messages API emulator: `POST /v1/messages` with `x-api-key` and a
//! required `anthropic-version` header, Anthropic's validation and error shape
//! (`{"type":"error","error":{"type","message"},"request_id"}`), and SSE with
//! named events incl. `ping`, `input_json_delta` fragments cut inside JSON
//! strings, input usage in `message_start` and cumulative output usage in
//! `message_delta` (provider-wire-formats §5).
//!
//! Replies come from [`crate::reply`]: the Anthropic request is restated in the
//! OpenAI shape that module reads (tools as functions, a trailing tool result
//! as a `tool` message), so every cloud answers the same way.

use axum::http::Method;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::faults::InjectedFailure;
use crate::http::{self, Incoming};
use crate::prompt_cache;
use crate::reply::{self, ReplyBody};
use crate::Shared;

/// `anthropic-version` values the emulator accepts.
const VERSIONS: [&str; 2] = ["2023-06-01", "2023-01-01"];
/// `partial_json` fragment length: small enough to cut inside strings.
const JSON_PIECE: usize = 5;

pub(crate) struct ApiError {
    status: u16,
    kind: &'static str,
    message: String,
}

fn err(status: u16, kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        kind,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    err(400, "invalid_request_error", message)
}

fn request_id(req: &Incoming) -> String {
    format!("req_emu{:020}", req.seq)
}

fn headers(req: &Incoming) -> Vec<(&'static str, String)> {
    vec![
        ("request-id", request_id(req)),
        ("anthropic-organization-id", "emulator-org".to_string()),
    ]
}

fn error_response(req: &Incoming, e: &ApiError, extra: &[(&'static str, String)]) -> Response {
    let body = json!({"type": "error", "error": {"type": e.kind, "message": e.message},
        "request_id": request_id(req)});
    let mut h = headers(req);
    h.extend(extra.iter().cloned());
    http::json(e.status, &body, &h)
}

/// The error an injected failure produces, in Anthropic's shape.
pub(crate) fn injected_error(req: &Incoming, f: InjectedFailure) -> Response {
    let e = match f.status {
        429 => err(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit (emulated).",
        ),
        529 => err(529, "overloaded_error", "Overloaded"),
        s if s >= 500 => err(s, "api_error", "Internal server error"),
        401 => err(401, "authentication_error", "invalid x-api-key"),
        403 => err(
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => err(404, "not_found_error", "Not found"),
        s => err(s, "invalid_request_error", "Injected failure."),
    };
    let retry: Vec<(&'static str, String)> = f
        .retry_after_secs
        .map(|s| vec![("retry-after", s.to_string())])
        .unwrap_or_default();
    error_response(req, &e, &retry)
}

pub(crate) async fn handle(shared: &Shared, req: &Incoming) -> Response {
    let path = req.path.trim_end_matches('/');
    if (path, &req.method) != ("/v1/messages", &Method::POST) {
        let e = err(
            404,
            "not_found_error",
            format!("Not found: {} {}", req.method, req.path),
        );
        return error_response(req, &e, &[]);
    }
    match messages(shared, req) {
        Ok(r) => r,
        Err(e) => error_response(req, &e, &[]),
    }
}

fn check_headers(shared: &Shared, req: &Incoming) -> Result<(), ApiError> {
    match req.header("x-api-key") {
        None => {
            return Err(err(
                401,
                "authentication_error",
                "x-api-key header is required",
            ))
        }
        Some(k) if k != shared.config.api_key => {
            return Err(err(401, "authentication_error", "invalid x-api-key"))
        }
        Some(_) => {}
    }
    match req.header("anthropic-version") {
        None => Err(invalid("anthropic-version: header is required")),
        Some(v) if !VERSIONS.contains(&v) => {
            Err(invalid(format!("anthropic-version: invalid version '{v}'")))
        }
        Some(_) if !req.has_json_content_type() => {
            Err(invalid("content-type: must be application/json"))
        }
        Some(_) => Ok(()),
    }
}

/// What a validated request asks for.
struct Params {
    model: String,
    stream: bool,
    max_tokens: u64,
    /// The request restated for [`reply`]: OpenAI-shaped messages and tools.
    messages: Vec<Value>,
    tools: Vec<Value>,
    tool_choice: Option<Value>,
}

fn messages(shared: &Shared, req: &Incoming) -> Result<Response, ApiError> {
    check_headers(shared, req)?;
    let body: Map<String, Value> = match serde_json::from_slice(&req.body) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err(invalid("Request body must be a JSON object")),
        Err(e) => return Err(invalid(format!("There was an error parsing the body: {e}"))),
    };
    let p = validate(&body)?;
    if !shared.config.models.contains(&p.model) {
        return Err(err(404, "not_found_error", format!("model: {}", p.model)));
    }
    let prefix = prompt_cache::anthropic_prefix(&p.model, &body).map_err(invalid)?;
    let input = reply::ChatInput {
        cloud: &shared.config.name,
        model: &p.model,
        messages: &p.messages,
        tools: &p.tools,
        tool_choice: p.tool_choice.as_ref(),
        max_tokens: Some(p.max_tokens),
        json_mode: false,
        prefill: true,
    };
    let r = reply::chat_reply(&input);
    let usage = cache_usage(shared, &prefix, &p.model);
    shared.report_usage(&usage(r.completion_tokens));
    let id = format!("msg_emu{:020}", req.seq);
    let (block, stop) = match &r.body {
        ReplyBody::Text(t) => (json!({"type": "text", "text": t}), r.finish_reason),
        ReplyBody::Tool(c) => {
            let input: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
            let id = format!("toolu_{}", c.id.trim_start_matches("call_"));
            (
                json!({"type": "tool_use", "id": id, "name": c.name, "input": input}),
                r.finish_reason,
            )
        }
    };
    let stop_reason = match stop {
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        _ => "end_turn",
    };
    if !p.stream {
        let body = json!({"id": id, "type": "message", "role": "assistant", "model": p.model,
            "content": [block], "stop_reason": stop_reason, "stop_sequence": null,
            "usage": usage(r.completion_tokens)});
        return Ok(http::json(200, &body, &headers(req)));
    }
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
            "model": p.model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage(1)}}),
    ];
    match &r.body {
        ReplyBody::Text(t) => {
            events.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
            events.push(json!({"type": "ping"}));
            for piece in t.split_inclusive(' ') {
                events.push(json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": piece}}));
            }
        }
        ReplyBody::Tool(c) => {
            let mut start = block.clone();
            start["input"] = json!({});
            events.push(json!({"type": "content_block_start", "index": 0, "content_block": start}));
            events.push(json!({"type": "ping"}));
            // Like Anthropic, the first fragment is empty; the rest are cut
            // every few characters, so most cuts fall inside JSON strings.
            events.push(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": ""}}));
            let chars: Vec<char> = c.arguments.chars().collect();
            for piece in chars.chunks(JSON_PIECE) {
                events.push(json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": piece.iter().collect::<String>()}}));
            }
        }
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": r.completion_tokens}}));
    events.push(json!({"type": "message_stop"}));
    if let Some((k, _kind)) = shared.faults.stream_error() {
        // Trap 5: the 200 is already sent; the failure is an `event: error`
        // and then the connection closes without `message_stop`.
        events.truncate(usize::try_from(k).unwrap_or(usize::MAX));
        events.push(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
    }
    let frames = events
        .into_iter()
        .map(|e| {
            let name = e["type"].as_str().unwrap_or("message").to_string();
            (false, Bytes::from(format!("event: {name}\ndata: {e}\n\n")))
        })
        .collect();
    Ok(http::sse_frames(frames, &shared.faults, &headers(req)))
}

/// The usage for `output` tokens, with the prompt cache's reads and writes. The prompt is
/// counted block by block ([`prompt_cache`]: tools, system and messages) whether or not it
/// marks breakpoints, as Claude counts the same prompt the same either way, so a run with
/// caching and one without bill the same tokens and differ only by their prices.
pub(crate) fn cache_usage(
    shared: &Shared,
    prefix: &prompt_cache::Prefix,
    model: &str,
) -> impl Fn(u64) -> Value {
    let cache = if prefix.breakpoints.is_empty() {
        prompt_cache::CacheUsage::default()
    } else {
        let min = prompt_cache::claude_min_tokens(model);
        shared.prompt_cache.account(prefix, min)
    };
    let total = prefix.tokens();
    move |output| cache.anthropic_usage(total, output)
}

fn validate(body: &Map<String, Value>) -> Result<Params, ApiError> {
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(invalid("model: Field required")),
    };
    let max_tokens = match body.get("max_tokens") {
        None => return Err(invalid("max_tokens: Field required")),
        Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
        })?,
    };
    for (k, hi) in [("temperature", 1.0), ("top_p", 1.0)] {
        if let Some(v) = body.get(k) {
            if !v.as_f64().is_some_and(|x| (0.0..=hi).contains(&x)) {
                return Err(invalid(format!("{k}: range: 0..{hi}")));
            }
        }
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream: Input should be a valid boolean")),
    };
    match body.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks))
            if blocks
                .iter()
                .all(|b| b["type"] == "text" && b["text"].is_string()) => {}
        Some(_) => {
            return Err(invalid(
                "system: Input should be a valid string or a list of text blocks",
            ))
        }
    }
    let tools = validate_tools(body.get("tools"))?;
    let tool_choice = validate_tool_choice(body.get("tool_choice"), &tools)?;
    let messages = validate_messages(body.get("messages"))?;
    Ok(Params {
        model,
        stream,
        max_tokens,
        messages,
        tools,
        tool_choice,
    })
}

fn valid_tool_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Tools restated as OpenAI functions for [`reply`].
fn validate_tools(v: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let arr = v
        .as_array()
        .ok_or_else(|| invalid("tools: Input should be a valid list"))?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, t) in arr.iter().enumerate() {
        let name = t["name"].as_str().unwrap_or_default();
        if !valid_tool_name(name) {
            return Err(invalid(format!(
                "tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            )));
        }
        let schema = &t["input_schema"];
        if !schema.is_object() || schema["type"] != "object" {
            return Err(invalid(format!("tools.{i}.custom.input_schema: Input should be an object schema with type 'object'")));
        }
        out.push(json!({"type": "function", "function": {"name": name, "parameters": schema}}));
    }
    Ok(out)
}

fn validate_tool_choice(v: Option<&Value>, tools: &[Value]) -> Result<Option<Value>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    match v["type"].as_str() {
        Some("auto" | "any") => Ok(None),
        Some("none") => Ok(Some(json!("none"))),
        Some("tool") => {
            let name = v["name"].as_str().ok_or_else(|| invalid("tool_choice.tool.name: Field required"))?;
            if !tools.iter().any(|t| t.pointer("/function/name") == Some(&json!(name))) {
                return Err(invalid(format!("tool_choice: tool '{name}' not found in tools")));
            }
            Ok(Some(json!({"type": "function", "function": {"name": name}})))
        }
        _ => Err(invalid("tool_choice.type: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")),
    }
}

/// Checks roles, blocks and the tool_use/tool_result pairing; returns the
/// conversation restated for [`reply`].
fn validate_messages(v: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let msgs = match v {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(invalid("messages: at least one message is required")),
        _ => return Err(invalid("messages: Field required")),
    };
    let mut out = Vec::with_capacity(msgs.len());
    let mut pending_tool_ids: Vec<String> = Vec::new();
    let mut prev_role = "";
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(invalid(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            )));
        }
        if i == 0 && role != "user" {
            return Err(invalid(
                "messages: first message must use the \"user\" role",
            ));
        }
        if role == prev_role {
            return Err(invalid("messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"".to_string() + role + "\" roles in a row"));
        }
        prev_role = role;
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(b) => b.clone(),
            _ => {
                return Err(invalid(format!(
                    "messages.{i}.content: Input should be a valid string or list"
                )))
            }
        };
        let mut text = Vec::new();
        let mut results = Vec::new();
        let mut uses = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let at = format!("messages.{i}.content.{j}");
            match (b["type"].as_str(), role) {
                (Some("text"), _) => match b["text"].as_str() {
                    Some(t) if !t.is_empty() => text.push(t.to_string()),
                    _ => {
                        return Err(invalid(format!(
                            "{at}.text: text content blocks must be non-empty"
                        )))
                    }
                },
                (Some("image"), "user") => validate_image(&b["source"], &at)?,
                (Some("tool_use"), "assistant") => {
                    let id = b["id"].as_str().unwrap_or_default();
                    if id.is_empty() || !valid_tool_name(b["name"].as_str().unwrap_or_default()) {
                        return Err(invalid(format!(
                            "{at}.tool_use: id and a valid name are required"
                        )));
                    }
                    if !b["input"].is_object() {
                        return Err(invalid(format!(
                            "{at}.tool_use.input: Input should be a valid dictionary"
                        )));
                    }
                    uses.push(id.to_string());
                }
                (Some("tool_result"), "user") => {
                    let id = b["tool_use_id"].as_str().unwrap_or_default();
                    if !pending_tool_ids.iter().any(|p| p == id) {
                        return Err(invalid(format!("{at}: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")));
                    }
                    results.push((id.to_string(), reply::content_text(Some(&b["content"]))));
                }
                (Some(t), _) => {
                    return Err(invalid(format!(
                        "{at}: block type '{t}' is not allowed in a {role} message"
                    )))
                }
                (None, _) => return Err(invalid(format!("{at}.type: Field required"))),
            }
        }
        if role == "user" {
            let missing: Vec<&String> = pending_tool_ids
                .iter()
                .filter(|p| !results.iter().any(|(id, _)| id == *p))
                .collect();
            if !missing.is_empty() {
                return Err(invalid(format!("messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))));
            }
        }
        pending_tool_ids = uses;
        if !results.is_empty() {
            let content: Vec<String> = results.into_iter().map(|(_, c)| c).collect();
            out.push(json!({"role": "tool", "content": content.join(" ")}));
        }
        if !text.is_empty() || out.last().is_none_or(|l| l["role"] != "tool") || role == "assistant"
        {
            out.push(json!({"role": role, "content": text.join(" ")}));
        }
    }
    // Like Anthropic: a prefill the model is to continue may not end in whitespace.
    let last = out.last().filter(|l| l["role"] == "assistant");
    if last
        .and_then(|l| l["content"].as_str())
        .is_some_and(|t| t.ends_with(char::is_whitespace))
    {
        return Err(invalid(
            "messages: final assistant content cannot end with trailing whitespace",
        ));
    }
    Ok(out)
}

fn validate_image(source: &Value, at: &str) -> Result<(), ApiError> {
    match source["type"].as_str() {
        Some("base64") => {
            let mt = source["media_type"].as_str().unwrap_or_default();
            if !["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&mt) {
                return Err(invalid(format!("{at}.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")));
            }
            if source["data"].as_str().is_none_or(str::is_empty) {
                return Err(invalid(format!(
                    "{at}.image.source.base64.data: Field required"
                )));
            }
            Ok(())
        }
        Some("url")
            if source["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://") || u.starts_with("http://")) =>
        {
            Ok(())
        }
        _ => Err(invalid(format!(
            "{at}.image.source: Input tag does not match 'base64' or 'url'"
        ))),
    }
}
