//! Pure translations between the canonical model and what an OpenAI-shaped
//! cloud speaks (Chat Completions and Embeddings JSON): canonical request → the
//! upstream's wire request, its wire response → canonical. Used by the
//! `openai`, `openai_compatible` and `azure_openai` providers.
//!
//! The client-facing direction (a client's request → canonical, canonical →
//! the client's response) is the server's: `anycloud-server/src/ingress/chat`
//! and `ingress/embeddings` use the same wire types from [`super::wire`].
//!
//! No I/O here; everything is unit-tested below.

use super::wire::*;
use crate::error::{ProviderError, ProviderErrorKind};
use anycloud_types::{
    ChatRequest, ChatResponse, ContentBlock, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse,
    FinishReason, Message, ResponseFormat, Role, Tool, ToolChoice, Usage,
};
use base64::Engine as _;

/// Which field carries the output-token limit upstream. OpenAI and Azure want
/// `max_completion_tokens` (reasoning models reject `max_tokens`); vLLM and
/// most OpenAI-compatible servers only know `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    MaxCompletionTokens,
    MaxTokens,
}

// ---------------------------------------------------------------- chat egress

/// The upstream request for `req`, with the deployment's `target` as model
/// (never the client's public name). `stream`/`stream_options` follow
/// `req.stream`, with usage always requested when streaming.
pub fn request_to_wire(
    req: &ChatRequest,
    target: &str,
    tokens_field: MaxTokensField,
) -> ChatCompletionRequest {
    let p = &req.params;
    let (max_tokens, max_completion_tokens) = match tokens_field {
        MaxTokensField::MaxTokens => (p.max_tokens, None),
        MaxTokensField::MaxCompletionTokens => (None, p.max_tokens),
    };
    ChatCompletionRequest {
        model: target.to_string(),
        messages: req.messages.iter().flat_map(message_to_wire).collect(),
        tools: (!req.tools.is_empty()).then(|| req.tools.iter().map(tool_to_wire).collect()),
        tool_choice: req.tool_choice.as_ref().map(tool_choice_to_wire),
        parallel_tool_calls: req.parallel_tool_calls,
        response_format: req.response_format.as_ref().map(response_format_to_wire),
        temperature: p.temperature,
        top_p: p.top_p,
        max_tokens,
        max_completion_tokens,
        stop: (!p.stop.is_empty()).then(|| StopWire::Many(p.stop.clone())),
        seed: p.seed,
        presence_penalty: p.presence_penalty,
        frequency_penalty: p.frequency_penalty,
        n: None,
        user: req.user.clone(),
        prompt_cache_key: req.cache.key.clone(),
        stream: req.stream.then_some(true),
        stream_options: req.stream.then_some(StreamOptions {
            include_usage: Some(true),
        }),
    }
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// One canonical message can become several wire messages: each tool result
/// is its own `tool` message (placed first, right after the assistant turn
/// that made the calls), followed by whatever else the message holds.
fn message_to_wire(m: &Message) -> Vec<ChatMessage> {
    let mut out = Vec::new();
    let mut rest = Vec::new();
    let mut calls = Vec::new();
    for block in &m.content {
        match block {
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                ..
            } => out.push(ChatMessage {
                role: "tool".into(),
                content: Some(content_to_wire(content)),
                tool_call_id: Some(tool_use_id.clone()),
                ..ChatMessage::default()
            }),
            ContentBlock::ToolUse {
                id,
                name,
                arguments,
            } => calls.push(ToolCall {
                id: id.clone(),
                kind: function_type(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: arguments.clone(),
                },
            }),
            other => rest.push(other.clone()),
        }
    }
    if m.role == Role::Assistant {
        let text: String = rest
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let content = if text.is_empty() && !calls.is_empty() {
            None
        } else {
            Some(MessageContent::Text(text))
        };
        out.push(ChatMessage {
            role: "assistant".into(),
            content,
            name: m.name.clone(),
            tool_calls: (!calls.is_empty()).then_some(calls),
            ..ChatMessage::default()
        });
    } else if !rest.is_empty() || (m.role != Role::Tool && out.is_empty()) {
        out.push(ChatMessage {
            // Leftover non-result content in a tool message goes out as user text.
            role: if m.role == Role::Tool {
                "user"
            } else {
                role_str(m.role)
            }
            .into(),
            content: Some(content_to_wire(&rest)),
            name: m.name.clone(),
            ..ChatMessage::default()
        });
    }
    out
}

/// A plain string when the blocks are text only (what every server accepts),
/// else content parts.
fn content_to_wire(blocks: &[ContentBlock]) -> MessageContent {
    let text_only = blocks
        .iter()
        .all(|b| matches!(b, ContentBlock::Text { .. }));
    if text_only {
        let mut s = String::new();
        for b in blocks {
            if let ContentBlock::Text { text } = b {
                s.push_str(text);
            }
        }
        return MessageContent::Text(s);
    }
    MessageContent::Parts(
        blocks
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text } => Some(ContentPart::Text { text: text.clone() }),
                ContentBlock::Image { source, detail } => Some(ContentPart::ImageUrl {
                    image_url: ImageUrl {
                        url: source.to_url_or_data(),
                        detail: detail.clone(),
                    },
                }),
                _ => None,
            })
            .collect(),
    )
}

fn tool_to_wire(t: &Tool) -> ToolDef {
    ToolDef {
        kind: "function".into(),
        function: FunctionDef {
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: Some(t.parameters.clone()),
            strict: t.strict,
        },
    }
}

fn tool_choice_to_wire(c: &ToolChoice) -> ToolChoiceWire {
    match c {
        ToolChoice::Auto => ToolChoiceWire::Mode("auto".into()),
        ToolChoice::None => ToolChoiceWire::Mode("none".into()),
        ToolChoice::Required => ToolChoiceWire::Mode("required".into()),
        ToolChoice::Tool(name) => ToolChoiceWire::Named(NamedToolChoice {
            kind: "function".into(),
            function: NamedFunction { name: name.clone() },
        }),
    }
}

fn response_format_to_wire(f: &ResponseFormat) -> ResponseFormatWire {
    match f {
        ResponseFormat::Text => ResponseFormatWire::Text,
        ResponseFormat::JsonObject => ResponseFormatWire::JsonObject,
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
            description,
        } => ResponseFormatWire::JsonSchema {
            json_schema: JsonSchemaWire {
                name: name.clone(),
                description: description.clone(),
                schema: Some(schema.clone()),
                strict: *strict,
            },
        },
    }
}

/// The canonical response from the upstream's first choice.
pub fn response_from_wire(w: ChatCompletionResponse) -> Result<ChatResponse, ProviderError> {
    let Some(choice) = w.choices.into_iter().next() else {
        return Err(ProviderError::new(
            ProviderErrorKind::Protocol,
            "upstream response has no choices",
        ));
    };
    let mut content = Vec::new();
    match (choice.message.content, choice.message.refusal) {
        (Some(text), _) if !text.is_empty() => content.push(ContentBlock::Text { text }),
        // A refusal is the only text the client will get; keep it as text
        // rather than answer with nothing.
        (_, Some(refusal)) if !refusal.is_empty() => {
            content.push(ContentBlock::Text { text: refusal })
        }
        _ => {}
    }
    for call in choice.message.tool_calls.unwrap_or_default() {
        content.push(ContentBlock::ToolUse {
            id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
        });
    }
    let finish_reason = choice
        .finish_reason
        .as_deref()
        .map_or(FinishReason::Stop, FinishReason::from_openai);
    Ok(ChatResponse {
        id: w.id,
        model: w.model,
        created: w.created,
        content,
        finish_reason,
        usage: w.usage.as_ref().map(usage_from_wire).unwrap_or_default(),
        system_fingerprint: w.system_fingerprint,
    })
}

pub fn usage_from_wire(u: &UsageWire) -> Usage {
    Usage {
        input_tokens: u.prompt_tokens,
        output_tokens: u.completion_tokens,
        cached_input_tokens: u
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        reasoning_tokens: u
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
    }
}

// ----------------------------------------------------------------- embeddings

/// The upstream embeddings request. Asks for base64 (a third the size of the
/// float JSON); [`embeddings_response_from_wire`] decodes it. Text and token
/// inputs cannot be mixed in one OpenAI request.
pub fn embeddings_request_to_wire(
    req: &EmbeddingsRequest,
    target: &str,
) -> Result<EmbeddingsRequestWire, ProviderError> {
    let mut texts = Vec::new();
    let mut tokens = Vec::new();
    for input in &req.inputs {
        match input {
            EmbeddingInput::Text(t) => texts.push(t.clone()),
            EmbeddingInput::Tokens(t) => tokens.push(t.clone()),
        }
    }
    let input = match (texts.len(), tokens.len()) {
        (1, 0) => EmbeddingInputWire::One(texts.remove(0)),
        (_, 0) => EmbeddingInputWire::Many(texts),
        (0, 1) => EmbeddingInputWire::Tokens(tokens.remove(0)),
        (0, _) => EmbeddingInputWire::ManyTokens(tokens),
        _ => {
            return Err(ProviderError::new(
                ProviderErrorKind::Unsupported,
                "an embeddings request cannot mix text and token inputs",
            ))
        }
    };
    Ok(EmbeddingsRequestWire {
        model: target.to_string(),
        input,
        encoding_format: Some("base64".into()),
        dimensions: req.dimensions,
        user: req.user.clone(),
    })
}

/// The canonical response: float or base64 vectors, in input order.
pub fn embeddings_response_from_wire(
    w: EmbeddingsResponseWire,
) -> Result<EmbeddingsResponse, ProviderError> {
    let protocol = |m: String| ProviderError::new(ProviderErrorKind::Protocol, m);
    let n = w.data.len();
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; n];
    for d in w.data {
        let slot = vectors
            .get_mut(d.index as usize)
            .ok_or_else(|| protocol(format!("embedding index {} out of range", d.index)))?;
        if slot.is_some() {
            return Err(protocol(format!("embedding index {} repeated", d.index)));
        }
        *slot = Some(match d.embedding {
            EmbeddingVector::Float(v) => v,
            EmbeddingVector::Base64(s) => decode_f32_base64(&s).ok_or_else(|| {
                protocol(format!(
                    "embedding {} is not base64 little-endian f32",
                    d.index
                ))
            })?,
        });
    }
    Ok(EmbeddingsResponse {
        model: w.model,
        vectors: vectors.into_iter().flatten().collect(),
        usage: Usage {
            input_tokens: w.usage.prompt_tokens,
            ..Usage::default()
        },
    })
}

fn decode_f32_base64(s: &str) -> Option<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
