//! `POST /v1/chat/completions` (OpenAI Chat Completions), non-streaming and SSE
//! streaming: the wire translation only; the request path is [`crate::ingress::pipeline`].

pub mod convert;
pub mod stream;

use crate::error::ApiError;
use crate::ingress::pipeline::{Api, RequestCtx};
use crate::ingress::relay::SseEncoder;
use anycloud_providers::openai::wire::ChatCompletionRequest;
use anycloud_types::{ChatRequest, ChatResponse};
use convert::{request_from_wire, response_to_wire};
use stream::ChunkEncoder;

const ID_PREFIX: &str = "chatcmpl-";

/// The Chat Completions API; a value is what encoding its answer needs.
#[derive(Debug)]
pub struct Chat {
    /// `stream_options.include_usage`: send the final usage chunk.
    include_usage: bool,
}

impl Api for Chat {
    const NAME: &'static str = "chat_completions";
    type Wire = ChatCompletionRequest;
    type Canon = ChatRequest;

    async fn parse(_ctx: &RequestCtx, wire: Self::Wire) -> Result<(ChatRequest, Chat), ApiError> {
        let include_usage = wire
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let chat = request_from_wire(wire)?;
        Ok((chat, Chat { include_usage }))
    }

    async fn encode(
        self,
        ctx: &RequestCtx,
        answer: &ChatResponse,
    ) -> Result<impl serde::Serialize + Send + use<>, ApiError> {
        let id = ctx.answer_id(ID_PREFIX);
        Ok(response_to_wire(answer, ctx.model(), &id, ctx.created))
    }

    fn sse(
        self,
        ctx: &RequestCtx,
        canon: &ChatRequest,
    ) -> Result<impl SseEncoder + use<>, ApiError> {
        Ok(ChunkEncoder::new(
            ctx.answer_id(ID_PREFIX),
            ctx.created,
            canon.model.clone(),
            self.include_usage,
        ))
    }
}
