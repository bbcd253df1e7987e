//! Embeddings shared by the OpenAI-compatible and Azure OpenAI emulators
//! (provider-wire-formats §1.3): input validation, deterministic vectors, float and base64
//! encodings.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::chat::ApiError;
use crate::reply;

/// Dimensions returned when the request does not ask for a number.
pub const DEFAULT_DIMENSIONS: usize = 16;
/// Largest `dimensions` the emulator accepts.
pub const MAX_DIMENSIONS: usize = 3072;
/// Most inputs in one request (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// A validated embeddings request.
#[derive(Debug, Clone)]
pub(crate) struct EmbeddingParams {
    pub model: String,
    /// Each input as hashed text, with its token count.
    pub inputs: Vec<(String, u64)>,
    pub base64: bool,
    pub dimensions: usize,
}

fn bad_input() -> ApiError {
    ApiError::invalid(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        Some("input"),
        None,
    )
}

fn token_array(a: &[Value]) -> Option<(String, u64)> {
    if a.is_empty() {
        return None;
    }
    let ids: Option<Vec<u64>> = a.iter().map(Value::as_u64).collect();
    let ids = ids?;
    let text = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    Some((text, u64::try_from(ids.len()).unwrap_or(u64::MAX)))
}

fn text_input(s: &str) -> Option<(String, u64)> {
    if s.is_empty() {
        None
    } else {
        Some((
            s.to_string(),
            reply::quarter_tokens(s.chars().count()).max(1),
        ))
    }
}

/// Validate an embeddings body; `model_required` as for chat.
pub(crate) fn validate(
    body: &Map<String, Value>,
    model_required: bool,
) -> Result<EmbeddingParams, ApiError> {
    let model = match body.get("model") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ if !model_required => String::new(),
        _ => {
            return Err(ApiError::invalid(
                "you must provide a model parameter",
                Some("model"),
                None,
            ))
        }
    };
    let inputs = match body.get("input") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "Missing required parameter: 'input'.",
                Some("input"),
                Some("missing_required_parameter"),
            ))
        }
        Some(Value::String(s)) => vec![text_input(s).ok_or_else(bad_input)?],
        Some(Value::Array(items)) if items.is_empty() || items.len() > MAX_INPUTS => {
            return Err(bad_input())
        }
        Some(Value::Array(items)) => {
            if items.iter().all(Value::is_u64) {
                vec![token_array(items).ok_or_else(bad_input)?]
            } else {
                items
                    .iter()
                    .map(|it| match it {
                        Value::String(s) => text_input(s),
                        Value::Array(a) => token_array(a),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(bad_input)?
            }
        }
        Some(_) => return Err(bad_input()),
    };
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "float" => false,
        Some(Value::String(s)) if s == "base64" => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
                Some("encoding_format"),
                Some("invalid_value"),
            ))
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=MAX_DIMENSIONS).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    format!(
                    "Invalid 'dimensions': expected an integer in 1..={MAX_DIMENSIONS}, got {v}."
                ),
                    Some("dimensions"),
                    Some("invalid_value"),
                ))
            }
        },
    };
    Ok(EmbeddingParams {
        model,
        inputs,
        base64,
        dimensions,
    })
}

/// Encode a vector as OpenAI's base64 form: little-endian f32 bytes.
pub fn to_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The `list` response body; `model` is the name reported back.
pub(crate) fn response_body(p: &EmbeddingParams, model: &str) -> Value {
    let data: Vec<Value> = p
        .inputs
        .iter()
        .enumerate()
        .map(|(i, (text, _))| {
            let v = reply::embedding(text, p.dimensions);
            let embedding = if p.base64 {
                Value::from(to_base64(&v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = p.inputs.iter().map(|(_, t)| t).sum();
    json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
}
