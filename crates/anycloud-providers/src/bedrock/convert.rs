//! Pure translations between the canonical model and Bedrock Converse JSON.
//!
//! Request side: system and developer messages become the top-level `system` array;
//! tool results become `toolResult` blocks in a **user** message; consecutive messages of
//! the same role are merged (Converse demands user/assistant alternation); tools become
//! `toolConfig.tools[].toolSpec`. `tool_choice: none` cannot be said to Bedrock, so the
//! tools are left out — but `toolConfig` stays whenever the history holds tool blocks,
//! because Converse rejects such a history without it (provider-wire-formats §0 item 15).
//!
//! Response side: stop reasons, content blocks and usage (Bedrock's `inputTokens`
//! excludes cache reads and writes; the canonical `input_tokens` includes them).

use super::wire::{self, ContentBlock as WireBlock};
use crate::error::{ProviderError, ProviderErrorKind};
use anycloud_types::{
    ChatRequest, ChatResponse, ContentBlock, FinishReason, ImageSource, Role, ToolChoice, Usage,
};
use serde_json::{json, Value};

/// Builds the Converse body for `req`.
/// `req` as `target` may receive it: models that do not cache on Bedrock (anything but
/// Claude and Nova) reject a `cachePoint`, so the breakpoints are dropped for them.
pub fn for_target<'a>(req: &'a ChatRequest, target: &str) -> std::borrow::Cow<'a, ChatRequest> {
    let caches = target.contains("anthropic.claude") || target.contains("amazon.nova");
    if caches || req.cache.breakpoints.is_empty() {
        return std::borrow::Cow::Borrowed(req);
    }
    let mut r = req.clone();
    r.cache.breakpoints.clear();
    std::borrow::Cow::Owned(r)
}

pub fn request_to_wire(req: &ChatRequest) -> Result<wire::ConverseRequest, ProviderError> {
    let mut system = Vec::new();
    let mut messages: Vec<wire::Message> = Vec::new();
    let mut history_has_tools = false;
    for (i, m) in req.messages.iter().enumerate() {
        if m.role.is_system() {
            let text = m.text();
            if !text.is_empty() {
                system.push(wire::SystemBlock::Text(text));
                if req.cache.on_message(i).is_some() {
                    system.push(wire::SystemBlock::CachePoint(wire::CachePoint::new()));
                }
            }
            continue;
        }
        let role = match m.role {
            Role::Assistant => "assistant",
            _ => "user",
        };
        let mut blocks = Vec::with_capacity(m.content.len());
        for (j, b) in m.content.iter().enumerate() {
            if matches!(
                b,
                ContentBlock::ToolUse { .. } | ContentBlock::ToolResult { .. }
            ) {
                history_has_tools = true;
            }
            blocks.push(block_to_wire(b)?);
            // Converse marks a cached prefix with a block of its own after the last one.
            if req.cache.on_block(i, j).is_some() {
                blocks.push(WireBlock::CachePoint(wire::CachePoint::new()));
            }
        }
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(wire::Message {
                role: role.to_string(),
                content: blocks,
            }),
        }
    }
    let p = &req.params;
    let inference = wire::InferenceConfig {
        max_tokens: p.max_tokens,
        temperature: p.temperature,
        top_p: p.top_p,
        stop_sequences: p.stop.clone(),
    };
    let inference_config = (inference != wire::InferenceConfig::default()).then_some(inference);
    Ok(wire::ConverseRequest {
        messages,
        system,
        inference_config,
        tool_config: tool_config(req, history_has_tools),
        additional_model_request_fields: p.top_k.map(|k| json!({"top_k": k})),
    })
}

fn tool_config(req: &ChatRequest, history_has_tools: bool) -> Option<wire::ToolConfig> {
    let mut tools: Vec<wire::ToolEntry> = Vec::with_capacity(req.tools.len());
    for (i, t) in req.tools.iter().enumerate() {
        tools.push(wire::ToolEntry::ToolSpec(wire::ToolSpec {
            name: t.name.clone(),
            description: t.description.clone(),
            input_schema: wire::InputSchema {
                json: t.parameters.clone(),
            },
        }));
        if req.cache.on_tool(i).is_some() {
            tools.push(wire::ToolEntry::CachePoint(wire::CachePoint::new()));
        }
    }
    let choice = match &req.tool_choice {
        None | Some(ToolChoice::Auto) => Some(json!({"auto": {}})),
        Some(ToolChoice::Required) => Some(json!({"any": {}})),
        Some(ToolChoice::Tool(name)) => Some(json!({"tool": {"name": name}})),
        Some(ToolChoice::None) => None,
    };
    if tools.is_empty() {
        // Nothing to offer; a history with tool blocks still needs a toolConfig, and
        // Bedrock wants at least one tool in it, so a stub is declared that the model is
        // not steered towards (no toolChoice).
        return history_has_tools.then(|| wire::ToolConfig {
            tools: history_tool_stubs(req),
            tool_choice: None,
        });
    }
    match choice {
        Some(c) => Some(wire::ToolConfig {
            tools,
            tool_choice: Some(c),
        }),
        // `none`: offer nothing the model could call, keep the history legal.
        None => history_has_tools.then_some(wire::ToolConfig {
            tools,
            tool_choice: None,
        }),
    }
}

/// Declarations for the tools the history used, when the request itself lists none.
fn history_tool_stubs(req: &ChatRequest) -> Vec<wire::ToolEntry> {
    let mut names: Vec<&str> = Vec::new();
    for m in &req.messages {
        for b in &m.content {
            if let ContentBlock::ToolUse { name, .. } = b {
                if !names.contains(&name.as_str()) {
                    names.push(name);
                }
            }
        }
    }
    if names.is_empty() {
        names.push("tool");
    }
    names
        .into_iter()
        .map(|n| {
            wire::ToolEntry::ToolSpec(wire::ToolSpec {
                name: n.to_string(),
                description: None,
                input_schema: wire::InputSchema {
                    json: json!({"type": "object"}),
                },
            })
        })
        .collect()
}

fn block_to_wire(b: &ContentBlock) -> Result<WireBlock, ProviderError> {
    Ok(match b {
        ContentBlock::Text { text } => WireBlock::Text(text.clone()),
        ContentBlock::Image { source, .. } => WireBlock::Image(image_to_wire(source)?),
        ContentBlock::ToolUse {
            id,
            name,
            arguments,
        } => {
            // Converse wants an object; an empty or unparsable argument string (the model
            // produced it, OpenAI passes it through) becomes `{}` / a wrapped string.
            let input = if arguments.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str::<Value>(arguments)
                    .unwrap_or_else(|_| json!({"arguments": arguments}))
            };
            WireBlock::ToolUse(wire::ToolUseBlock {
                tool_use_id: id.clone(),
                name: name.clone(),
                input,
            })
        }
        ContentBlock::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let mut out = Vec::with_capacity(content.len());
            for c in content {
                match c {
                    ContentBlock::Text { text } => out.push(WireBlock::Text(text.clone())),
                    ContentBlock::Image { source, .. } => {
                        out.push(WireBlock::Image(image_to_wire(source)?))
                    }
                    _ => {
                        return Err(ProviderError::new(
                            ProviderErrorKind::InvalidRequest,
                            "tool results may hold only text and images",
                        ))
                    }
                }
            }
            if out.is_empty() {
                out.push(WireBlock::Text(String::new()));
            }
            WireBlock::ToolResult(wire::ToolResultBlock {
                tool_use_id: tool_use_id.clone(),
                content: out,
                status: Some(if *is_error { "error" } else { "success" }.to_string()),
            })
        }
    })
}

fn image_to_wire(source: &ImageSource) -> Result<wire::ImageBlock, ProviderError> {
    match source {
        ImageSource::Url { .. } => Err(ProviderError::new(
            ProviderErrorKind::Unsupported,
            "Bedrock cannot fetch image URLs; send the image inline as a base64 data URL",
        )),
        ImageSource::Base64 { media_type, data } => {
            let format = match media_type.to_ascii_lowercase().as_str() {
                "image/png" => "png",
                "image/jpeg" | "image/jpg" => "jpeg",
                "image/gif" => "gif",
                "image/webp" => "webp",
                other => {
                    return Err(ProviderError::new(
                        ProviderErrorKind::InvalidRequest,
                        format!("Bedrock does not accept images of type {other}; use png, jpeg, gif or webp"),
                    ))
                }
            };
            Ok(wire::ImageBlock {
                format: format.to_string(),
                source: wire::ImageSource {
                    bytes: data.clone(),
                },
            })
        }
    }
}

/// Maps a Bedrock `stopReason`.
pub fn finish_reason(stop: &str) -> FinishReason {
    match stop {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// Bedrock's usage in canonical terms: cached tokens are added to `input_tokens`.
pub fn usage_from_wire(u: &wire::TokenUsage) -> Usage {
    Usage {
        input_tokens: u
            .input_tokens
            .saturating_add(u.cache_read_input_tokens)
            .saturating_add(u.cache_write_input_tokens),
        output_tokens: u.output_tokens,
        cached_input_tokens: u.cache_read_input_tokens,
        cache_write_tokens: u.cache_write_input_tokens,
        cache_write_1h_tokens: 0,
        reasoning_tokens: 0,
    }
}

/// The canonical response for a Converse answer. Bedrock sends no response id, so the
/// caller supplies one (the `x-amzn-RequestId` header).
pub fn response_from_wire(
    wire: wire::ConverseResponse,
    id: String,
    model: &str,
    created: i64,
) -> Result<ChatResponse, ProviderError> {
    let message = wire.output.message.ok_or_else(|| {
        ProviderError::new(
            ProviderErrorKind::Protocol,
            "Converse response has no output.message",
        )
    })?;
    let mut content = Vec::new();
    for b in message.content {
        match b {
            WireBlock::Text(text) => content.push(ContentBlock::Text { text }),
            WireBlock::ToolUse(t) => content.push(ContentBlock::ToolUse {
                id: t.tool_use_id,
                name: t.name,
                arguments: t.input.to_string(),
            }),
            // Reasoning and other blocks have no canonical form yet.
            _ => {}
        }
    }
    Ok(ChatResponse {
        id,
        model: model.to_string(),
        created,
        content,
        finish_reason: finish_reason(&wire.stop_reason),
        usage: wire.usage.as_ref().map(usage_from_wire).unwrap_or_default(),
        system_fingerprint: None,
    })
}

/// HTTP status a Bedrock exception name stands for (provider-wire-formats §3.8). Names
/// come as `ThrottlingException` in `x-amzn-ErrorType` and as `throttlingException` in
/// stream exception frames; both are matched case-insensitively.
pub fn exception_status(name: &str) -> Option<u16> {
    let n = name.to_ascii_lowercase();
    Some(match n.as_str() {
        "validationexception" | "servicequotaexceededexception" | "incompletesignature" => 400,
        "accessdeniedexception"
        | "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "missingauthenticationtokenexception"
        | "expiredtokenexception" => 403,
        "resourcenotfoundexception" => 404,
        "modeltimeoutexception" => 408,
        "modelerrorexception" | "modelstreamerrorexception" => 424,
        "throttlingexception" | "modelnotreadyexception" => 429,
        "internalserverexception" => 500,
        "serviceunavailableexception" => 503,
        _ => return None,
    })
}

/// A Bedrock exception as a [`ProviderError`], classified for retry and failover.
pub fn exception_error(name: &str, status: Option<u16>, message: &str) -> ProviderError {
    let mapped = exception_status(name);
    let status = match (mapped, status) {
        (Some(m), _) => m,
        (None, Some(s)) => s,
        (None, None) => 500,
    };
    let message = if message.is_empty() {
        format!("Bedrock {name}")
    } else {
        format!("Bedrock {name}: {message}")
    };
    let mut err = ProviderError::upstream(status, message);
    match name.to_ascii_lowercase().as_str() {
        // A quota is not the client's fault: fail over rather than return a 400.
        "servicequotaexceededexception" => err.kind = ProviderErrorKind::Upstream,
        // The model failed on its side; another attempt may well succeed.
        "modelerrorexception" | "modelstreamerrorexception" => {
            err.kind = ProviderErrorKind::Upstream;
            err.status = Some(503);
        }
        _ => {}
    }
    err
}

/// Builds the error for a non-2xx Bedrock answer from `x-amzn-ErrorType` (the part
/// before `:`) and the `{"message"}` body.
pub fn error_from_response(status: u16, error_type: Option<&str>, body: &[u8]) -> ProviderError {
    let name = error_type
        .and_then(|t| t.split(':').next())
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let parsed: wire::ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = parsed.message.unwrap_or_else(|| {
        String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(500)
            .collect()
    });
    match name {
        Some(name) => exception_error(name, Some(status), &message),
        None if message.is_empty() => {
            ProviderError::upstream(status, format!("Bedrock returned HTTP {status}"))
        }
        None => {
            ProviderError::upstream(status, format!("Bedrock returned HTTP {status}: {message}"))
        }
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
