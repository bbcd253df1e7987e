//! Pure translations between the canonical model and OCI GENERIC-format JSON
//! (provider-wire-formats §6.3–6.6), plus OCI error bodies to
//! [`ProviderError`]. No I/O; unit-tested in `convert_tests.rs`.

use super::wire::*;
use crate::error::{retry_after, ProviderError, ProviderErrorKind};
use anycloud_types::{
    ChatRequest, ChatResponse, ContentBlock, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse,
    FinishReason, Message, ResponseFormat, Role, ToolChoice, Usage,
};
use serde_json::json;

/// Prefix of a dedicated AI cluster endpoint's OCID.
pub const DEDICATED_ENDPOINT_PREFIX: &str = "ocid1.generativeaiendpoint";

/// Dedicated when the target is an endpoint OCID, else on-demand by model
/// name (or model OCID).
pub fn serving_mode(target: &str) -> ServingMode {
    if target.starts_with(DEDICATED_ENDPOINT_PREFIX) {
        ServingMode::Dedicated {
            endpoint_id: target.to_string(),
        }
    } else {
        ServingMode::OnDemand {
            model_id: target.to_string(),
        }
    }
}

fn unsupported(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Unsupported, message)
}

/// The chat body for `req`; `stream` decides `isStream` (and asks for usage).
pub fn chat_to_wire(
    req: &ChatRequest,
    target: &str,
    compartment_id: &str,
    stream: bool,
) -> Result<ChatDetails, ProviderError> {
    let p = &req.params;
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        messages.extend(message_to_wire(m)?);
    }
    let tools = (!req.tools.is_empty()).then(|| {
        req.tools
            .iter()
            .map(|t| ToolDef {
                kind: "FUNCTION".into(),
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: t.parameters.clone(),
            })
            .collect()
    });
    let tool_choice = req.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Auto => choice("AUTO", None),
        ToolChoice::None => choice("NONE", None),
        ToolChoice::Required => choice("REQUIRED", None),
        ToolChoice::Tool(name) => choice("FUNCTION", Some(name.clone())),
    });
    Ok(ChatDetails {
        compartment_id: compartment_id.to_string(),
        serving_mode: serving_mode(target),
        chat_request: GenericChatRequest {
            api_format: "GENERIC".into(),
            messages,
            max_tokens: p.max_tokens,
            temperature: p.temperature,
            top_p: p.top_p,
            top_k: p.top_k.map(i64::from),
            stop: (!p.stop.is_empty()).then(|| p.stop.clone()),
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            seed: p.seed,
            is_stream: stream,
            stream_options: stream.then_some(StreamOptions {
                is_include_usage: true,
            }),
            tools,
            tool_choice,
            is_parallel_tool_calls: req.parallel_tool_calls,
            response_format: req.response_format.as_ref().map(response_format_to_wire),
        },
    })
}

fn choice(kind: &str, name: Option<String>) -> ToolChoiceWire {
    ToolChoiceWire {
        kind: kind.into(),
        name,
    }
}

/// OCI SDK `ResponseFormat`: `TEXT`, `JSON_OBJECT`, or `JSON_SCHEMA` with
/// `jsonSchema: {name, description, schema, isStrict}`.
fn response_format_to_wire(f: &ResponseFormat) -> serde_json::Value {
    match f {
        ResponseFormat::Text => json!({"type": "TEXT"}),
        ResponseFormat::JsonObject => json!({"type": "JSON_OBJECT"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
            description,
        } => {
            let mut s = json!({"name": name, "schema": schema});
            if let Some(strict) = strict {
                s["isStrict"] = json!(strict);
            }
            if let Some(d) = description {
                s["description"] = json!(d);
            }
            json!({"type": "JSON_SCHEMA", "jsonSchema": s})
        }
    }
}

/// Text and image blocks as OCI content parts.
fn parts(blocks: &[ContentBlock], what: &str) -> Result<Vec<ContentPart>, ProviderError> {
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        match b {
            ContentBlock::Text { text } => out.push(ContentPart::Text { text: text.clone() }),
            ContentBlock::Image { source, detail } => out.push(ContentPart::Image {
                image_url: ImageUrl {
                    url: source.to_url_or_data(),
                    detail: detail.clone(),
                },
            }),
            ContentBlock::ToolUse { .. } | ContentBlock::ToolResult { .. } => {
                return Err(unsupported(format!(
                    "oci: a {what} cannot carry tool calls or tool results"
                )))
            }
        }
    }
    Ok(out)
}

/// One canonical message can become several: each tool result is its own
/// `TOOL` message with `toolCallId`, placed first.
fn message_to_wire(m: &Message) -> Result<Vec<MessageWire>, ProviderError> {
    let mut out = Vec::new();
    let mut rest = Vec::new();
    let mut calls = Vec::new();
    for b in &m.content {
        match b {
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                ..
            } => {
                if content
                    .iter()
                    .any(|c| !matches!(c, ContentBlock::Text { .. }))
                {
                    return Err(unsupported(
                        "oci: tool results can carry text only, not images",
                    ));
                }
                out.push(MessageWire {
                    role: "TOOL".into(),
                    content: Some(parts(content, "tool result")?),
                    tool_call_id: Some(tool_use_id.clone()),
                    ..MessageWire::default()
                });
            }
            ContentBlock::ToolUse {
                id,
                name,
                arguments,
            } => {
                if m.role != Role::Assistant {
                    return Err(unsupported("oci: only assistant messages carry tool calls"));
                }
                calls.push(ToolCallWire {
                    id: Some(id.clone()),
                    kind: Some("FUNCTION".into()),
                    name: Some(name.clone()),
                    arguments: Some(arguments.clone()),
                    function: None,
                });
            }
            other => rest.push(other.clone()),
        }
    }
    let role = match m.role {
        // DEVELOPER exists in GENERIC but not every hosted model accepts it;
        // SYSTEM means the same thing everywhere.
        Role::System | Role::Developer => "SYSTEM",
        Role::User => "USER",
        Role::Assistant => "ASSISTANT",
        Role::Tool => {
            if !rest.is_empty() {
                return Err(unsupported(
                    "oci: a tool message may only carry tool results",
                ));
            }
            return Ok(out);
        }
    };
    if !rest.is_empty() || !calls.is_empty() || out.is_empty() {
        let content = parts(&rest, "message")?;
        out.push(MessageWire {
            role: role.into(),
            content: (!content.is_empty() || calls.is_empty()).then_some(content),
            tool_calls: (!calls.is_empty()).then_some(calls),
            name: m.name.clone(),
            ..MessageWire::default()
        });
    }
    Ok(out)
}

/// OCI finish reasons come in several casings (§6.4): `stop`, `STOP`,
/// `COMPLETE`, `LENGTH`, `MAX_TOKENS`, `TOOL_CALLS`, `CONTENT_FILTER`.
pub fn finish_reason(s: &str) -> FinishReason {
    match s.to_ascii_lowercase().as_str() {
        "stop" | "complete" | "end_turn" | "stop_sequence" => FinishReason::Stop,
        "length" | "max_tokens" => FinishReason::Length,
        "tool_calls" | "tool_call" => FinishReason::ToolCalls,
        "content_filter" | "error_toxic" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

pub fn usage_from_wire(u: &UsageWire) -> Usage {
    Usage {
        input_tokens: u.prompt_tokens,
        output_tokens: u.completion_tokens,
        cached_input_tokens: u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        reasoning_tokens: u
            .completion_tokens_details
            .map_or(0, |d| d.reasoning_tokens),
    }
}

/// About four characters a token, like `ChatRequest::estimate_input_tokens`.
pub fn estimate_output_tokens(content: &[ContentBlock]) -> u64 {
    let chars: usize = content
        .iter()
        .map(|b| match b {
            ContentBlock::Text { text } => text.len(),
            ContentBlock::ToolUse {
                name, arguments, ..
            } => name.len() + arguments.len(),
            _ => 0,
        })
        .sum();
    (chars as u64).div_ceil(4)
}

/// Text and tool calls of an OCI message as canonical blocks.
pub fn message_blocks(m: &MessageWire, first_call_index: usize) -> Vec<ContentBlock> {
    let mut content = Vec::new();
    let text: String = m
        .content
        .iter()
        .flatten()
        .filter_map(|p| match p {
            ContentPart::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    if !text.is_empty() {
        content.push(ContentBlock::Text { text });
    }
    for (i, call) in m.tool_calls.iter().flatten().enumerate() {
        content.push(ContentBlock::ToolUse {
            id: call
                .id
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("call_{}", first_call_index + i)),
            name: call.name().unwrap_or_default().to_string(),
            arguments: call.arguments().unwrap_or("{}").to_string(),
        });
    }
    content
}

/// The canonical response. `id` is the `opc-request-id`; when the cloud
/// reports no usage it is estimated (about four characters a token) so that
/// metering never records a free call.
pub fn response_from_wire(
    w: ChatResult,
    id: String,
    target: &str,
    req: &ChatRequest,
) -> Result<ChatResponse, ProviderError> {
    let Some(choice) = w.chat_response.choices.into_iter().next() else {
        return Err(ProviderError::new(
            ProviderErrorKind::Protocol,
            "oci response has no choices",
        ));
    };
    let content = choice
        .message
        .as_ref()
        .map(|m| message_blocks(m, 0))
        .unwrap_or_default();
    let finish_reason = match choice.finish_reason.as_deref() {
        Some(r) => finish_reason(r),
        None if content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse { .. })) =>
        {
            FinishReason::ToolCalls
        }
        None => FinishReason::Stop,
    };
    let usage = match &w.chat_response.usage {
        Some(u) => usage_from_wire(u),
        None => Usage {
            input_tokens: req.estimate_input_tokens(),
            output_tokens: estimate_output_tokens(&content),
            ..Usage::default()
        },
    };
    Ok(ChatResponse {
        id,
        model: w.model_id.unwrap_or_else(|| target.to_string()),
        created: unix_now(),
        content,
        finish_reason,
        usage,
        system_fingerprint: None,
    })
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The embedText body. OCI has no `dimensions` parameter and takes text only.
pub fn embed_to_wire(
    req: &EmbeddingsRequest,
    target: &str,
    compartment_id: &str,
) -> Result<EmbedTextDetails, ProviderError> {
    if req.dimensions.is_some() {
        return Err(unsupported(
            "oci: embedText has no dimensions parameter; leave dimensions unset",
        ));
    }
    let inputs = req
        .inputs
        .iter()
        .map(|i| match i {
            EmbeddingInput::Text(t) => Ok(t.clone()),
            EmbeddingInput::Tokens(_) => Err(unsupported(
                "oci: embedText takes text inputs only, not token arrays",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EmbedTextDetails {
        compartment_id: compartment_id.to_string(),
        serving_mode: serving_mode(target),
        inputs,
        truncate: "NONE".into(),
    })
}

/// Embeddings in input order. §6.5 documents no usage; when none comes it is
/// estimated from the input text (about four characters a token).
pub fn embed_from_wire(
    w: EmbedTextResult,
    target: &str,
    req: &EmbeddingsRequest,
) -> Result<EmbeddingsResponse, ProviderError> {
    if w.embeddings.len() != req.inputs.len() {
        return Err(ProviderError::new(
            ProviderErrorKind::Protocol,
            format!(
                "oci returned {} embeddings for {} inputs",
                w.embeddings.len(),
                req.inputs.len()
            ),
        ));
    }
    let usage = match &w.usage {
        Some(u) => usage_from_wire(u),
        None => Usage {
            input_tokens: req
                .inputs
                .iter()
                .map(|i| match i {
                    EmbeddingInput::Text(t) => (t.len() as u64).div_ceil(4),
                    EmbeddingInput::Tokens(t) => t.len() as u64,
                })
                .sum(),
            ..Usage::default()
        },
    };
    Ok(EmbeddingsResponse {
        model: w.model_id.unwrap_or_else(|| target.to_string()),
        vectors: w.embeddings,
        usage,
    })
}

/// An OCI error answer (`{"code","message"}`, §6.6) as a [`ProviderError`]:
/// 400 → the client's `InvalidRequest`; 429 and 5xx retryable; 401/404 fail
/// over (through `ProviderError::is_retryable`). The `opc-request-id` is kept
/// in the message: Oracle support asks for it.
pub fn error_from_response(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> ProviderError {
    let request_id = headers
        .get("opc-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|id| format!(" (opc-request-id {id})"))
        .unwrap_or_default();
    let message = match serde_json::from_slice::<OciErrorWire>(body) {
        Ok(e) if !e.code.is_empty() || !e.message.is_empty() => {
            format!(
                "oci {status} {}: {}{request_id}",
                e.code,
                truncate(&e.message)
            )
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            format!(
                "oci returned HTTP {status}: {}{request_id}",
                truncate(text.trim())
            )
        }
    };
    ProviderError::upstream(status, message).with_retry_after(retry_after(headers))
}

/// An in-stream error chunk, classified by its code like the HTTP error.
pub fn error_from_stream(code: &str, message: &str) -> ProviderError {
    let status = match code {
        "TooManyRequests" => 429,
        "InvalidParameter" | "MissingParameter" | "LimitExceeded" => 400,
        "NotAuthenticated" => 401,
        "NotAuthorizedOrNotFound" => 404,
        "ServiceUnavailable" => 503,
        _ => 500,
    };
    ProviderError::upstream(
        status,
        format!("oci stream error {code}: {}", truncate(message)),
    )
}

fn truncate(s: &str) -> String {
    const MAX: usize = 1000;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
