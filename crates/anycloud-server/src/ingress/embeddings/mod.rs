//! `POST /v1/embeddings` (OpenAI shape; float or base64 output): the wire
//! translation only; the request path is [`crate::ingress::pipeline`].

pub mod convert;

use crate::error::ApiError;
use crate::ingress::pipeline::{Api, RequestCtx};
use crate::ingress::relay::NoStream;
use anycloud_providers::openai::wire::{EmbeddingsRequestWire, EmbeddingsResponseWire};
use anycloud_types::{EmbeddingsRequest, EmbeddingsResponse};
use convert::{embeddings_request_from_wire, embeddings_response_to_wire};

/// The Embeddings API.
#[derive(Debug)]
pub struct Embeddings;

/// `encoding_format: "base64"`.
#[derive(Debug)]
pub struct Base64(bool);

impl Api for Embeddings {
    const NAME: &'static str = "embeddings";
    type Wire = EmbeddingsRequestWire;
    type Canon = EmbeddingsRequest;
    type Extra = Base64;
    type Out = EmbeddingsResponseWire;
    type Sse = NoStream;

    async fn parse(
        _ctx: &RequestCtx,
        wire: EmbeddingsRequestWire,
    ) -> Result<(EmbeddingsRequest, Base64), ApiError> {
        embeddings_request_from_wire(wire)
            .map(|(req, b64)| (req, Base64(b64)))
            .map_err(ApiError::from)
    }

    async fn encode(
        _ctx: &RequestCtx,
        canon: &EmbeddingsRequest,
        extra: Base64,
        answer: &EmbeddingsResponse,
    ) -> Result<EmbeddingsResponseWire, ApiError> {
        Ok(embeddings_response_to_wire(answer, &canon.model, extra.0))
    }

    fn sse(
        _ctx: &RequestCtx,
        _canon: &EmbeddingsRequest,
        _extra: Base64,
    ) -> Result<NoStream, ApiError> {
        // Never called: an embeddings request does not stream (`Upstream::stream`).
        Err(ApiError::invalid(
            "Embeddings cannot be streamed.",
            Some("stream"),
        ))
    }
}
