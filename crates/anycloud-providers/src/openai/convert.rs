//! Pure translations between OpenAI's Chat Completions / Embeddings JSON and
//! the canonical model, both directions.
//!
//! - Egress (`request_to_wire`, `response_from_wire`, `embeddings_*_to_wire` /
//!   `_from_wire` for responses): used by the `openai`, `openai_compatible` and
//!   `azure_openai` providers.
//! - Ingress (`request_from_wire`, `response_to_wire`, ...): used by the
//!   server's OpenAI-compatible API. `request_from_wire` validates what
//!   OpenAI validates and names the offending field in `param`, so clients
//!   get the error they would get from OpenAI.
//!
//! No I/O here; everything is unit-tested below.

use super::wire::*;
use crate::error::{ProviderError, ProviderErrorKind};
use anycloud_types::{
    ChatRequest, ChatResponse, ContentBlock, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse,
    FinishReason, ImageSource, Message, ResponseFormat, Role, SamplingParams, Tool, ToolChoice,
    Usage,
};
use base64::Engine as _;
use serde_json::{json, Value};

/// A client request that OpenAI would reject with 400 `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    /// The offending field, OpenAI style (`messages[1].tool_call_id`).
    pub param: Option<String>,
}

impl InvalidRequest {
    fn new(message: impl Into<String>, param: impl Into<String>) -> InvalidRequest {
        InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }
}

impl std::fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidRequest {}

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

// --------------------------------------------------------------- chat ingress

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
    let messages = w
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| message_from_wire(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let tools = w
        .tools
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| tool_from_wire(i, t))
        .collect::<Result<Vec<_>, _>>()?;
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

/// Inputs one embeddings request may carry.
pub const MAX_EMBEDDING_INPUTS: usize = 2_048;

/// Parses a client's embeddings request; the flag says whether it wants
/// base64 vectors back.
pub fn embeddings_request_from_wire(
    w: EmbeddingsRequestWire,
) -> Result<(EmbeddingsRequest, bool), InvalidRequest> {
    let empty = || InvalidRequest::new("'input' must not be empty.", "input");
    let inputs = match w.input {
        EmbeddingInputWire::One(s) => vec![EmbeddingInput::Text(s)],
        EmbeddingInputWire::Many(v) => v.into_iter().map(EmbeddingInput::Text).collect(),
        EmbeddingInputWire::Tokens(t) => vec![EmbeddingInput::Tokens(t)],
        EmbeddingInputWire::ManyTokens(v) => v.into_iter().map(EmbeddingInput::Tokens).collect(),
    };
    let any_empty = inputs.iter().any(|i| match i {
        EmbeddingInput::Text(t) => t.is_empty(),
        EmbeddingInput::Tokens(t) => t.is_empty(),
    });
    if inputs.is_empty() || any_empty {
        return Err(empty());
    }
    // OpenAI's own limit; on Bedrock each input is one upstream call, so an unbounded
    // list would let one request burn a shared quota.
    if inputs.len() > MAX_EMBEDDING_INPUTS {
        return Err(InvalidRequest::new(
            format!(
                "'input' has {} items; at most {MAX_EMBEDDING_INPUTS} are allowed per request.",
                inputs.len()
            ),
            "input",
        ));
    }
    let base64 = match w.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(InvalidRequest::new(
                format!("Invalid value: '{other}'. Supported values are: 'float' and 'base64'."),
                "encoding_format",
            ))
        }
    };
    if w.dimensions == Some(0) {
        return Err(InvalidRequest::new(
            "Invalid 'dimensions': must be at least 1.",
            "dimensions",
        ));
    }
    Ok((
        EmbeddingsRequest {
            model: w.model,
            inputs,
            dimensions: w.dimensions,
            user: w.user,
        },
        base64,
    ))
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

/// The client-facing embeddings response.
pub fn embeddings_response_to_wire(
    r: &EmbeddingsResponse,
    public_model: &str,
    base64: bool,
) -> EmbeddingsResponseWire {
    EmbeddingsResponseWire {
        object: "list".into(),
        data: r
            .vectors
            .iter()
            .enumerate()
            .map(|(i, v)| EmbeddingData {
                object: "embedding".into(),
                index: i as u32,
                embedding: if base64 {
                    EmbeddingVector::Base64(encode_f32_base64(v))
                } else {
                    EmbeddingVector::Float(v.clone())
                },
            })
            .collect(),
        model: public_model.to_string(),
        usage: EmbeddingUsage {
            prompt_tokens: r.usage.input_tokens,
            total_tokens: r.usage.total(),
        },
    }
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

fn encode_f32_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Serialises an [`InvalidRequest`] in OpenAI's error shape (for the server).
pub fn invalid_request_body(e: &InvalidRequest) -> Value {
    json!({"error": {"message": e.message, "type": "invalid_request_error",
                     "param": e.param, "code": null}})
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
