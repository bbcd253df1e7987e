//! The OpenAI Responses API's JSON, to and from the canonical model.
//!
//! Input items (`message`, `function_call`, `function_call_output`, and the
//! short `{"role","content"}` form) become canonical messages; a canonical
//! response becomes output items (`message` with `output_text`, and
//! `function_call` with both its item `id` (`fc_…`) and the `call_id` that a
//! `function_call_output` must echo).

use crate::error::ApiError;
use anycloud_types::{
    ChatResponse, ContentBlock, FinishReason, ImageSource, Message, ResponseFormat, Role, Tool,
    ToolChoice, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Deserialize)]
pub struct CreateResponse {
    pub model: String,
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub text: Option<Value>,
    #[serde(default)]
    pub user: Option<String>,
    /// Passed to OpenAI and Azure OpenAI (README "Prompt caching").
    #[serde(default)]
    pub prompt_cache_key: Option<String>,
}

fn bad(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::invalid(message, Some(param))
}

/// Input items as given (string input becomes one user message item), with
/// ids added where missing, for `input_items` listing.
pub fn normalise_input(input: Option<Value>, id_seed: &str) -> Result<Vec<Value>, ApiError> {
    let items = match input {
        None => return Err(bad("Missing required parameter: 'input'.", "input")),
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Err(bad("'input' must not be empty.", "input")),
        Some(_) => {
            return Err(bad(
                "'input' must be a string or an array of items.",
                "input",
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, mut item) in items.into_iter().enumerate() {
        let Some(obj) = item.as_object_mut() else {
            return Err(bad(
                format!("input[{i}] must be an object."),
                &format!("input[{i}]"),
            ));
        };
        if !obj.contains_key("type") && obj.contains_key("role") {
            obj.insert("type".into(), json!("message"));
        }
        if !obj.contains_key("id") {
            obj.insert("id".into(), json!(format!("item_{id_seed}_{i}")));
        }
        out.push(item);
    }
    Ok(out)
}

fn role_of(s: &str, i: usize) -> Result<Role, ApiError> {
    Ok(match s {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" => Role::System,
        "developer" => Role::Developer,
        other => {
            return Err(bad(
                format!("Invalid role '{other}' in input[{i}]: expected user, assistant, system or developer."),
                &format!("input[{i}].role"),
            ))
        }
    })
}

fn parts(content: &Value, i: usize) -> Result<Vec<ContentBlock>, ApiError> {
    match content {
        Value::String(s) => Ok(vec![ContentBlock::text(s.clone())]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let at = format!("input[{i}].content[{j}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text" | "text") => Ok(ContentBlock::text(
                        p.get("text").and_then(Value::as_str).unwrap_or_default(),
                    )),
                    Some("input_image") => {
                        let url = p.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                            bad("input_image needs an 'image_url' (https or data URL).", &at)
                        })?;
                        Ok(ContentBlock::Image {
                            source: ImageSource::from_url_or_data(url),
                            detail: p.get("detail").and_then(Value::as_str).map(str::to_string),
                        })
                    }
                    Some("refusal") => Ok(ContentBlock::text(
                        p.get("refusal").and_then(Value::as_str).unwrap_or_default(),
                    )),
                    other => Err(bad(
                        format!("Unsupported content part type {other:?}."),
                        &format!("{at}.type"),
                    )),
                }
            })
            .collect(),
        _ => Err(bad(
            "'content' must be a string or an array of parts.",
            &format!("input[{i}].content"),
        )),
    }
}

/// Input items → canonical messages, merging a turn's function calls into one
/// assistant message (as chat-shaped clouds require).
pub fn items_to_messages(items: &[Value]) -> Result<Vec<Message>, ApiError> {
    let mut out: Vec<Message> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "message" => {
                let role = role_of(item.get("role").and_then(Value::as_str).unwrap_or(""), i)?;
                let content = parts(item.get("content").unwrap_or(&Value::Null), i)?;
                out.push(Message {
                    role,
                    content,
                    name: None,
                });
            }
            "function_call" => {
                let field = |k: &str| {
                    item.get(k)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            bad(
                                format!("function_call needs '{k}'."),
                                &format!("input[{i}].{k}"),
                            )
                        })
                };
                let block = ContentBlock::ToolUse {
                    id: field("call_id")?,
                    name: field("name")?,
                    arguments: field("arguments")?,
                };
                match out.last_mut() {
                    Some(m) if m.role == Role::Assistant => m.content.push(block),
                    _ => out.push(Message {
                        role: Role::Assistant,
                        content: vec![block],
                        name: None,
                    }),
                }
            }
            "function_call_output" => {
                let call_id = item.get("call_id").and_then(Value::as_str).ok_or_else(|| {
                    bad(
                        "function_call_output needs 'call_id'.",
                        &format!("input[{i}].call_id"),
                    )
                })?;
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                out.push(Message {
                    role: Role::Tool,
                    content: vec![ContentBlock::ToolResult {
                        tool_use_id: call_id.to_string(),
                        content: vec![ContentBlock::text(output)],
                        is_error: false,
                    }],
                    name: None,
                });
            }
            other => {
                return Err(bad(
                    format!("Unsupported input item type '{other}'."),
                    &format!("input[{i}].type"),
                ))
            }
        }
    }
    Ok(out)
}

/// Flat Responses tools (`{"type":"function","name",…}`) → canonical tools.
pub fn tools(tools: &[Value]) -> Result<Vec<Tool>, ApiError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(bad(
                    "Only function tools are supported by this gateway.",
                    &format!("tools[{i}].type"),
                ));
            }
            let name = t
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            Ok(Tool {
                name: name
                    .ok_or_else(|| {
                        bad(
                            "A function tool needs a 'name'.",
                            &format!("tools[{i}].name"),
                        )
                    })?
                    .to_string(),
                description: t
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                parameters: t
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                strict: t.get("strict").and_then(Value::as_bool),
            })
        })
        .collect()
}

pub fn tool_choice(v: &Value, tools: &[Tool]) -> Result<ToolChoice, ApiError> {
    let choice = match v {
        Value::String(s) if s == "auto" => ToolChoice::Auto,
        Value::String(s) if s == "none" => ToolChoice::None,
        Value::String(s) if s == "required" => ToolChoice::Required,
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
            if !tools.iter().any(|t| t.name == name) {
                return Err(bad(
                    format!("tool_choice names `{name}`, which is not in `tools`."),
                    "tool_choice",
                ));
            }
            ToolChoice::Tool(name.to_string())
        }
        _ => return Err(bad("Invalid 'tool_choice'.", "tool_choice")),
    };
    Ok(choice)
}

/// `text.format` → canonical response format.
pub fn text_format(text: &Value) -> Result<Option<ResponseFormat>, ApiError> {
    let Some(format) = text.get("format") else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => Ok(Some(ResponseFormat::JsonSchema {
            name: format
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("response")
                .to_string(),
            schema: format.get("schema").cloned().ok_or_else(|| {
                bad(
                    "text.format json_schema needs a 'schema'.",
                    "text.format.schema",
                )
            })?,
            strict: format.get("strict").and_then(Value::as_bool),
            description: format
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
        })),
        Some(other) => Err(bad(
            format!("Unsupported text.format type '{other}'."),
            "text.format.type",
        )),
    }
}

/// Canonical output → Responses output items. Ids are derived from the
/// response id so they are stable across retrieval.
pub fn output_items(r: &ChatResponse, resp_id: &str) -> Vec<Value> {
    let suffix = resp_id.trim_start_matches("resp_");
    let mut items = Vec::new();
    if let Some(text) = r.text() {
        items.push(message_item(&format!("msg_{suffix}"), &text, "completed"));
    }
    let mut n = 0;
    for b in &r.content {
        if let ContentBlock::ToolUse {
            id,
            name,
            arguments,
        } = b
        {
            items.push(function_call_item(
                &format!("fc_{suffix}_{n}"),
                id,
                name,
                arguments,
                "completed",
            ));
            n += 1;
        }
    }
    items
}

pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

pub fn function_call_item(
    id: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
           "arguments": arguments, "status": status})
}

pub fn usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_input_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total(),
    })
}

/// `(status, incomplete_details)` for a finish reason.
pub fn status_of(reason: Option<FinishReason>) -> (&'static str, Value) {
    match reason {
        Some(FinishReason::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(FinishReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The parts of a response object that echo the request.
#[derive(Debug, Clone, Serialize)]
pub struct Echo {
    pub model: String,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub previous_response_id: Option<String>,
    pub store: bool,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub text: Value,
    pub metadata: Map<String, Value>,
    pub user: Option<String>,
}

pub fn response_object(
    id: &str,
    created_at: i64,
    echo: &Echo,
    status: &str,
    incomplete: Value,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "model": echo.model,
        "output": output,
        "parallel_tool_calls": echo.parallel_tool_calls,
        "previous_response_id": echo.previous_response_id,
        "reasoning": {"effort": null, "summary": null},
        "store": echo.store,
        "temperature": echo.temperature.unwrap_or(1.0),
        "text": echo.text,
        "tool_choice": echo.tool_choice,
        "tools": echo.tools,
        "top_p": echo.top_p.unwrap_or(1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": echo.user,
        "metadata": echo.metadata,
    })
}

/// The assistant turn as canonical messages, to append to the stored
/// conversation.
pub fn assistant_message(r: &ChatResponse) -> Message {
    Message {
        role: Role::Assistant,
        content: r.content.clone(),
        name: None,
    }
}
