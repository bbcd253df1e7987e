//! Oracle OCI Generative AI inference emulator (provider-wire-formats §6):
//! `POST /20231130/actions/chat` (GENERIC format, JSON or SSE) and
//! `POST /20231130/actions/embedText`.
//!
//! As strict as the service is documented to be: every request's signature is verified
//! against the configured public key (`oci_sig.rs`; 401 `NotAuthenticated`), the
//! `compartmentId` must be the configured one and the on-demand model / dedicated endpoint
//! must exist (404 `NotAuthorizedOrNotFound`, OCI's deliberately vague answer), and the body
//! is validated (400 `InvalidParameter`). Errors use OCI's `{"code","message"}` shape with an
//! `opc-request-id` header. Replies come from `reply.rs`, after translating the GENERIC
//! messages into the OpenAI-like JSON it reads.
//!
//! Streaming follows §6.4's best description (unconfirmed upstream): data-only SSE events,
//! text chunks `{"index":0,"message":{"role":"ASSISTANT","content":[{"type":"TEXT",...}]}}`,
//! tool calls under `message.toolCalls[].function`, a final chunk with `finishReason`, then
//! a `usage` chunk when `streamOptions.isIncludeUsage` is set. No `[DONE]`.

use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::faults::InjectedFailure;
use crate::http::{self, Incoming};
use crate::reply::{self, ChatInput, Reply, ReplyBody};
use crate::{oci_sig, Shared};

const CHAT_PATH: &str = "/20231130/actions/chat";
const EMBED_PATH: &str = "/20231130/actions/embedText";
/// Dimensions of emulated embeddings (Cohere embed v3's size).
const EMBED_DIMS: usize = 1024;
/// OCI's limit on inputs per embedText call.
const MAX_EMBED_INPUTS: usize = 96;
const ROLES: [&str; 5] = ["SYSTEM", "USER", "ASSISTANT", "TOOL", "DEVELOPER"];

fn headers(req: &Incoming) -> Vec<(&'static str, String)> {
    let client = req.header("opc-request-id").unwrap_or("EMU");
    vec![(
        "opc-request-id",
        format!("{client}/{:032X}", u128::from(req.seq)),
    )]
}

/// An OCI error answer.
fn oci_error(req: &Incoming, status: u16, code: &str, message: &str) -> Response {
    http::json(
        status,
        &json!({"code": code, "message": message}),
        &headers(req),
    )
}

fn invalid(req: &Incoming, message: impl AsRef<str>) -> Response {
    oci_error(req, 400, "InvalidParameter", message.as_ref())
}

fn not_found(req: &Incoming) -> Response {
    oci_error(
        req,
        404,
        "NotAuthorizedOrNotFound",
        "Authorization failed or requested resource not found.",
    )
}

/// The error an injected failure produces, in OCI's shape.
pub(crate) fn injected_error(req: &Incoming, f: InjectedFailure) -> Response {
    let (code, message) = match f.status {
        429 => ("TooManyRequests", "Too many requests for the user"),
        500 => ("InternalServerError", "Internal server error"),
        503 => (
            "ServiceUnavailable",
            "The service is currently unavailable. Try again later.",
        ),
        400 => ("InvalidParameter", "Injected invalid parameter."),
        401 => (
            "NotAuthenticated",
            "The required information to complete authentication was not provided.",
        ),
        404 => (
            "NotAuthorizedOrNotFound",
            "Authorization failed or requested resource not found.",
        ),
        s if s >= 500 => ("InternalServerError", "Injected server failure"),
        _ => ("InvalidParameter", "Injected failure"),
    };
    let mut h = headers(req);
    if let Some(s) = f.retry_after_secs {
        h.push(("retry-after", s.to_string()));
    }
    http::json(f.status, &json!({"code": code, "message": message}), &h)
}

/// Serve one model-endpoint request.
pub(crate) async fn handle(shared: &Shared, req: &Incoming) -> Response {
    let path = req.path.trim_end_matches('/');
    let chat = match (&req.method, path) {
        (&Method::POST, CHAT_PATH) => true,
        (&Method::POST, EMBED_PATH) => false,
        _ => return not_found(req),
    };
    let Some(cfg) = shared.config.oci.as_ref() else {
        return oci_error(
            req,
            500,
            "InternalServerError",
            "emulator has no OCI config",
        );
    };
    if let Err(reason) = oci_sig::verify(cfg, req) {
        tracing::debug!(%reason, "oci emulator rejected a signature");
        return oci_error(
            req,
            401,
            "NotAuthenticated",
            &format!("The required information to complete authentication was not provided or was incorrect ({reason})."),
        );
    }
    if !req.has_json_content_type() {
        return invalid(req, "Content-Type must be application/json");
    }
    let body: Map<String, Value> = match serde_json::from_slice(&req.body) {
        Ok(Value::Object(o)) => o,
        _ => return invalid(req, "The request body is not a valid JSON object."),
    };
    match body.get("compartmentId").and_then(Value::as_str) {
        None => return oci_error(req, 400, "MissingParameter", "compartmentId is required."),
        Some(c) if c != cfg.compartment_id => return not_found(req),
        Some(_) => {}
    }
    let model = match serving_mode(shared, &body) {
        Ok(m) => m,
        Err(ServingError::Invalid(m)) => return invalid(req, m),
        Err(ServingError::NotFound) => return not_found(req),
    };
    if chat {
        chat_response(shared, req, &body, &model)
    } else {
        embed_response(req, &body, &model)
    }
}

enum ServingError {
    Invalid(String),
    NotFound,
}

/// The model id or endpoint OCID the request names, if this emulator serves it.
fn serving_mode(shared: &Shared, body: &Map<String, Value>) -> Result<String, ServingError> {
    let invalid = |m: &str| ServingError::Invalid(m.to_string());
    let mode = body
        .get("servingMode")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("servingMode is required."))?;
    let (field, prefix_ok): (&str, fn(&str) -> bool) =
        match mode.get("servingType").and_then(Value::as_str) {
            Some("ON_DEMAND") => ("modelId", |_| true),
            Some("DEDICATED") => ("endpointId", |id| {
                id.starts_with("ocid1.generativeaiendpoint")
            }),
            _ => {
                return Err(invalid(
                    "servingMode.servingType must be ON_DEMAND or DEDICATED.",
                ))
            }
        };
    let id = mode
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ServingError::Invalid(format!("servingMode.{field} is required.")))?;
    if !prefix_ok(id) {
        return Err(invalid("servingMode.endpointId must be an endpoint OCID."));
    }
    if shared.config.models.iter().any(|m| m == id) {
        Ok(id.to_string())
    } else {
        Err(ServingError::NotFound)
    }
}

/// The GENERIC chat request translated into the OpenAI-like JSON `reply.rs` reads.
struct Generic {
    messages: Vec<Value>,
    tools: Vec<Value>,
    tool_choice: Option<Value>,
    max_tokens: Option<u64>,
    stream: bool,
    include_usage: bool,
    json_mode: bool,
}

fn parse_generic(chat: &Map<String, Value>) -> Result<Generic, String> {
    match chat.get("apiFormat").and_then(Value::as_str) {
        Some("GENERIC") => {}
        Some(other) => {
            return Err(format!(
                "chatRequest.apiFormat {other} is not served by this emulator (GENERIC only)."
            ))
        }
        None => return Err("chatRequest.apiFormat is required.".into()),
    }
    let msgs = chat
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("chatRequest.messages must be a non-empty array.")?;
    let mut messages = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        messages.push(parse_message(m).map_err(|e| format!("chatRequest.messages[{i}]: {e}"))?);
    }
    let mut tools = Vec::new();
    for (i, t) in chat
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        match (t.get("type").and_then(Value::as_str), name) {
            (Some("FUNCTION"), Some(name)) => tools.push(json!({"type": "function",
                "function": {"name": name, "parameters": t.get("parameters").cloned().unwrap_or(json!({}))}})),
            _ => return Err(format!("chatRequest.tools[{i}] must be a FUNCTION with a name.")),
        }
    }
    let tool_choice = match chat.get("toolChoice") {
        None | Some(Value::Null) => None,
        Some(c) => Some(match c.get("type").and_then(Value::as_str) {
            Some("AUTO") => json!("auto"),
            Some("NONE") => json!("none"),
            Some("REQUIRED") => json!("required"),
            Some("FUNCTION") => json!({"type": "function", "function": {"name":
                c.get("name").and_then(Value::as_str).ok_or("chatRequest.toolChoice.name is required.")?}}),
            _ => {
                return Err(
                    "chatRequest.toolChoice.type must be AUTO, NONE, REQUIRED or FUNCTION.".into(),
                )
            }
        }),
    };
    let max_tokens = match chat.get("maxTokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| *n > 0)
                .ok_or("chatRequest.maxTokens must be a positive integer.")?,
        ),
    };
    let stream = match chat.get("isStream") {
        None | Some(Value::Null) => false,
        Some(v) => v
            .as_bool()
            .ok_or("chatRequest.isStream must be a boolean.")?,
    };
    let include_usage = chat
        .get("streamOptions")
        .and_then(|o| o.get("isIncludeUsage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let json_mode = chat
        .get("responseFormat")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "JSON_OBJECT" || t == "JSON_SCHEMA");
    Ok(Generic {
        messages,
        tools,
        tool_choice,
        max_tokens,
        stream,
        include_usage,
        json_mode,
    })
}

/// One GENERIC message, validated, as an OpenAI-like message.
fn parse_message(m: &Value) -> Result<Value, String> {
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .filter(|r| ROLES.contains(r))
        .ok_or("role must be one of SYSTEM, USER, ASSISTANT, TOOL, DEVELOPER.")?;
    let mut text = Vec::new();
    for (j, p) in m
        .get("content")
        .map(|c| c.as_array().ok_or("content must be an array of parts."))
        .transpose()?
        .into_iter()
        .flatten()
        .enumerate()
    {
        match p.get("type").and_then(Value::as_str) {
            Some("TEXT") => text.push(
                p.get("text")
                    .and_then(Value::as_str)
                    .ok_or(format!("content[{j}].text must be a string."))?,
            ),
            Some("IMAGE") => {
                p.pointer("/imageUrl/url")
                    .and_then(Value::as_str)
                    .ok_or(format!("content[{j}].imageUrl.url must be a string."))?;
            }
            _ => return Err(format!("content[{j}].type must be TEXT or IMAGE.")),
        }
    }
    let mut out = json!({"role": role.to_ascii_lowercase(), "content": text.join(" ")});
    if role == "TOOL" {
        let id = m.get("toolCallId").and_then(Value::as_str);
        out["tool_call_id"] = json!(id.ok_or("a TOOL message needs toolCallId.")?);
    }
    if let Some(calls) = m.get("toolCalls") {
        if role != "ASSISTANT" {
            return Err("only ASSISTANT messages carry toolCalls.".into());
        }
        let mut wire = Vec::new();
        for c in calls.as_array().ok_or("toolCalls must be an array.")? {
            let field = |k: &str| c.get(k).and_then(Value::as_str);
            match (field("id"), field("name"), field("arguments")) {
                (Some(id), Some(name), Some(args)) => wire
                    .push(json!({"id": id, "type": "function",
                    "function": {"name": name, "arguments": args}})),
                _ => return Err("each toolCall needs id, name and arguments (JSON text).".into()),
            }
        }
        out["tool_calls"] = Value::Array(wire);
    }
    if m.get("content").is_none() && out.get("tool_calls").is_none() {
        return Err("content is required.".into());
    }
    Ok(out)
}

fn usage_json(r: &Reply) -> Value {
    json!({"promptTokens": r.prompt_tokens, "completionTokens": r.completion_tokens,
        "totalTokens": r.prompt_tokens + r.completion_tokens})
}

fn chat_response(
    shared: &Shared,
    req: &Incoming,
    body: &Map<String, Value>,
    model: &str,
) -> Response {
    let Some(chat) = body.get("chatRequest").and_then(Value::as_object) else {
        return invalid(req, "chatRequest is required.");
    };
    let g = match parse_generic(chat) {
        Ok(g) => g,
        Err(e) => return invalid(req, e),
    };
    let r = reply::chat_reply(&ChatInput {
        cloud: &shared.config.name,
        model,
        messages: &g.messages,
        tools: &g.tools,
        tool_choice: g.tool_choice.as_ref(),
        max_tokens: g.max_tokens,
        json_mode: g.json_mode,
        prefill: false,
    });
    if g.stream {
        return http::sse(
            stream_events(&r, g.include_usage),
            &shared.faults,
            &headers(req),
        );
    }
    let message = match &r.body {
        ReplyBody::Text(t) => {
            json!({"role": "ASSISTANT", "content": [{"type": "TEXT", "text": t}]})
        }
        ReplyBody::Tool(c) => json!({"role": "ASSISTANT", "toolCalls": [{"id": c.id,
            "type": "FUNCTION", "name": c.name, "arguments": c.arguments}]}),
    };
    let out = json!({"modelId": model, "modelVersion": "1.0.0", "chatResponse": {
        "apiFormat": "GENERIC", "timeCreated": rfc3339(http::unix_now()),
        "choices": [{"index": 0, "finishReason": r.finish_reason, "message": message}],
        "usage": usage_json(&r)}});
    http::json(200, &out, &headers(req))
}

/// The SSE data objects of a streamed reply.
fn stream_events(r: &Reply, include_usage: bool) -> Vec<String> {
    let mut out = Vec::new();
    match &r.body {
        ReplyBody::Text(text) => {
            for piece in text.split_inclusive(' ') {
                out.push(json!({"index": 0, "message": {"role": "ASSISTANT",
                    "content": [{"type": "TEXT", "text": piece}]}}));
            }
        }
        ReplyBody::Tool(c) => {
            // The first fragment names the call; later ones continue its arguments.
            let chars: Vec<char> = c.arguments.chars().collect();
            for (i, piece) in chars.chunks(8).enumerate() {
                let piece: String = piece.iter().collect();
                let call = if i == 0 {
                    json!({"id": c.id, "type": "FUNCTION", "function": {"name": c.name, "arguments": piece}})
                } else {
                    json!({"type": "FUNCTION", "function": {"arguments": piece}})
                };
                out.push(
                    json!({"index": 0, "message": {"role": "ASSISTANT", "toolCalls": [call]}}),
                );
            }
        }
    }
    out.push(json!({"index": 0, "message": {"role": "ASSISTANT"},
        "finishReason": r.finish_reason, "pad": "aaaa"}));
    if include_usage {
        out.push(json!({"usage": usage_json(r)}));
    }
    out.into_iter().map(|v| v.to_string()).collect()
}

fn embed_response(req: &Incoming, body: &Map<String, Value>, model: &str) -> Response {
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return invalid(req, "inputs must be an array of strings.");
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBED_INPUTS {
        return invalid(
            req,
            format!("inputs must hold 1 to {MAX_EMBED_INPUTS} strings."),
        );
    }
    let Some(texts) = inputs.iter().map(Value::as_str).collect::<Option<Vec<_>>>() else {
        return invalid(req, "inputs must be an array of strings.");
    };
    match body.get("truncate").and_then(Value::as_str) {
        None | Some("NONE" | "START" | "END") => {}
        Some(_) => return invalid(req, "truncate must be NONE, START or END."),
    }
    let embeddings: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| reply::embedding(t, EMBED_DIMS))
        .collect();
    let out = json!({"id": format!("emb-{}", req.seq), "embeddings": embeddings,
        "modelId": model, "modelVersion": "3.0"});
    http::json(200, &out, &headers(req))
}

/// Unix seconds as an RFC 3339 UTC timestamp (days-to-civil, Howard Hinnant's algorithm;
/// not worth a date crate for one field).
fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn generic_messages_are_validated() {
        let ok = json!({"role": "USER", "content": [{"type": "TEXT", "text": "a"},
            {"type": "IMAGE", "imageUrl": {"url": "data:image/png;base64,AA"}}]});
        assert_eq!(
            parse_message(&ok).unwrap(),
            json!({"role": "user", "content": "a"})
        );
        assert!(parse_message(&json!({"role": "user", "content": []})).is_err());
        assert!(parse_message(&json!({"role": "USER", "content": [{"type": "AUDIO"}]})).is_err());
        assert!(parse_message(&json!({"role": "TOOL", "content": []})).is_err());
        assert!(parse_message(&json!({"role": "USER"})).is_err());
        let call = json!({"role": "ASSISTANT", "toolCalls": [{"id": "c", "type": "FUNCTION",
            "name": "f", "arguments": "{}"}]});
        assert_eq!(
            parse_message(&call).unwrap()["tool_calls"][0]["function"]["name"],
            "f"
        );
    }
}
