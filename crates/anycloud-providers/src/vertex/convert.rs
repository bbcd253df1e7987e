//! Pure translations between the canonical model and Gemini's wire format
//! (provider-wire-formats §4.3–4.6).
//!
//! Two things have no direct counterpart and are handled here:
//!
//! - **Tool-call ids.** Vertex rejects `functionCall.id` / `functionResponse.id` (trap 13),
//!   so the gateway synthesizes ids for the calls the model makes ([`synth_call_id`]) and,
//!   when the client sends results back, finds each result's function name through the
//!   assistant turn that made the call (clients resend their history).
//! - **JSON Schema.** Gemini takes an OpenAPI subset and answers 400 for keywords outside
//!   it; [`clean_schema`] strips or rewrites those.

use super::wire::*;
use crate::error::{ProviderError, ProviderErrorKind};
use anycloud_types::{
    ChatRequest, ChatResponse, ContentBlock, EmbeddingInput, EmbeddingsRequest, FinishReason,
    ImageSource, Message, ResponseFormat, Role, ToolChoice, Usage,
};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

fn invalid(message: impl Into<String>) -> ProviderError {
    let mut e = ProviderError::new(ProviderErrorKind::InvalidRequest, message);
    e.status = Some(400);
    e
}

/// A fresh tool-call id (`call_` + 24 hex digits). Random per call: `RandomState` is
/// seeded from the OS, which spares a dependency on `rand` for one number.
pub fn synth_call_id() -> String {
    let a = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let b = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("call_{a:016x}{:08x}", b as u32)
}

/// Keywords Gemini's schema subset does not know. Vertex answers 400 INVALID_ARGUMENT
/// ("Unknown name \"additionalProperties\"") for them, so they are dropped; nothing in
/// them changes which arguments are valid for a model that ignores them anyway.
const DROPPED_KEYWORDS: [&str; 12] = [
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "$ref",
    "additionalProperties",
    "unevaluatedProperties",
    "patternProperties",
    "dependentRequired",
    "strict",
    "examples",
];

/// A JSON Schema rewritten into Gemini's OpenAPI subset: unknown keywords dropped
/// ([`DROPPED_KEYWORDS`]), `const` turned into a one-value `enum`, `oneOf` into `anyOf`,
/// and a type list with `null` into one type plus `nullable: true`. Recurses only where
/// schemas nest (`properties` values, `items`, `anyOf`), so a property that happens to be
/// named `additionalProperties` survives.
pub fn clean_schema(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        if DROPPED_KEYWORDS.contains(&k.as_str()) {
            continue;
        }
        match k.as_str() {
            "properties" => {
                let props = v
                    .as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(name, s)| (name.clone(), clean_schema(s)))
                            .collect::<Map<_, _>>()
                    })
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(k.clone(), clean_schema(v));
            }
            "anyOf" | "oneOf" => {
                let list = v
                    .as_array()
                    .map(|a| a.iter().map(clean_schema).collect())
                    .unwrap_or_default();
                out.insert("anyOf".into(), Value::Array(list));
            }
            "const" => {
                out.insert("enum".into(), Value::Array(vec![v.clone()]));
            }
            "type" => match v {
                Value::Array(types) => {
                    let non_null: Vec<&Value> = types
                        .iter()
                        .filter(|t| t.as_str() != Some("null"))
                        .collect();
                    if non_null.len() < types.len() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    if let Some(first) = non_null.first() {
                        out.insert("type".into(), (*first).clone());
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Function parameters as Gemini wants them: `None` for an object without properties,
/// which Vertex rejects ("properties: should be non-empty for OBJECT type").
fn parameters(schema: &Value) -> Option<Value> {
    let cleaned = clean_schema(schema);
    let has_props = cleaned
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    has_props.then_some(cleaned)
}

fn mime_from_uri(uri: &str) -> &'static str {
    let path = uri
        .split(['?', '#'])
        .next()
        .unwrap_or(uri)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

fn image_part(source: &ImageSource) -> Part {
    match source {
        ImageSource::Base64 { media_type, data } => Part {
            inline_data: Some(Blob {
                mime_type: media_type.clone(),
                data: data.clone(),
            }),
            ..Part::default()
        },
        ImageSource::Url { url } => Part {
            file_data: Some(FileData {
                mime_type: mime_from_uri(url).to_string(),
                file_uri: url.clone(),
            }),
            ..Part::default()
        },
    }
}

/// `functionResponse.response` must be an object: a JSON object result passes through,
/// anything else is wrapped as `{"result": ...}` (`{"error": ...}` for a failed call).
fn tool_response(content: &[ContentBlock], is_error: bool) -> Value {
    let text: String = content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let parsed = serde_json::from_str::<Value>(&text).ok();
    if let (Some(Value::Object(o)), false) = (&parsed, is_error) {
        return Value::Object(o.clone());
    }
    let value = parsed.unwrap_or(Value::String(text));
    let key = if is_error { "error" } else { "result" };
    let mut m = Map::new();
    m.insert(key.into(), value);
    Value::Object(m)
}

fn message_parts(
    m: &Message,
    call_names: &HashMap<&str, &str>,
) -> Result<Vec<Part>, ProviderError> {
    let mut parts = Vec::with_capacity(m.content.len());
    for b in &m.content {
        match b {
            ContentBlock::Text { text } => parts.push(Part::text(text.clone())),
            ContentBlock::Image { source, .. } => parts.push(image_part(source)),
            ContentBlock::ToolUse {
                name, arguments, ..
            } => {
                let args = if arguments.trim().is_empty() {
                    Value::Object(Map::new())
                } else {
                    serde_json::from_str::<Value>(arguments).map_err(|_| {
                        invalid(format!("tool call {name}: arguments are not valid JSON"))
                    })?
                };
                if !args.is_object() {
                    return Err(invalid(format!(
                        "tool call {name}: arguments must be a JSON object"
                    )));
                }
                parts.push(Part {
                    function_call: Some(FunctionCall {
                        name: name.clone(),
                        args,
                    }),
                    ..Part::default()
                });
            }
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let Some(name) = call_names.get(tool_use_id.as_str()) else {
                    return Err(invalid(format!(
                        "tool result {tool_use_id} answers no tool call in the conversation"
                    )));
                };
                parts.push(Part {
                    function_response: Some(FunctionResponse {
                        name: (*name).to_string(),
                        response: tool_response(content, *is_error),
                    }),
                    ..Part::default()
                });
                for c in content {
                    if let ContentBlock::Image { source, .. } = c {
                        parts.push(image_part(source));
                    }
                }
            }
        }
    }
    Ok(parts)
}

/// The `generateContent` body for `req`. System and developer messages become
/// `systemInstruction`; assistant turns are `model`; tool results go into `user` turns;
/// adjacent turns of one role are merged (parallel tool results belong in one turn).
pub fn request_to_wire(req: &ChatRequest) -> Result<GenerateContentRequest, ProviderError> {
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for m in &req.messages {
        for b in &m.content {
            if let ContentBlock::ToolUse { id, name, .. } = b {
                call_names.insert(id.as_str(), name.as_str());
            }
        }
    }
    let mut system: Vec<Part> = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    for m in &req.messages {
        if m.role.is_system() {
            system.extend(message_parts(m, &call_names)?);
            continue;
        }
        let role = match m.role {
            Role::Assistant => "model",
            _ => "user",
        };
        let parts = message_parts(m, &call_names)?;
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(last) if last.role.as_deref() == Some(role) => last.parts.extend(parts),
            _ => contents.push(Content {
                role: Some(role.to_string()),
                parts,
            }),
        }
    }
    if contents.is_empty() {
        return Err(invalid("the request has no user or assistant messages"));
    }

    let tools = if req.tools.is_empty() {
        Vec::new()
    } else {
        vec![ToolWire {
            function_declarations: req
                .tools
                .iter()
                .map(|t| FunctionDeclaration {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: parameters(&t.parameters),
                })
                .collect(),
        }]
    };
    let tool_config = req.tool_choice.as_ref().map(|c| {
        let (mode, names) = match c {
            ToolChoice::Auto => ("AUTO", vec![]),
            ToolChoice::None => ("NONE", vec![]),
            ToolChoice::Required => ("ANY", vec![]),
            ToolChoice::Tool(name) => ("ANY", vec![name.clone()]),
        };
        ToolConfig {
            function_calling_config: FunctionCallingConfig {
                mode: mode.to_string(),
                allowed_function_names: names,
            },
        }
    });

    let p = &req.params;
    let (mime, schema) = match &req.response_format {
        Some(ResponseFormat::JsonObject) => (Some("application/json".to_string()), None),
        Some(ResponseFormat::JsonSchema { schema, .. }) => (
            Some("application/json".to_string()),
            Some(clean_schema(schema)),
        ),
        Some(ResponseFormat::Text) | None => (None, None),
    };
    let generation_config = GenerationConfig {
        temperature: p.temperature,
        top_p: p.top_p,
        top_k: p.top_k,
        max_output_tokens: p.max_tokens,
        stop_sequences: p.stop.clone(),
        seed: p.seed,
        presence_penalty: p.presence_penalty,
        frequency_penalty: p.frequency_penalty,
        candidate_count: None,
        response_mime_type: mime,
        response_schema: schema,
    };
    Ok(GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(Content {
            role: None,
            parts: system,
        }),
        tools,
        tool_config,
        generation_config: (generation_config != GenerationConfig::default())
            .then_some(generation_config),
    })
}

/// Gemini's `finishReason` in canonical terms (§4.4). A tool call ends with `STOP`;
/// callers that saw a `functionCall` part report [`FinishReason::ToolCalls`] instead.
pub fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        _ => FinishReason::Other,
    }
}

/// Canonical usage: output is candidates + thoughts (thoughts are billed as output but not
/// counted in `candidatesTokenCount`); the cached count is a subset of the prompt count.
pub fn usage(u: &UsageMetadata) -> Usage {
    let thoughts = u.thoughts_token_count.unwrap_or(0);
    Usage {
        input_tokens: u.prompt_token_count.unwrap_or(0),
        output_tokens: u.candidates_token_count.unwrap_or(0) + thoughts,
        cached_input_tokens: u.cached_content_token_count.unwrap_or(0),
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        reasoning_tokens: thoughts,
    }
}

/// A prompt the safety filters blocked (200 with no candidates) is the client's request
/// being refused, like Azure's prompt filter: an invalid request, not a cloud failure.
pub fn blocked_prompt(resp: &GenerateContentResponse) -> Option<ProviderError> {
    if !resp.candidates.is_empty() {
        return None;
    }
    let fb = resp.prompt_feedback.as_ref()?;
    let reason = fb.block_reason.as_deref()?;
    let detail = fb
        .block_reason_message
        .as_deref()
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    Some(invalid(format!(
        "the prompt was blocked by the cloud's safety filters ({reason}){detail}"
    )))
}

/// A non-streaming response in canonical form; `target` names the model when the cloud
/// sends no `modelVersion`.
pub fn response_from_wire(
    resp: GenerateContentResponse,
    target: &str,
    now: i64,
) -> Result<ChatResponse, ProviderError> {
    if let Some(e) = blocked_prompt(&resp) {
        return Err(e);
    }
    let Some(cand) = resp.candidates.into_iter().next() else {
        return Err(ProviderError::new(
            ProviderErrorKind::Protocol,
            "upstream response has no candidates",
        ));
    };
    let mut content = Vec::new();
    let mut tool_calls = false;
    for part in cand.content.map(|c| c.parts).unwrap_or_default() {
        if let Some(call) = part.function_call {
            tool_calls = true;
            content.push(ContentBlock::ToolUse {
                id: synth_call_id(),
                name: call.name,
                arguments: args_text(&call.args),
            });
        } else if let (Some(text), false) = (part.text, part.thought == Some(true)) {
            match content.last_mut() {
                Some(ContentBlock::Text { text: prev }) => prev.push_str(&text),
                _ => content.push(ContentBlock::Text { text }),
            }
        }
    }
    let finish = match (tool_calls, cand.finish_reason.as_deref()) {
        (true, Some("STOP") | None) => FinishReason::ToolCalls,
        (_, Some(r)) => finish_reason(r),
        (false, None) => FinishReason::Stop,
    };
    Ok(ChatResponse {
        id: resp.response_id.unwrap_or_default(),
        model: resp.model_version.unwrap_or_else(|| target.to_string()),
        created: now,
        content,
        finish_reason: finish,
        usage: resp.usage_metadata.as_ref().map(usage).unwrap_or_default(),
        system_fingerprint: None,
    })
}

/// Function-call arguments as JSON text (`{}` when the model sent none).
pub fn args_text(args: &Value) -> String {
    match args {
        Value::Null => "{}".to_string(),
        v => v.to_string(),
    }
}

fn text_inputs(req: &EmbeddingsRequest) -> Result<Vec<String>, ProviderError> {
    req.inputs
        .iter()
        .map(|i| match i {
            EmbeddingInput::Text(t) => Ok(t.clone()),
            EmbeddingInput::Tokens(_) => Err(ProviderError::new(
                ProviderErrorKind::Unsupported,
                "Vertex AI embeddings take text, not token ids",
            )),
        })
        .collect()
}

/// Vertex `:predict` body for a text-embedding model.
pub fn predict_request(req: &EmbeddingsRequest) -> Result<PredictRequest, ProviderError> {
    Ok(PredictRequest {
        instances: text_inputs(req)?
            .into_iter()
            .map(|content| EmbedInstance { content })
            .collect(),
        parameters: req.dimensions.map(|d| EmbedParameters {
            output_dimensionality: Some(d),
        }),
    })
}

/// Vectors and summed `statistics.token_count` from a `:predict` answer.
pub fn predict_response(resp: PredictResponse) -> (Vec<Vec<f32>>, Usage) {
    let mut tokens = 0.0;
    let vectors = resp
        .predictions
        .into_iter()
        .map(|p| {
            tokens += p.embeddings.statistics.map_or(0.0, |s| s.token_count);
            p.embeddings.values
        })
        .collect();
    let usage = Usage {
        input_tokens: tokens as u64,
        ..Usage::default()
    };
    (vectors, usage)
}

/// Gemini Developer API `:batchEmbedContents` body.
pub fn batch_embed_request(
    req: &EmbeddingsRequest,
    target: &str,
) -> Result<BatchEmbedRequest, ProviderError> {
    Ok(BatchEmbedRequest {
        requests: text_inputs(req)?
            .into_iter()
            .map(|t| EmbedContentRequest {
                model: format!("models/{target}"),
                content: Content {
                    role: None,
                    parts: vec![Part::text(t)],
                },
                output_dimensionality: req.dimensions,
            })
            .collect(),
    })
}
