//! Gemini request validation and replies for the Vertex emulator (§4.3–4.6).
//!
//! Validation follows Vertex: `contents` required and non-empty, roles `user`/`model`,
//! every part exactly one kind, `functionCall`/`functionResponse` need a `name` and (on
//! Vertex, not on the Developer API) must not carry `id` (trap 13), `functionResponse.
//! response` must be an object, schemas only use the OpenAPI subset (so
//! `additionalProperties` / `$schema` are rejected like Vertex does). Replies come from
//! the shared deterministic generator: the Gemini conversation is mapped to the OpenAI
//! message shape it reads.

use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::{invalid_argument, json_body};
use crate::http::{self, Incoming};
use crate::reply::{self, ReplyBody};
use crate::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Vertex,
    Developer,
}

const TOP_LEVEL: [&str; 12] = [
    "contents",
    "systemInstruction",
    "system_instruction",
    "tools",
    "toolConfig",
    "tool_config",
    "generationConfig",
    "generation_config",
    "safetySettings",
    "safety_settings",
    "labels",
    "cachedContent",
];
const GENERATION_CONFIG: [&str; 15] = [
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "candidateCount",
    "responseMimeType",
    "responseSchema",
    "thinkingConfig",
    "responseLogprobs",
    "logprobs",
    "responseModalities",
];
/// Vertex's Schema message fields.
const SCHEMA_FIELDS: [&str; 21] = [
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
];

fn unknown(name: &str, at: &str) -> String {
    format!("Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field.")
}

fn check_schema(schema: &Value, at: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Err(format!(
            "Invalid value at '{at}': a schema must be an object."
        ));
    };
    for (k, v) in obj {
        if !SCHEMA_FIELDS.contains(&k.as_str()) && k != "maximum" {
            return Err(unknown(k, at));
        }
        match k.as_str() {
            "properties" => {
                for (name, s) in v.as_object().into_iter().flatten() {
                    check_schema(s, &format!("{at}.properties[{name}].value"))?;
                }
            }
            "items" => check_schema(v, &format!("{at}.items"))?,
            "anyOf" => {
                for (i, s) in v.as_array().into_iter().flatten().enumerate() {
                    check_schema(s, &format!("{at}.any_of[{i}]"))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_part(part: &Value, at: &str, api: Api) -> Result<(), String> {
    let Some(p) = part.as_object() else {
        return Err(format!(
            "Invalid value at '{at}': a part must be an object."
        ));
    };
    let kinds = [
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
    ];
    let mut data = 0;
    for (k, v) in p {
        match k.as_str() {
            "thought" | "thoughtSignature" => {}
            "text" if v.is_string() => data += 1,
            "inlineData" => {
                data += 1;
                let mime = v
                    .get("mimeType")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ok = v
                    .get("data")
                    .and_then(Value::as_str)
                    .is_some_and(|d| base64::engine::general_purpose::STANDARD.decode(d).is_ok());
                if mime.is_empty() || !ok {
                    return Err(format!("Invalid value at '{at}.inline_data': mimeType and base64 data are required."));
                }
            }
            "fileData" => {
                data += 1;
                if v.get("mimeType").and_then(Value::as_str).is_none()
                    || v.get("fileUri").and_then(Value::as_str).is_none()
                {
                    return Err(format!(
                        "Invalid value at '{at}.file_data': mimeType and fileUri are required."
                    ));
                }
            }
            "functionCall" | "functionResponse" => {
                data += 1;
                let snake = if k == "functionCall" {
                    "function_call"
                } else {
                    "function_response"
                };
                let Some(o) = v.as_object() else {
                    return Err(format!(
                        "Invalid value at '{at}.{snake}': must be an object."
                    ));
                };
                for key in o.keys() {
                    let allowed = matches!(key.as_str(), "name" | "args" | "response")
                        || (key == "id" && api == Api::Developer);
                    if !allowed {
                        return Err(unknown(key, &format!("{at}.{snake}")));
                    }
                }
                if o.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(format!("{at}.{snake}.name: Name is required."));
                }
                if k == "functionResponse" && !o.get("response").is_some_and(Value::is_object) {
                    return Err(format!(
                        "Invalid value at '{at}.{snake}.response': must be a JSON object."
                    ));
                }
                if k == "functionCall" && o.get("args").is_some_and(|a| !a.is_object()) {
                    return Err(format!(
                        "Invalid value at '{at}.{snake}.args': must be a JSON object."
                    ));
                }
            }
            _ if kinds.contains(&k.as_str()) => {
                return Err(format!("Invalid value at '{at}.{k}'."))
            }
            _ => return Err(unknown(k, at)),
        }
    }
    if data != 1 {
        return Err(format!("{at}: a part must have exactly one of text, inlineData, fileData, functionCall, functionResponse."));
    }
    Ok(())
}

fn get<'a>(body: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    body.get(camel).or_else(|| body.get(snake))
}

/// Checks a `generateContent` body; the error is Google's message.
pub(crate) fn validate(body: &Map<String, Value>, api: Api) -> Result<(), String> {
    for k in body.keys() {
        if !TOP_LEVEL.contains(&k.as_str()) {
            return Err(unknown(k, "(root)"));
        }
    }
    let contents = match body.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        _ => return Err("Unable to submit request because it must include at least one parts field, which describes the prompt input. Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini".into()),
    };
    for (i, c) in contents.iter().enumerate() {
        let role = c.get("role").and_then(Value::as_str);
        if !matches!(role, Some("user" | "model")) {
            return Err(format!(
                "Please use a valid role: user, model. (contents[{i}].role)"
            ));
        }
        let parts = match c.get("parts") {
            Some(Value::Array(p)) if !p.is_empty() => p,
            _ => {
                return Err(format!(
                    "Unable to submit request because it has an empty contents[{i}].parts field."
                ))
            }
        };
        for (j, p) in parts.iter().enumerate() {
            check_part(p, &format!("contents[{i}].parts[{j}]"), api)?;
        }
    }
    if let Some(sys) = get(body, "systemInstruction", "system_instruction") {
        for (j, p) in sys
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_part(p, &format!("system_instruction.parts[{j}]"), api)?;
        }
    }
    for (i, t) in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, d) in t
            .get("functionDeclarations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("tools[{i}].function_declarations[{j}]");
            if d.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!("{at}.name: Name is required."));
            }
            if let Some(p) = d.get("parameters") {
                check_schema(p, &format!("{at}.parameters"))?;
            }
        }
    }
    if let Some(tc) = get(body, "toolConfig", "tool_config") {
        let mode = tc
            .pointer("/functionCallingConfig/mode")
            .and_then(Value::as_str);
        if !matches!(
            mode,
            None | Some("AUTO" | "ANY" | "NONE" | "VALIDATED" | "MODE_UNSPECIFIED")
        ) {
            return Err(format!(
                "Invalid value at 'tool_config.function_calling_config.mode': {}",
                mode.unwrap_or_default()
            ));
        }
    }
    if let Some(gc) = get(body, "generationConfig", "generation_config").and_then(Value::as_object)
    {
        for k in gc.keys() {
            if !GENERATION_CONFIG.contains(&k.as_str()) {
                return Err(unknown(k, "generation_config"));
            }
        }
        if let Some(t) = gc.get("temperature").and_then(Value::as_f64) {
            if !(0.0..=2.0).contains(&t) {
                return Err("Unable to submit request because it has a temperature value outside the supported range of 0 to 2.".into());
            }
        }
        if let Some(s) = gc.get("responseSchema") {
            check_schema(s, "generation_config.response_schema")?;
        }
    }
    Ok(())
}

fn parts_text(parts: Option<&Value>) -> String {
    parts
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The conversation in the OpenAI message shape the reply generator reads.
fn openai_messages(contents: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for c in contents {
        let parts = c
            .get("parts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let responses: Vec<&Value> = parts
            .iter()
            .filter_map(|p| p.get("functionResponse"))
            .collect();
        if !responses.is_empty() {
            for r in responses {
                let content = r.get("response").map(Value::to_string).unwrap_or_default();
                out.push(json!({"role": "tool", "content": content}));
            }
            continue;
        }
        let role = if c.get("role").and_then(Value::as_str) == Some("model") {
            "assistant"
        } else {
            "user"
        };
        out.push(json!({"role": role, "content": parts_text(c.get("parts"))}));
    }
    out
}

fn reply_for(shared: &Shared, body: &Map<String, Value>, model: &str) -> reply::Reply {
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let messages = openai_messages(&contents);
    let tools: Vec<Value> = body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|t| t.get("functionDeclarations").and_then(Value::as_array).cloned().unwrap_or_default())
        .map(|d| json!({"type": "function", "function": {"name": d.get("name").cloned().unwrap_or(Value::Null),
            "parameters": d.get("parameters").cloned().unwrap_or(json!({}))}}))
        .collect();
    let fcc = get(body, "toolConfig", "tool_config").and_then(|t| t.get("functionCallingConfig"));
    let tool_choice = match fcc.and_then(|f| f.get("mode")).and_then(Value::as_str) {
        Some("NONE") => Some(json!("none")),
        Some("ANY") => fcc
            .and_then(|f| f.pointer("/allowedFunctionNames/0"))
            .map(|n| json!({"type": "function", "function": {"name": n}})),
        _ => None,
    };
    let gc = get(body, "generationConfig", "generation_config");
    let input = reply::ChatInput {
        cloud: &shared.config.name,
        model,
        messages: &messages,
        tools: &tools,
        tool_choice: tool_choice.as_ref(),
        max_tokens: gc
            .and_then(|g| g.get("maxOutputTokens"))
            .and_then(Value::as_u64),
        json_mode: gc
            .and_then(|g| g.get("responseMimeType"))
            .and_then(Value::as_str)
            == Some("application/json"),
        prefill: true,
    };
    let mut r = reply::chat_reply(&input);
    // Gemini's implicit caching (Gemini 2.5 and later caches by itself, per model).
    let prefixes = crate::prompt_cache::implicit_prefixes(model, None, &tools, &messages);
    let hit = shared
        .prompt_cache
        .implicit(&prefixes, crate::prompt_cache::Implicit::gemini(model));
    r.cached_tokens = hit.min(r.prompt_tokens);
    r
}

fn usage(r: &reply::Reply) -> Value {
    let mut u = json!({"promptTokenCount": r.prompt_tokens, "candidatesTokenCount": r.completion_tokens,
           "totalTokenCount": r.prompt_tokens + r.completion_tokens,
           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": r.prompt_tokens}],
           "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": r.completion_tokens}]});
    // Implicit caching: the fields appear only when something was read from the cache.
    if r.cached_tokens > 0 {
        u["cachedContentTokenCount"] = json!(r.cached_tokens);
        u["cacheTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": r.cached_tokens}]);
    }
    u
}

fn finish(r: &reply::Reply) -> &'static str {
    if r.finish_reason == "length" {
        "MAX_TOKENS"
    } else {
        "STOP"
    }
}

fn chunk(parts: Value, finish: Option<&str>, usage: Value, model: &str, id: &str) -> Value {
    let mut cand = json!({"content": {"role": "model", "parts": parts}});
    if let Some(f) = finish {
        cand["finishReason"] = json!(f);
        cand["index"] = json!(0);
    }
    json!({"candidates": [cand], "usageMetadata": usage, "modelVersion": format!("{model}-001"),
           "createTime": "2025-01-01T00:00:00.000000Z", "responseId": id})
}

/// `generateContent`, `streamGenerateContent`, `predict`, `batchEmbedContents`.
pub(crate) fn handle(
    shared: &Shared,
    req: &Incoming,
    model: &str,
    method: &str,
    api: Api,
) -> Response {
    let body = match json_body(req) {
        Ok(b) => b,
        Err(m) => return invalid_argument(&m),
    };
    match (method, api) {
        ("generateContent" | "streamGenerateContent", _) => {}
        ("predict", Api::Vertex) => return predict(&body),
        ("batchEmbedContents", Api::Developer) => return batch_embed(&body, model),
        _ => {
            return super::google_error(
                404,
                "NOT_FOUND",
                &format!("Method {method} is not found for models/{model}."),
                None,
            )
        }
    }
    if let Err(m) = validate(&body, api) {
        return invalid_argument(&m);
    }
    let r = reply_for(shared, &body, model);
    let id = format!("vtx-{}-{}", shared.config.name, req.seq);
    let parts = match &r.body {
        ReplyBody::Text(t) => json!([{"text": t}]),
        ReplyBody::Tool(call) => {
            let args: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
            json!([{"functionCall": {"name": call.name, "args": args}}])
        }
    };
    if method == "generateContent" {
        return http::json(
            200,
            &chunk(parts, Some(finish(&r)), usage(&r), model, &id),
            &[],
        );
    }
    // Stream: text word by word with `usageMetadata: {}` until the last chunk, which
    // carries finishReason and the complete usage (trap 12); a call arrives whole.
    let mut chunks = Vec::new();
    if let ReplyBody::Text(t) = &r.body {
        let words: Vec<&str> = t.split_inclusive(' ').collect();
        let (last, init) = words.split_last().map_or((&"", &[][..]), |(l, i)| (l, i));
        for w in init {
            chunks.push(chunk(json!([{"text": w}]), None, json!({}), model, &id));
        }
        chunks.push(chunk(
            json!([{"text": last}]),
            Some(finish(&r)),
            usage(&r),
            model,
            &id,
        ));
    } else {
        chunks.push(chunk(parts, Some(finish(&r)), usage(&r), model, &id));
    }
    if req.query_param("alt").as_deref() == Some("sse") {
        let mut events = chunks.iter().map(Value::to_string).collect();
        // Google's in-band failure: an `error` object as a data chunk, then the end.
        http::inject_stream_error(&mut events, &shared.faults, |status| {
            json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                "status": status}})
            .to_string()
        });
        http::sse(events, &shared.faults, &[])
    } else {
        http::json(200, &Value::Array(chunks), &[])
    }
}

fn dims(v: Option<&Value>) -> Result<usize, String> {
    match v {
        None => Ok(crate::embeddings::DEFAULT_DIMENSIONS),
        Some(d) => d
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .filter(|d| (1..=crate::embeddings::MAX_DIMENSIONS).contains(d))
            .ok_or_else(|| {
                "outputDimensionality must be a positive integer no larger than 3072.".to_string()
            }),
    }
}

fn predict(body: &Map<String, Value>) -> Response {
    let instances = match body.get("instances") {
        Some(Value::Array(i)) if !i.is_empty() => i,
        _ => return invalid_argument("instances must be a non-empty list."),
    };
    let dims = match dims(
        body.get("parameters")
            .and_then(|p| p.get("outputDimensionality")),
    ) {
        Ok(d) => d,
        Err(m) => return invalid_argument(&m),
    };
    let mut predictions = Vec::new();
    let mut chars = 0;
    for (i, inst) in instances.iter().enumerate() {
        let Some(text) = inst.get("content").and_then(Value::as_str) else {
            return invalid_argument(&format!(
                "instances[{i}].content is required and must be a string."
            ));
        };
        chars += text.chars().count();
        predictions.push(json!({"embeddings": {"values": reply::embedding(text, dims),
            "statistics": {"token_count": reply::quarter_tokens(text.chars().count()).max(1), "truncated": false}}}));
    }
    http::json(
        200,
        &json!({"predictions": predictions, "metadata": {"billableCharacterCount": chars}}),
        &[],
    )
}

fn batch_embed(body: &Map<String, Value>, model: &str) -> Response {
    let requests = match body.get("requests") {
        Some(Value::Array(r)) if !r.is_empty() => r,
        _ => return invalid_argument("requests must be a non-empty list."),
    };
    let mut out = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        if r.get("model").and_then(Value::as_str) != Some(&format!("models/{model}")) {
            return invalid_argument(&format!("requests[{i}].model must be models/{model}."));
        }
        let dims = match dims(r.get("outputDimensionality")) {
            Ok(d) => d,
            Err(m) => return invalid_argument(&m),
        };
        let text = parts_text(r.pointer("/content/parts"));
        out.push(json!({"values": reply::embedding(&text, dims)}));
    }
    http::json(200, &json!({"embeddings": out}), &[])
}
