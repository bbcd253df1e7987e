//! `POST /v1/chat/completions` (OpenAI Chat Completions), non-streaming and SSE
//! streaming: the wire translation only; the request path is [`crate::ingress::pipeline`].

pub mod convert;
pub mod stream;

use crate::error::ApiError;
use crate::ingress::pipeline::{Api, RequestCtx};
use anycloud_providers::openai::wire::{ChatCompletionRequest, ChatCompletionResponse};
use anycloud_types::{ChatRequest, ChatResponse};
use convert::{request_from_wire, response_to_wire};
use stream::ChunkEncoder;

const ID_PREFIX: &str = "chatcmpl-";

/// The Chat Completions API.
#[derive(Debug)]
pub struct Chat;

/// What the answer needs besides the canonical request.
#[derive(Debug)]
pub struct ChatExtra {
    /// `stream_options.include_usage`: send the final usage chunk.
    include_usage: bool,
}

impl Api for Chat {
    const NAME: &'static str = "chat_completions";
    type Wire = ChatCompletionRequest;
    type Canon = ChatRequest;
    type Extra = ChatExtra;
    type Out = ChatCompletionResponse;
    type Sse = ChunkEncoder;

    async fn parse(
        _ctx: &RequestCtx,
        wire: ChatCompletionRequest,
    ) -> Result<(ChatRequest, ChatExtra), ApiError> {
        let include_usage = wire
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let chat = request_from_wire(wire)?;
        Ok((chat, ChatExtra { include_usage }))
    }

    async fn encode(
        ctx: &RequestCtx,
        canon: &ChatRequest,
        _extra: ChatExtra,
        answer: &ChatResponse,
    ) -> Result<ChatCompletionResponse, ApiError> {
        let id = ctx.answer_id(ID_PREFIX);
        Ok(response_to_wire(answer, &canon.model, &id, ctx.created))
    }

    fn sse(
        ctx: &RequestCtx,
        canon: &ChatRequest,
        extra: ChatExtra,
    ) -> Result<ChunkEncoder, ApiError> {
        Ok(ChunkEncoder::new(
            ctx.answer_id(ID_PREFIX),
            ctx.created,
            canon.model.clone(),
            extra.include_usage,
        ))
    }
}
