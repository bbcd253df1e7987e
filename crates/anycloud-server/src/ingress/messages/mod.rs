//! `POST /v1/messages` (Anthropic Messages API), non-streaming and SSE streaming,
//! served by any cloud through the canonical model — so an application on the
//! Anthropic SDK can be routed to Azure, Bedrock or Anthropic alike.
//!
//! The wire translation only; the request path is [`crate::ingress::pipeline`]. Differences
//! from Chat Completions: the key may come as `x-api-key` as well as a bearer token;
//! any `anthropic-version` header is accepted (none is required); every error is
//! rendered in Anthropic's shape ([`ApiError::into_anthropic_response`]).

pub mod convert;
pub mod stream;

use crate::error::ApiError;
use crate::ingress::pipeline::{Api, RequestCtx};
use anycloud_providers::anthropic::wire::{MessagesRequest, MessagesResponse};
use anycloud_types::{ChatRequest, ChatResponse};
use axum::response::Response;
use convert::{request_from_wire, response_to_wire};
use stream::MessagesEncoder;

/// The Messages API.
#[derive(Debug)]
pub struct Messages;

impl Api for Messages {
    const NAME: &'static str = "messages";
    const X_API_KEY: bool = true;
    type Wire = MessagesRequest;
    type Canon = ChatRequest;
    type Extra = ();
    type Out = MessagesResponse;
    type Sse = MessagesEncoder;

    async fn parse(
        _ctx: &RequestCtx,
        wire: MessagesRequest,
    ) -> Result<(ChatRequest, ()), ApiError> {
        let chat = request_from_wire(wire)?;
        Ok((chat, ()))
    }

    async fn encode(
        ctx: &RequestCtx,
        canon: &ChatRequest,
        _extra: (),
        answer: &ChatResponse,
    ) -> Result<MessagesResponse, ApiError> {
        Ok(response_to_wire(
            answer,
            &canon.model,
            &ctx.answer_id("msg_"),
        ))
    }

    fn sse(ctx: &RequestCtx, canon: &ChatRequest, _extra: ()) -> Result<MessagesEncoder, ApiError> {
        Ok(MessagesEncoder::new(
            ctx.answer_id("msg_"),
            canon.model.clone(),
        ))
    }

    fn render_error(e: ApiError) -> Response {
        e.into_anthropic_response()
    }
}
