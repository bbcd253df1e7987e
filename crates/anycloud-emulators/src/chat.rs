//! Chat Completions shared by the OpenAI-compatible and Azure OpenAI emulators: request
//! validation as strict as OpenAI's, the non-streaming body and the SSE event sequence
//! (provider-wire-formats §1.2, §2.3, §8).

use serde_json::{json, Map, Value};

use crate::reply::{self, ChatInput, Reply, ReplyBody};

/// Which cloud's body annotations to add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    OpenAi,
    Azure,
}

/// An OpenAI-shaped error: `{"error":{"message","type","param","code"}}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>, code: Option<&str>) -> Self {
        Self {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: code.map(str::to_string),
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind,
            "param": self.param, "code": self.code}})
    }
}

/// A validated chat request.
#[derive(Debug, Clone)]
pub(crate) struct ChatParams {
    /// The body `model` (empty when absent and not required).
    pub model: String,
    pub messages: Vec<Value>,
    pub tools: Vec<Value>,
    pub tool_choice: Option<Value>,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<u64>,
    pub json_mode: bool,
}

impl ChatParams {
    pub fn input<'a>(&'a self, cloud: &'a str, model: &'a str) -> ChatInput<'a> {
        ChatInput {
            cloud,
            model,
            messages: &self.messages,
            tools: &self.tools,
            tool_choice: self.tool_choice.as_ref(),
            max_tokens: self.max_tokens,
            json_mode: self.json_mode,
            prefill: false,
        }
    }

    /// Concatenated text of every user message (for content-filter checks).
    pub fn user_text(&self) -> String {
        self.messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| reply::content_text(m.get("content")))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Parse a request body as a JSON object (OpenAI's wording for malformed bodies).
pub(crate) fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::invalid(
            "Invalid type for request body: expected an object.",
            None,
            Some("invalid_type"),
        )),
        Err(_) => Err(ApiError::invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            None,
            None,
        )),
    }
}

fn type_error(param: &str, expected: &str) -> ApiError {
    ApiError::invalid(
        format!("Invalid type for '{param}': expected {expected}."),
        Some(param),
        Some("invalid_type"),
    )
}

fn opt_bool(body: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(type_error(key, "a boolean")),
    }
}

fn opt_positive_int(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(Some(n)),
            Some(_) => Err(ApiError::invalid(
                format!("Invalid '{key}': integer below minimum value. Expected a value >= 1, but got {v} instead."),
                Some(key),
                Some("integer_below_min_value"),
            )),
            None => Err(type_error(key, "an integer")),
        },
    }
}

/// Validate a chat request body. `model_required` is false on Azure's classic URL style,
/// where the deployment in the path decides and the body `model` is ignored.
pub(crate) fn validate(
    body: &Map<String, Value>,
    model_required: bool,
) -> Result<ChatParams, ApiError> {
    let model = match body.get("model") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(Value::Null) if !model_required => String::new(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "you must provide a model parameter",
                Some("model"),
                None,
            ))
        }
        Some(_) if !model_required => String::new(),
        Some(_) => return Err(type_error("model", "a string")),
    };
    let messages = match body.get("messages") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "Missing required parameter: 'messages'.",
                Some("messages"),
                Some("missing_required_parameter"),
            ))
        }
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ApiError::invalid(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                Some("messages"),
                Some("empty_array"),
            ))
        }
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(type_error("messages", "an array")),
    };
    validate_messages(&messages)?;

    let tools = match body.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(type_error("tools", "an array")),
    };
    for (i, t) in tools.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(ApiError::invalid(
                format!("Invalid value for 'tools[{i}].type': expected 'function'."),
                Some(&format!("tools[{i}].type")),
                Some("invalid_value"),
            ));
        }
        let name = t
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(ApiError::invalid(
                format!("Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."),
                Some(&format!("tools[{i}].function.name")),
                Some("invalid_value"),
            ));
        }
    }
    let tool_choice = body.get("tool_choice").filter(|v| !v.is_null()).cloned();
    if let Some(tc) = &tool_choice {
        validate_tool_choice(tc, &tools)?;
    }

    let stream = opt_bool(body, "stream")?;
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(_) if !stream => {
            return Err(ApiError::invalid(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                Some("stream_options"),
                Some("invalid_value"),
            ))
        }
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(type_error("stream_options.include_usage", "a boolean")),
        },
        Some(_) => return Err(type_error("stream_options", "an object")),
    };

    match body.get("n") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64() == Some(1) => {}
        Some(v) if v.as_u64().is_some() => {
            return Err(ApiError::invalid(
                format!("Invalid 'n': this emulator supports only n = 1, got {v}."),
                Some("n"),
                Some("invalid_value"),
            ))
        }
        Some(_) => return Err(type_error("n", "an integer")),
    }
    if let Some(v) = body.get("temperature").filter(|v| !v.is_null()) {
        let t = v
            .as_f64()
            .ok_or_else(|| type_error("temperature", "a number"))?;
        if !(0.0..=2.0).contains(&t) {
            let (dir, code) = if t < 0.0 {
                (
                    "below minimum value. Expected a value >= 0",
                    "decimal_below_min_value",
                )
            } else {
                (
                    "above maximum value. Expected a value <= 2",
                    "decimal_above_max_value",
                )
            };
            return Err(ApiError::invalid(
                format!("Invalid 'temperature': decimal {dir}, but got {v} instead."),
                Some("temperature"),
                Some(code),
            ));
        }
    }
    let max_tokens = match opt_positive_int(body, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => opt_positive_int(body, "max_tokens")?,
    };
    let json_mode = match body.get("response_format") {
        None | Some(Value::Null) => false,
        Some(rf) => match rf.get("type").and_then(Value::as_str) {
            Some("text") => false,
            Some("json_object") | Some("json_schema") => true,
            _ => {
                return Err(ApiError::invalid(
                    "Invalid value for 'response_format.type': expected one of 'text', 'json_object', 'json_schema'.",
                    Some("response_format.type"),
                    Some("invalid_value"),
                ))
            }
        },
    };
    Ok(ChatParams {
        model,
        messages,
        tools,
        tool_choice,
        stream,
        include_usage,
        max_tokens,
        json_mode,
    })
}

fn validate_tool_choice(tc: &Value, tools: &[Value]) -> Result<(), ApiError> {
    let bad = || {
        ApiError::invalid(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a named function.",
            Some("tool_choice"),
            Some("invalid_value"),
        )
    };
    match tc {
        Value::String(s) if s == "none" => Ok(()),
        Value::String(s) if s == "auto" || s == "required" => {
            if tools.is_empty() {
                Err(ApiError::invalid(
                    "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                    Some("tool_choice"),
                    None,
                ))
            } else {
                Ok(())
            }
        }
        Value::Object(_) => {
            let name = tc
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            if tools
                .iter()
                .any(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name))
            {
                Ok(())
            } else {
                Err(ApiError::invalid(
                    format!("Invalid value for 'tool_choice': function '{name}' is not among the provided tools."),
                    Some("tool_choice"),
                    Some("invalid_value"),
                ))
            }
        }
        _ => Err(bad()),
    }
}

fn validate_messages(messages: &[Value]) -> Result<(), ApiError> {
    // Tool-call ids announced by assistant messages and not yet answered.
    let mut pending: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let Some(obj) = m.as_object() else {
            return Err(type_error(&format!("messages[{i}]"), "an object"));
        };
        let role = match obj.get("role") {
            Some(Value::String(r)) => r.as_str(),
            _ => {
                return Err(ApiError::invalid(
                    format!("Missing required parameter: 'messages[{i}].role'."),
                    Some(&format!("messages[{i}].role")),
                    Some("missing_required_parameter"),
                ))
            }
        };
        if role != "tool" && !pending.is_empty() {
            return Err(ApiError::invalid(
                format!("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}", pending.join(", ")),
                Some(&format!("messages.[{i}].role")),
                None,
            ));
        }
        let content = obj.get("content");
        let content_ok = matches!(content, Some(Value::String(_)) | Some(Value::Array(_)));
        match role {
            "system" | "developer" | "user" => {
                if !content_ok {
                    return Err(ApiError::invalid(
                        format!("Missing required parameter: 'messages[{i}].content'."),
                        Some(&format!("messages[{i}].content")),
                        Some("missing_required_parameter"),
                    ));
                }
            }
            "assistant" => {
                let calls = match obj.get("tool_calls") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a.clone(),
                    Some(_) => return Err(type_error(&format!("messages[{i}].tool_calls"), "an array")),
                };
                if calls.is_empty() && !content_ok {
                    return Err(ApiError::invalid(
                        format!("Invalid value for 'messages[{i}].content': an assistant message needs 'content' or 'tool_calls'."),
                        Some(&format!("messages[{i}].content")),
                        None,
                    ));
                }
                for (j, c) in calls.iter().enumerate() {
                    let id = c.get("id").and_then(Value::as_str);
                    let args = c.pointer("/function/arguments");
                    let name = c.pointer("/function/name").and_then(Value::as_str);
                    match (id, name, args) {
                        (Some(id), Some(_), Some(Value::String(_))) => pending.push(id.to_string()),
                        (_, _, Some(a)) if !a.is_string() => {
                            return Err(type_error(
                                &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                                "a string",
                            ))
                        }
                        _ => {
                            return Err(ApiError::invalid(
                                format!("Missing required parameter: 'messages[{i}].tool_calls[{j}]' needs 'id', 'function.name' and 'function.arguments'."),
                                Some(&format!("messages[{i}].tool_calls[{j}]")),
                                Some("missing_required_parameter"),
                            ))
                        }
                    }
                }
            }
            "tool" => {
                let id = obj.get("tool_call_id").and_then(Value::as_str);
                match id.and_then(|id| pending.iter().position(|p| p == id)) {
                    Some(pos) => {
                        pending.remove(pos);
                    }
                    None => {
                        return Err(ApiError::invalid(
                            "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                            Some(&format!("messages.[{i}].role")),
                            None,
                        ))
                    }
                }
                if !content_ok {
                    return Err(ApiError::invalid(
                        format!("Missing required parameter: 'messages[{i}].content'."),
                        Some(&format!("messages[{i}].content")),
                        Some("missing_required_parameter"),
                    ));
                }
            }
            other => {
                return Err(ApiError::invalid(
                    format!("Invalid value: '{other}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'."),
                    Some(&format!("messages[{i}].role")),
                    Some("invalid_value"),
                ))
            }
        }
    }
    Ok(())
}

/// Identity of one completion: shared by the body and every chunk.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub id: String,
    pub created: u64,
    /// `model` as reported in the response.
    pub model: String,
    pub flavor: Flavor,
}

/// OpenAI's and Azure OpenAI's automatic prompt caching: `reply`'s cached tokens are the
/// longest prefix of this prompt a recent one on this deployment already had (from 1024
/// tokens, in 128-token increments), `prompt_cache_key` keeping caches apart.
pub(crate) fn account_implicit(
    shared: &crate::Shared,
    input: &crate::reply::ChatInput<'_>,
    body: &Map<String, Value>,
    reply: &mut Reply,
) {
    let key = body.get("prompt_cache_key").and_then(Value::as_str);
    let prefixes =
        crate::prompt_cache::implicit_prefixes(input.model, key, input.tools, input.messages);
    let hit = shared
        .prompt_cache
        .implicit(&prefixes, crate::prompt_cache::Implicit::OPENAI);
    reply.cached_tokens = hit.min(reply.prompt_tokens);
}

pub(crate) fn usage_json(r: &Reply) -> Value {
    json!({"prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
        "total_tokens": r.prompt_tokens + r.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": r.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
}

fn safe() -> Value {
    json!({"filtered": false, "severity": "safe"})
}

/// Azure `prompt_filter_results` (all categories clean).
pub(crate) fn azure_prompt_filter_results() -> Value {
    json!([{"prompt_index": 0, "content_filter_results": {
        "hate": safe(), "jailbreak": {"filtered": false, "detected": false},
        "self_harm": safe(), "sexual": safe(), "violence": safe()}}])
}

/// Azure per-choice `content_filter_results` for generated text (all clean).
pub(crate) fn azure_choice_filter_results() -> Value {
    json!({"hate": safe(),
        "protected_material_code": {"filtered": false, "detected": false},
        "protected_material_text": {"filtered": false, "detected": false},
        "self_harm": safe(), "sexual": safe(), "violence": safe()})
}

fn tool_call_json(c: &reply::ToolCall) -> Value {
    json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})
}

/// The non-streaming `chat.completion` body.
pub(crate) fn completion_body(meta: &Meta, r: &Reply) -> Value {
    let message = match &r.body {
        ReplyBody::Text(t) => json!({"role": "assistant", "content": t, "refusal": null}),
        ReplyBody::Tool(c) => json!({"role": "assistant", "content": null, "refusal": null,
            "tool_calls": [tool_call_json(c)]}),
    };
    let mut choice = json!({"index": 0, "message": message, "logprobs": null,
        "finish_reason": r.finish_reason});
    let mut body = json!({"id": meta.id, "object": "chat.completion", "created": meta.created,
        "model": meta.model, "system_fingerprint": "fp_emulator",
        "choices": [], "usage": usage_json(r)});
    if meta.flavor == Flavor::Azure {
        choice["content_filter_results"] = azure_choice_filter_results();
        body["prompt_filter_results"] = azure_prompt_filter_results();
    }
    body["choices"] = Value::Array(vec![choice]);
    body
}

/// The SSE events (JSON texts, then `[DONE]`) of a streamed completion.
pub(crate) fn stream_events(meta: &Meta, r: &Reply, include_usage: bool) -> Vec<String> {
    let azure = meta.flavor == Flavor::Azure;
    let chunk = |choices: Vec<Value>| -> String {
        let mut c = json!({"id": meta.id, "object": "chat.completion.chunk", "created": meta.created,
            "model": meta.model, "system_fingerprint": "fp_emulator", "choices": choices});
        if include_usage {
            c["usage"] = Value::Null;
        }
        c.to_string()
    };
    let choice = |delta: Value, finish: Option<&str>, filter: Option<Value>| -> Value {
        let mut c = json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish});
        if azure {
            c["content_filter_results"] = filter.unwrap_or_else(|| json!({}));
        }
        c
    };
    let mut out = Vec::new();
    if azure {
        out.push(
            json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                "prompt_filter_results": azure_prompt_filter_results()})
            .to_string(),
        );
    }
    match &r.body {
        ReplyBody::Text(text) => {
            out.push(chunk(vec![choice(
                json!({"role": "assistant", "content": ""}),
                None,
                None,
            )]));
            for piece in text.split_inclusive(' ') {
                out.push(chunk(vec![choice(
                    json!({"content": piece}),
                    None,
                    Some(azure_choice_filter_results()),
                )]));
            }
        }
        ReplyBody::Tool(c) => {
            let first = json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                "id": c.id, "type": "function", "function": {"name": c.name, "arguments": ""}}]});
            out.push(chunk(vec![choice(first, None, None)]));
            let chars: Vec<char> = c.arguments.chars().collect();
            for piece in chars.chunks(8) {
                let piece: String = piece.iter().collect();
                out.push(chunk(vec![choice(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    None,
                    None,
                )]));
            }
        }
    }
    out.push(chunk(vec![choice(json!({}), Some(r.finish_reason), None)]));
    if include_usage {
        let c = json!({"id": meta.id, "object": "chat.completion.chunk", "created": meta.created,
            "model": meta.model, "system_fingerprint": "fp_emulator", "choices": [], "usage": usage_json(r)});
        out.push(c.to_string());
    }
    out.push("[DONE]".to_string());
    out
}
