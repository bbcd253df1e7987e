//! A client's embeddings request → canonical, and the canonical answer → the
//! client's response (float or base64 vectors). The wire types are
//! `anycloud_providers::openai::wire`; the cloud-facing direction is
//! `anycloud_providers::openai::convert`.

use crate::ingress::invalid::InvalidRequest;
use anycloud_providers::openai::wire::*;
use anycloud_types::{EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse};
use base64::Engine as _;

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

fn encode_f32_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
