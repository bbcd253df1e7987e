//! Pure translations between the canonical model and the Anthropic Messages
//! JSON a cloud speaks: canonical request → wire request (`request_to_wire`),
//! wire response → canonical (`response_from_wire`, `usage_from_wire`). Used
//! by the `anthropic` provider and the Claude-on-Vertex (`rawPredict`) and
//! Claude-on-Bedrock (`InvokeModel`) variants, which send the same body
//! without `model` and with a body-level `anthropic_version`.
//!
//! The client-facing direction (`/v1/messages`) is the server's:
//! `anycloud-server/src/ingress/messages` uses the same wire types.
//!
//! No I/O here.

use super::wire::*;
use crate::error::{ProviderError, ProviderErrorKind};
use anycloud_types::{
    CacheTtl, ChatRequest, ChatResponse, ContentBlock, FinishReason, ImageSource, ResponseFormat,
    Role, ToolChoice, Usage,
};
use serde_json::{Map, Value};

/// The Anthropic API version the provider speaks (header `anthropic-version`).
pub const API_VERSION: &str = "2023-06-01";

/// Anthropic requires `max_tokens`; OpenAI clients usually omit it. 4096 is
/// within every current Claude model's output limit and long enough for a
/// normal answer; a client wanting more says so.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

// ---------------------------------------------------------------- egress

/// The upstream body for `req`. `model` is the deployment's target (`None`
/// for Vertex / Bedrock, where it is in the URL); `anthropic_version_in_body`
/// is `Some("vertex-2023-10-16")` / `Some("bedrock-2023-05-31")` there.
/// `stream` follows `req.stream`; callers override it as they need.
pub fn request_to_wire(
    req: &ChatRequest,
    model: Option<&str>,
    anthropic_version_in_body: Option<&str>,
) -> Result<MessagesRequest, ProviderError> {
    match &req.response_format {
        // No native structured output on the Messages API. Emulating it with
        // a forced tool changes the reply's shape (a tool_use instead of
        // text) in ways a client did not ask for, so we refuse clearly and
        // let routing prefer a deployment declaring `json_schema`.
        Some(ResponseFormat::JsonSchema { .. } | ResponseFormat::JsonObject) => {
            return Err(ProviderError::new(
                ProviderErrorKind::Unsupported,
                "Anthropic has no response_format; json_object / json_schema cannot be served by this cloud",
            ))
        }
        Some(ResponseFormat::Text) | None => {}
    }
    let system_messages = || {
        req.messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role.is_system())
    };
    // One string as before, unless a breakpoint needs the system prompt as blocks: then
    // each text block goes out as one, the breakpoint on its own.
    let system = if system_messages().any(|(i, _)| req.cache.on_message(i).is_some()) {
        let mut blocks = Vec::new();
        for (i, m) in system_messages() {
            for (j, b) in m.content.iter().enumerate() {
                match b {
                    ContentBlock::Text { text } if !text.is_empty() => blocks.push(Block::Text {
                        text: text.clone(),
                        cache_control: None,
                    }),
                    _ => {}
                }
                if let (Some(ttl), Some(last)) = (req.cache.on_block(i, j), blocks.last_mut()) {
                    set_cache_control(last, ttl);
                }
            }
        }
        (!blocks.is_empty()).then_some(SystemPrompt::Blocks(blocks))
    } else {
        let texts: Vec<String> = system_messages()
            .map(|(_, m)| m.text())
            .filter(|t| !t.is_empty())
            .collect();
        (!texts.is_empty()).then(|| SystemPrompt::Text(texts.join("\n\n")))
    };
    let mut messages: Vec<MessageParam> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role {
            Role::System | Role::Developer => continue,
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let mut blocks = Vec::with_capacity(m.content.len());
        for (j, b) in m.content.iter().enumerate() {
            if let Some(w) = block_to_wire(b, i, j)? {
                blocks.push(w);
            }
            // A breakpoint on a block Anthropic does not take (empty text) moves back to
            // the block before it: the cached prefix is the same.
            if let (Some(ttl), Some(last)) = (req.cache.on_block(i, j), blocks.last_mut()) {
                set_cache_control(last, ttl);
            }
        }
        if blocks.is_empty() {
            continue;
        }
        // Anthropic wants user/assistant turns; consecutive messages of one
        // role (OpenAI's several `tool` messages in a row) merge into one.
        match messages.last_mut() {
            Some(MessageParam {
                role: last,
                content: MessageContent::Blocks(prev),
            }) if last == role => prev.extend(blocks),
            _ => messages.push(MessageParam {
                role: role.to_string(),
                content: MessageContent::Blocks(blocks),
            }),
        }
    }
    let p = &req.params;
    let disable_parallel = (req.parallel_tool_calls == Some(false)).then_some(true);
    Ok(MessagesRequest {
        model: model.map(str::to_string),
        anthropic_version: anthropic_version_in_body.map(str::to_string),
        max_tokens: Some(p.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
        system,
        messages,
        tools: (!req.tools.is_empty()).then(|| {
            req.tools
                .iter()
                .enumerate()
                .map(|(i, t)| ToolParam {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    input_schema: Some(schema_or_empty(&t.parameters)),
                    kind: None,
                    cache_control: req.cache.on_tool(i).map(CacheControl::ephemeral),
                })
                .collect()
        }),
        tool_choice: req.tool_choice.as_ref().map(|c| {
            let (kind, name) = match c {
                ToolChoice::Auto => ("auto", None),
                ToolChoice::None => ("none", None),
                ToolChoice::Required => ("any", None),
                ToolChoice::Tool(n) => ("tool", Some(n.clone())),
            };
            ToolChoiceParam {
                kind: kind.into(),
                name,
                disable_parallel_tool_use: disable_parallel.filter(|_| kind != "none"),
            }
        }),
        temperature: p.temperature,
        top_p: p.top_p,
        top_k: p.top_k,
        // seed and the penalties have no Anthropic equivalent: dropped.
        stop_sequences: (!p.stop.is_empty()).then(|| p.stop.clone()),
        stream: req.stream.then_some(true),
        metadata: req.user.as_ref().map(|u| Metadata {
            user_id: Some(u.clone()),
        }),
    })
}

fn set_cache_control(b: &mut Block, ttl: CacheTtl) {
    match b {
        Block::Text { cache_control, .. }
        | Block::Image { cache_control, .. }
        | Block::ToolUse { cache_control, .. }
        | Block::ToolResult { cache_control, .. } => {
            *cache_control = Some(CacheControl::ephemeral(ttl));
        }
        Block::Other => {}
    }
}

/// Anthropic insists on an object schema; a tool without parameters gets
/// the empty one.
fn schema_or_empty(v: &Value) -> Value {
    match v {
        Value::Object(o) if !o.is_empty() => v.clone(),
        _ => serde_json::json!({"type": "object", "properties": {}}),
    }
}

fn block_to_wire(b: &ContentBlock, i: usize, j: usize) -> Result<Option<Block>, ProviderError> {
    Ok(Some(match b {
        // Anthropic rejects empty text blocks.
        ContentBlock::Text { text } if text.is_empty() => return Ok(None),
        ContentBlock::Text { text } => Block::Text {
            text: text.clone(),
            cache_control: None,
        },
        ContentBlock::Image { source, .. } => Block::Image {
            source: image_to_wire(source),
            cache_control: None,
        },
        ContentBlock::ToolUse {
            id,
            name,
            arguments,
        } => Block::ToolUse {
            id: id.clone(),
            name: name.clone(),
            input: arguments_to_object(arguments).ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::InvalidRequest,
                    format!("messages[{i}].content[{j}]: tool call arguments must be a JSON object to send them to Anthropic"),
                )
            })?,
            cache_control: None,
        },
        ContentBlock::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let mut inner = Vec::with_capacity(content.len());
            for (k, c) in content.iter().enumerate() {
                match c {
                    ContentBlock::Text { .. } | ContentBlock::Image { .. } => {
                        inner.extend(block_to_wire(c, i, k)?)
                    }
                    _ => {
                        return Err(ProviderError::new(
                            ProviderErrorKind::InvalidRequest,
                            format!("messages[{i}].content[{j}]: a tool result holds text and images only"),
                        ))
                    }
                }
            }
            Block::ToolResult {
                tool_use_id: tool_use_id.clone(),
                content: (!inner.is_empty()).then_some(ToolResultContent::Blocks(inner)),
                is_error: *is_error,
                cache_control: None,
            }
        }
    }))
}

/// Canonical arguments text → the `input` object (empty text → `{}`).
pub fn arguments_to_object(arguments: &str) -> Option<Value> {
    if arguments.trim().is_empty() {
        return Some(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

fn image_to_wire(s: &ImageSource) -> ImageSourceParam {
    match s {
        ImageSource::Url { url } => ImageSourceParam::Url { url: url.clone() },
        ImageSource::Base64 { media_type, data } => ImageSourceParam::Base64 {
            media_type: media_type.clone(),
            data: data.clone(),
        },
    }
}

/// Anthropic `stop_reason` → canonical.
pub fn stop_reason_from_wire(s: Option<&str>) -> FinishReason {
    match s {
        Some("end_turn" | "stop_sequence" | "pause_turn") | None => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(_) => FinishReason::Other,
    }
}

/// Anthropic usage → canonical: input = input + cache reads + cache writes
/// (Anthropic's `input_tokens` excludes both; the canonical one includes them).
pub fn usage_from_wire(u: &UsageWire) -> Usage {
    let read = u.cache_read_input_tokens.unwrap_or(0);
    let split = u.cache_creation.unwrap_or_default();
    // The TTL breakdown, when it is the only report of the writes, is the total.
    let write = u.cache_creation_input_tokens.unwrap_or(
        split
            .ephemeral_5m_input_tokens
            .saturating_add(split.ephemeral_1h_input_tokens),
    );
    Usage {
        input_tokens: u
            .input_tokens
            .unwrap_or(0)
            .saturating_add(read)
            .saturating_add(write),
        output_tokens: u.output_tokens,
        cached_input_tokens: read,
        cache_write_tokens: write,
        cache_write_1h_tokens: split.ephemeral_1h_input_tokens.min(write),
        reasoning_tokens: 0,
    }
}

pub fn response_from_wire(w: MessagesResponse) -> Result<ChatResponse, ProviderError> {
    let mut content = Vec::with_capacity(w.content.len());
    for b in w.content {
        match b {
            Block::Text { text, .. } => content.push(ContentBlock::Text { text }),
            Block::ToolUse {
                id, name, input, ..
            } => content.push(ContentBlock::ToolUse {
                id,
                name,
                arguments: input.to_string(),
            }),
            // thinking and other blocks carry nothing the canonical model has.
            _ => {}
        }
    }
    Ok(ChatResponse {
        id: w.id,
        model: w.model,
        created: chrono_now(),
        content,
        finish_reason: stop_reason_from_wire(w.stop_reason.as_deref()),
        usage: usage_from_wire(&w.usage),
        system_fingerprint: None,
    })
}

/// Anthropic responses carry no timestamp; the canonical one is "now".
fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
