//! `POST /v1/chat/completions` (OpenAI Chat Completions), non-streaming and SSE
//! streaming: the wire translation only; the request path is [`super::pipeline`].

use super::chat_stream::ChunkEncoder;
use super::pipeline::{Api, RequestCtx};
use crate::error::ApiError;
use anycloud_providers::openai::convert::{request_from_wire, response_to_wire};
use anycloud_providers::openai::wire::{ChatCompletionRequest, ChatCompletionResponse};
use anycloud_types::{ChatRequest, ChatResponse};

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
        let chat = request_from_wire(wire)
            .map_err(|e| ApiError::invalid(e.message, e.param.as_deref()))?;
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
