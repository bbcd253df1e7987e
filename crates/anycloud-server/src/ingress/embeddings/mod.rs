//! `POST /v1/embeddings` (OpenAI shape; float or base64 output): the wire
//! translation only; the request path is [`crate::ingress::pipeline`].

pub mod convert;

use crate::error::ApiError;
use crate::ingress::pipeline::{Api, RequestCtx};
use anycloud_providers::openai::wire::EmbeddingsRequestWire;
use anycloud_types::{EmbeddingsRequest, EmbeddingsResponse};
use convert::{embeddings_request_from_wire, embeddings_response_to_wire};

/// The Embeddings API; a value is whether the client asked for base64 vectors
/// (`encoding_format: "base64"`). It does not stream: the pipeline's refusal stands.
#[derive(Debug)]
pub struct Embeddings(bool);

impl Api for Embeddings {
    const NAME: &'static str = "embeddings";
    type Wire = EmbeddingsRequestWire;
    type Canon = EmbeddingsRequest;

    async fn parse(
        _ctx: &RequestCtx,
        wire: Self::Wire,
    ) -> Result<(EmbeddingsRequest, Self), ApiError> {
        embeddings_request_from_wire(wire)
            .map(|(req, base64)| (req, Embeddings(base64)))
            .map_err(ApiError::from)
    }

    async fn encode(
        self,
        ctx: &RequestCtx,
        answer: &EmbeddingsResponse,
    ) -> Result<impl serde::Serialize + Send + use<>, ApiError> {
        Ok(embeddings_response_to_wire(answer, ctx.model(), self.0))
    }
}
