//! A client's `/v1/messages` request → canonical, and the canonical answer →
//! the Anthropic `message` the client sees. `request_from_wire` rejects what
//! Anthropic rejects, naming the field like Anthropic does
//! (`messages.1.content.0`), so a bad request never reaches a cloud. The wire
//! types are `anycloud_providers::anthropic::wire`, the same a Claude cloud
//! speaks; the cloud-facing direction is `anycloud_providers::anthropic::convert`.
//!
//! No I/O here; unit-tested in `convert_tests.rs`.

use crate::ingress::invalid::{each, InvalidRequest};
use anycloud_providers::anthropic::convert::arguments_to_object;
use anycloud_providers::anthropic::wire::*;
use anycloud_types::{
    CacheAt, CacheBreakpoint, CacheTtl, ChatRequest, ChatResponse, ContentBlock, FinishReason,
    ImageSource, Message, PromptCache, Role, SamplingParams, Tool, ToolChoice, Usage,
};
use serde_json::{Map, Value};

/// Canonical → Anthropic `stop_reason`.
pub fn stop_reason_to_wire(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop | FinishReason::Other => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

/// Canonical usage → Anthropic's split form.
pub fn usage_to_wire(u: &Usage) -> UsageWire {
    UsageWire {
        input_tokens: Some(
            u.input_tokens
                .saturating_sub(u.cached_input_tokens)
                .saturating_sub(u.cache_write_tokens),
        ),
        output_tokens: u.output_tokens,
        cache_creation_input_tokens: Some(u.cache_write_tokens),
        cache_read_input_tokens: Some(u.cached_input_tokens),
        cache_creation: Some(CacheCreationWire {
            ephemeral_5m_input_tokens: u.cache_write_tokens.saturating_sub(u.cache_write_1h_tokens),
            ephemeral_1h_input_tokens: u.cache_write_1h_tokens,
        }),
    }
}

fn image_from_wire(s: ImageSourceParam) -> ImageSource {
    match s {
        ImageSourceParam::Url { url } => ImageSource::Url { url },
        ImageSourceParam::Base64 { media_type, data } => ImageSource::Base64 { media_type, data },
    }
}

fn bad(message: impl Into<String>, param: impl Into<String>) -> InvalidRequest {
    InvalidRequest::new(message, param)
}

/// A client's Messages request → canonical, with Anthropic's validation.
pub fn request_from_wire(w: MessagesRequest) -> Result<ChatRequest, InvalidRequest> {
    let model = match w.model {
        Some(m) if !m.trim().is_empty() => m,
        _ => return Err(bad("model: Field required", "model")),
    };
    let Some(max_tokens) = w.max_tokens else {
        return Err(bad("max_tokens: Field required", "max_tokens"));
    };
    if max_tokens == 0 {
        return Err(bad(
            "max_tokens: must be greater than or equal to 1",
            "max_tokens",
        ));
    }
    if w.messages.is_empty() {
        return Err(bad(
            "messages: at least one message is required",
            "messages",
        ));
    }
    for (v, name, hi) in [(w.temperature, "temperature", 1.0), (w.top_p, "top_p", 1.0)] {
        if v.is_some_and(|x| !(0.0..=hi).contains(&x)) {
            return Err(bad(format!("{name}: range: 0..{hi}"), name));
        }
    }
    let mut messages = Vec::with_capacity(w.messages.len() + 1);
    let mut marks = Vec::new();
    match w.system {
        Some(SystemPrompt::Text(t)) if !t.is_empty() => messages.push(Message {
            role: Role::System,
            content: vec![ContentBlock::Text { text: t }],
            name: None,
        }),
        Some(SystemPrompt::Blocks(blocks)) => {
            let mut content = Vec::new();
            for (j, b) in blocks.into_iter().enumerate() {
                match b {
                    Block::Text {
                        text,
                        cache_control,
                    } => {
                        if let Some(ttl) = cache_ttl(cache_control, &format!("system.{j}"))? {
                            marks.push(CacheBreakpoint {
                                at: CacheAt::Block {
                                    message: 0,
                                    block: content.len(),
                                },
                                ttl,
                            });
                        }
                        content.push(ContentBlock::Text { text })
                    }
                    _ => {
                        return Err(bad(
                            format!("system.{j}: system blocks must be text"),
                            format!("system.{j}"),
                        ))
                    }
                }
            }
            if !content.is_empty() {
                messages.push(Message {
                    role: Role::System,
                    content,
                    name: None,
                });
            }
        }
        _ => {}
    }
    for (i, m) in w.messages.into_iter().enumerate() {
        let (converted, at) = message_from_wire(i, m)?;
        for (k, block, ttl) in at {
            marks.push(CacheBreakpoint {
                at: CacheAt::Block {
                    message: messages.len() + k,
                    block,
                },
                ttl,
            });
        }
        messages.extend(converted);
    }
    let wire_tools = w.tools.unwrap_or_default();
    for (i, t) in wire_tools.iter().enumerate() {
        if let Some(ttl) = cache_ttl(t.cache_control.clone(), &format!("tools.{i}"))? {
            marks.push(CacheBreakpoint {
                at: CacheAt::Tool(i),
                ttl,
            });
        }
    }
    let tools = each(wire_tools, tool_from_wire)?;
    if marks.len() > MAX_CACHE_BREAKPOINTS {
        return Err(bad(
            format!(
                "A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {}.",
                marks.len()
            ),
            "cache_control",
        ));
    }
    // Prompt order (tools, system, messages), as Anthropic reads them.
    marks.sort_by_key(|b| match b.at {
        CacheAt::Tool(i) => (0, i, 0),
        CacheAt::Block { message, block } => (1, message, block),
    });
    let (tool_choice, parallel_tool_calls) = match w.tool_choice {
        None => (None, None),
        Some(c) => {
            let choice = match (c.kind.as_str(), c.name) {
                ("auto", _) => ToolChoice::Auto,
                ("any", _) => ToolChoice::Required,
                ("none", _) => ToolChoice::None,
                ("tool", Some(n)) => ToolChoice::Tool(n),
                ("tool", None) => return Err(bad("tool_choice.name: Field required", "tool_choice.name")),
                (other, _) => {
                    return Err(bad(
                        format!("tool_choice.type: Input tag '{other}' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"),
                        "tool_choice.type",
                    ))
                }
            };
            (Some(choice), c.disable_parallel_tool_use.map(|d| !d))
        }
    };
    Ok(ChatRequest {
        model,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format: None,
        params: SamplingParams {
            temperature: w.temperature,
            top_p: w.top_p,
            max_tokens: Some(max_tokens),
            stop: w.stop_sequences.unwrap_or_default(),
            top_k: w.top_k,
            ..SamplingParams::default()
        },
        user: w.metadata.and_then(|m| m.user_id),
        stream: w.stream.unwrap_or(false),
        cache: PromptCache {
            breakpoints: marks,
            key: None,
        },
    })
}

/// One Anthropic message → canonical messages: a user message's
/// `tool_result` blocks become a [`Role::Tool`] message placed before the
/// rest of its content (the canonical model's convention, from OpenAI).
/// Also returns the `cache_control` breakpoints as (index in the returned messages, block,
/// TTL).
#[allow(clippy::type_complexity)]
fn message_from_wire(
    i: usize,
    m: MessageParam,
) -> Result<(Vec<Message>, Vec<(usize, usize, CacheTtl)>), InvalidRequest> {
    let role = match m.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(bad(
                format!("messages.{i}.role: Input should be 'user' or 'assistant' (got '{other}')"),
                format!("messages.{i}.role"),
            ))
        }
    };
    let blocks = match m.content {
        MessageContent::Text(t) => vec![Block::Text {
            text: t,
            cache_control: None,
        }],
        MessageContent::Blocks(b) => b,
    };
    let mut results = Vec::new();
    let mut content = Vec::new();
    // (in the tool-result message?, block index, ttl)
    let mut marks = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        let at = format!("messages.{i}.content.{j}");
        let cc = match &b {
            Block::Text { cache_control, .. }
            | Block::Image { cache_control, .. }
            | Block::ToolUse { cache_control, .. }
            | Block::ToolResult { cache_control, .. } => cache_control.clone(),
            Block::Other => None,
        };
        if let Some(ttl) = cache_ttl(cc, &at)? {
            let result = matches!(b, Block::ToolResult { .. });
            let index = if result { results.len() } else { content.len() };
            marks.push((result, index, ttl));
        }
        match b {
            Block::Text { text, .. } => content.push(ContentBlock::Text { text }),
            Block::Image { source, .. } => content.push(ContentBlock::Image {
                source: image_from_wire(source),
                detail: None,
            }),
            Block::ToolUse {
                id, name, input, ..
            } if role == Role::Assistant => {
                if !input.is_object() {
                    return Err(bad(format!("{at}.tool_use.input: Input should be a valid dictionary"), at));
                }
                content.push(ContentBlock::ToolUse {
                    id,
                    name,
                    arguments: input.to_string(),
                })
            }
            Block::ToolResult {
                tool_use_id,
                content: c,
                is_error,
                ..
            } if role == Role::User => results.push(ContentBlock::ToolResult {
                tool_use_id,
                content: tool_result_from_wire(c, &at)?,
                is_error,
            }),
            Block::ToolUse { .. } => return Err(bad(format!("{at}: tool_use blocks are only allowed in assistant messages"), at)),
            Block::ToolResult { .. } => return Err(bad(format!("{at}: tool_result blocks are only allowed in user messages"), at)),
            Block::Other => {
                return Err(bad(
                    format!("{at}: this content block type is not supported by the gateway (text, image, tool_use and tool_result are)"),
                    at,
                ))
            }
        }
    }
    let mut out = Vec::with_capacity(2);
    let has_results = !results.is_empty();
    if has_results {
        out.push(Message {
            role: Role::Tool,
            content: results,
            name: None,
        });
    }
    if !content.is_empty() || out.is_empty() {
        out.push(Message {
            role,
            content,
            name: None,
        });
    }
    let content_at = usize::from(has_results);
    let marks = marks
        .into_iter()
        .map(|(result, block, ttl)| (if result { 0 } else { content_at }, block, ttl))
        .collect();
    Ok((out, marks))
}

/// Breakpoints one request may carry on Anthropic (and Bedrock).
pub const MAX_CACHE_BREAKPOINTS: usize = 4;

/// A client's `cache_control` at `at`, checked as Anthropic checks it.
fn cache_ttl(cc: Option<CacheControl>, at: &str) -> Result<Option<CacheTtl>, InvalidRequest> {
    let Some(cc) = cc else { return Ok(None) };
    if cc.kind != "ephemeral" {
        return Err(bad(
            format!("{at}.cache_control.type: Input should be 'ephemeral'"),
            format!("{at}.cache_control.type"),
        ));
    }
    match cc.ttl.as_deref() {
        None => Ok(Some(CacheTtl::FiveMinutes)),
        Some(t) => CacheTtl::parse(t).map(Some).ok_or_else(|| {
            bad(
                format!("{at}.cache_control.ttl: Input should be '5m' or '1h'"),
                format!("{at}.cache_control.ttl"),
            )
        }),
    }
}

fn tool_result_from_wire(
    c: Option<ToolResultContent>,
    at: &str,
) -> Result<Vec<ContentBlock>, InvalidRequest> {
    match c {
        None => Ok(Vec::new()),
        Some(ToolResultContent::Text(t)) => Ok(vec![ContentBlock::Text { text: t }]),
        Some(ToolResultContent::Blocks(blocks)) => blocks
            .into_iter()
            .map(|b| match b {
                Block::Text { text, .. } => Ok(ContentBlock::Text { text }),
                Block::Image { source, .. } => Ok(ContentBlock::Image {
                    source: image_from_wire(source),
                    detail: None,
                }),
                _ => Err(bad(
                    format!("{at}.content: a tool_result holds text and image blocks only"),
                    at,
                )),
            })
            .collect(),
    }
}

fn tool_from_wire(i: usize, t: ToolParam) -> Result<Tool, InvalidRequest> {
    let at = format!("tools.{i}");
    if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
        return Err(bad(
            format!("{at}: server tool '{kind}' is not supported by the gateway"),
            at,
        ));
    }
    let name_ok = (1..=64).contains(&t.name.len())
        && t.name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if !name_ok {
        return Err(bad(
            format!("{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"),
            format!("{at}.name"),
        ));
    }
    let Some(schema) = t.input_schema.filter(Value::is_object) else {
        return Err(bad(
            format!("{at}.input_schema: Field required"),
            format!("{at}.input_schema"),
        ));
    };
    Ok(Tool {
        name: t.name,
        description: t.description,
        parameters: schema,
        strict: None,
    })
}

/// Canonical response → the Anthropic `message` object the client sees,
/// named with the client's public `model` and our `id` (`msg_…`).
pub fn response_to_wire(r: &ChatResponse, model: &str, id: &str) -> MessagesResponse {
    let content = r
        .content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text { text } => Some(Block::Text {
                text: text.clone(),
                cache_control: None,
            }),
            ContentBlock::ToolUse {
                id,
                name,
                arguments,
            } => Some(Block::ToolUse {
                id: id.clone(),
                name: name.clone(),
                // OpenAI-family clouds may emit arguments that do not parse;
                // Anthropic clients need an object, so those become `{}`.
                input: arguments_to_object(arguments).unwrap_or_else(|| Value::Object(Map::new())),
                cache_control: None,
            }),
            _ => None,
        })
        .collect();
    MessagesResponse {
        id: id.to_string(),
        kind: "message".into(),
        role: "assistant".into(),
        model: model.to_string(),
        content,
        stop_reason: Some(stop_reason_to_wire(r.finish_reason).to_string()),
        stop_sequence: None,
        usage: usage_to_wire(&r.usage),
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
