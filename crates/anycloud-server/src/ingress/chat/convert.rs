//! A client's Chat Completions request → canonical, and the canonical answer →
//! the client's response. `request_from_wire` validates what OpenAI validates
//! and names the offending field in `param`, so clients get the error they would
//! get from OpenAI. The wire types are `anycloud_providers::openai::wire`, the
//! same an OpenAI-shaped cloud speaks; the cloud-facing direction is
//! `anycloud_providers::openai::convert`.
//!
//! No I/O here; unit-tested in `convert_tests.rs`.

use crate::ingress::invalid::{each, InvalidRequest};
use anycloud_providers::openai::wire::*;
use anycloud_types::{
    ChatRequest, ChatResponse, ContentBlock, ImageSource, Message, ResponseFormat, Role,
    SamplingParams, Tool, ToolChoice, Usage,
};
use serde_json::json;

pub fn usage_to_wire(u: &Usage) -> UsageWire {
    UsageWire {
        prompt_tokens: u.input_tokens,
        completion_tokens: u.output_tokens,
        total_tokens: u.total(),
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(u.cached_input_tokens),
        }),
        completion_tokens_details: Some(CompletionTokensDetails {
            reasoning_tokens: Some(u.reasoning_tokens),
        }),
    }
}

/// Parses and validates a client's Chat Completions request.
pub fn request_from_wire(w: ChatCompletionRequest) -> Result<ChatRequest, InvalidRequest> {
    if w.messages.is_empty() {
        return Err(InvalidRequest::new(
            "'messages' must contain at least one message.",
            "messages",
        ));
    }
    let stream = w.stream.unwrap_or(false);
    check_params(&w, stream)?;
    let messages = each(w.messages, message_from_wire)?;
    let tools = each(w.tools.unwrap_or_default(), tool_from_wire)?;
    let tool_choice = w.tool_choice.map(tool_choice_from_wire).transpose()?;
    match &tool_choice {
        Some(ToolChoice::Tool(name)) if !tools.iter().any(|t| &t.name == name) => {
            return Err(InvalidRequest::new(
                format!(
                    "Invalid 'tool_choice': function `{name}` is not one of the provided `tools`."
                ),
                "tool_choice",
            ));
        }
        Some(ToolChoice::Required) if tools.is_empty() => {
            return Err(InvalidRequest::new(
                "Invalid 'tool_choice': `required` needs at least one entry in `tools`.",
                "tool_choice",
            ));
        }
        _ => {}
    }
    let response_format = w
        .response_format
        .map(response_format_from_wire)
        .transpose()?;
    let stop = w.stop.map(StopWire::into_vec).unwrap_or_default();
    Ok(ChatRequest {
        model: w.model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: w.parallel_tool_calls,
        response_format,
        params: SamplingParams {
            temperature: w.temperature,
            top_p: w.top_p,
            max_tokens: w.max_completion_tokens.or(w.max_tokens),
            stop,
            seed: w.seed,
            presence_penalty: w.presence_penalty,
            frequency_penalty: w.frequency_penalty,
            top_k: None,
        },
        user: w.user,
        stream,
        cache: anycloud_types::PromptCache {
            breakpoints: Vec::new(),
            key: w.prompt_cache_key,
        },
    })
}

fn check_range(v: Option<f64>, lo: f64, hi: f64, param: &str) -> Result<(), InvalidRequest> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(InvalidRequest::new(
            format!("Invalid '{param}': {x} is not between {lo} and {hi}."),
            param,
        )),
        _ => Ok(()),
    }
}

fn check_params(w: &ChatCompletionRequest, stream: bool) -> Result<(), InvalidRequest> {
    check_range(w.temperature, 0.0, 2.0, "temperature")?;
    check_range(w.top_p, 0.0, 1.0, "top_p")?;
    check_range(w.presence_penalty, -2.0, 2.0, "presence_penalty")?;
    check_range(w.frequency_penalty, -2.0, 2.0, "frequency_penalty")?;
    if matches!(w.n, Some(n) if n != 1) {
        return Err(InvalidRequest::new(
            "Only n=1 is supported by this gateway.",
            "n",
        ));
    }
    if let Some(StopWire::Many(v)) = &w.stop {
        if v.len() > 4 {
            return Err(InvalidRequest::new(
                "Invalid 'stop': at most 4 stop sequences are allowed.",
                "stop",
            ));
        }
    }
    if w.stream_options.is_some() && !stream {
        return Err(InvalidRequest::new(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        ));
    }
    for (field, v) in [
        ("max_tokens", w.max_tokens),
        ("max_completion_tokens", w.max_completion_tokens),
    ] {
        if v == Some(0) {
            return Err(InvalidRequest::new(
                format!("Invalid '{field}': must be at least 1."),
                field,
            ));
        }
    }
    Ok(())
}

fn message_from_wire(i: usize, m: ChatMessage) -> Result<Message, InvalidRequest> {
    let role = match m.role.as_str() {
        "system" => Role::System,
        "developer" => Role::Developer,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(InvalidRequest::new(
                format!(
                    "Invalid value: '{other}'. Supported values are: 'system', 'developer', 'user', 'assistant', and 'tool'."
                ),
                format!("messages[{i}].role"),
            ))
        }
    };
    let content_param = format!("messages[{i}].content");
    let blocks = match m.content {
        Some(c) => content_from_wire(c, role, &content_param)?,
        None if role == Role::Assistant => Vec::new(),
        None => {
            return Err(InvalidRequest::new(
                format!("Missing required parameter: '{content_param}'."),
                content_param,
            ))
        }
    };
    let content = match role {
        Role::Tool => {
            let Some(id) = m.tool_call_id.filter(|id| !id.is_empty()) else {
                return Err(InvalidRequest::new(
                    format!("Missing required parameter: 'messages[{i}].tool_call_id'."),
                    format!("messages[{i}].tool_call_id"),
                ));
            };
            vec![ContentBlock::ToolResult {
                tool_use_id: id,
                content: blocks,
                is_error: false,
            }]
        }
        Role::Assistant => {
            let mut blocks = blocks;
            if blocks.is_empty() {
                if let Some(refusal) = m.refusal.filter(|r| !r.is_empty()) {
                    blocks.push(ContentBlock::Text { text: refusal });
                }
            }
            let calls = m.tool_calls.unwrap_or_default();
            if blocks.is_empty() && calls.is_empty() {
                return Err(InvalidRequest::new(
                    format!("Missing required parameter: '{content_param}'."),
                    content_param,
                ));
            }
            for (j, call) in calls.into_iter().enumerate() {
                if call.kind != "function" {
                    return Err(InvalidRequest::new(
                        format!(
                            "Invalid value: '{}'. Supported values are: 'function'.",
                            call.kind
                        ),
                        format!("messages[{i}].tool_calls[{j}].type"),
                    ));
                }
                blocks.push(ContentBlock::ToolUse {
                    id: call.id,
                    name: call.function.name,
                    arguments: call.function.arguments,
                });
            }
            blocks
        }
        _ => blocks,
    };
    Ok(Message {
        role,
        content,
        name: m.name,
    })
}

fn content_from_wire(
    c: MessageContent,
    role: Role,
    param: &str,
) -> Result<Vec<ContentBlock>, InvalidRequest> {
    match c {
        MessageContent::Text(text) => Ok(vec![ContentBlock::Text { text }]),
        MessageContent::Parts(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(j, p)| match p {
                ContentPart::Text { text } => Ok(ContentBlock::Text { text }),
                ContentPart::ImageUrl { image_url } if role == Role::User => {
                    Ok(ContentBlock::Image {
                        source: ImageSource::from_url_or_data(&image_url.url),
                        detail: image_url.detail,
                    })
                }
                ContentPart::ImageUrl { .. } => Err(InvalidRequest::new(
                    format!(
                        "Image content parts are only allowed in user messages ('{param}[{j}]')."
                    ),
                    format!("{param}[{j}].type"),
                )),
            })
            .collect(),
    }
}

fn tool_from_wire(i: usize, t: ToolDef) -> Result<Tool, InvalidRequest> {
    if t.kind != "function" {
        return Err(InvalidRequest::new(
            format!(
                "Invalid value: '{}'. Supported values are: 'function'.",
                t.kind
            ),
            format!("tools[{i}].type"),
        ));
    }
    if t.function.name.is_empty() {
        return Err(InvalidRequest::new(
            "Tool function names must be non-empty.",
            format!("tools[{i}].function.name"),
        ));
    }
    Ok(Tool {
        name: t.function.name,
        description: t.function.description,
        parameters: t
            .function
            .parameters
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        strict: t.function.strict,
    })
}

fn tool_choice_from_wire(c: ToolChoiceWire) -> Result<ToolChoice, InvalidRequest> {
    match c {
        ToolChoiceWire::Mode(m) => match m.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(InvalidRequest::new(
                format!("Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."),
                "tool_choice",
            )),
        },
        ToolChoiceWire::Named(n) if n.kind == "function" && !n.function.name.is_empty() => {
            Ok(ToolChoice::Tool(n.function.name))
        }
        ToolChoiceWire::Named(_) => Err(InvalidRequest::new(
            "Invalid 'tool_choice': expected {\"type\": \"function\", \"function\": {\"name\": ...}}.",
            "tool_choice",
        )),
    }
}

fn response_format_from_wire(f: ResponseFormatWire) -> Result<ResponseFormat, InvalidRequest> {
    Ok(match f {
        ResponseFormatWire::Text => ResponseFormat::Text,
        ResponseFormatWire::JsonObject => ResponseFormat::JsonObject,
        ResponseFormatWire::JsonSchema { json_schema } => {
            if json_schema.name.is_empty() {
                return Err(InvalidRequest::new(
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    "response_format.json_schema.name",
                ));
            }
            let Some(schema) = json_schema.schema else {
                return Err(InvalidRequest::new(
                    "Missing required parameter: 'response_format.json_schema.schema'.",
                    "response_format.json_schema.schema",
                ));
            };
            ResponseFormat::JsonSchema {
                name: json_schema.name,
                schema,
                strict: json_schema.strict,
                description: json_schema.description,
            }
        }
    })
}

/// The client-facing response. `content` is null when the answer is only tool
/// calls; `tool_calls` is omitted when there are none.
pub fn response_to_wire(
    r: &ChatResponse,
    public_model: &str,
    id: &str,
    created: i64,
) -> ChatCompletionResponse {
    let text = r.text();
    let calls: Vec<ToolCall> = r
        .content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::ToolUse {
                id,
                name,
                arguments,
            } => Some(ToolCall {
                id: id.clone(),
                kind: function_type(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: arguments.clone(),
                },
            }),
            _ => None,
        })
        .collect();
    let content = match text {
        Some(t) => Some(t),
        None if calls.is_empty() => Some(String::new()),
        None => None,
    };
    ChatCompletionResponse {
        id: id.to_string(),
        object: "chat.completion".into(),
        created,
        model: public_model.to_string(),
        system_fingerprint: r.system_fingerprint.clone(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".into(),
                content,
                refusal: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
            },
            logprobs: None,
            finish_reason: Some(r.finish_reason.as_openai().to_string()),
        }],
        usage: Some(usage_to_wire(&r.usage)),
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
