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
use crate::ingress::relay::SseEncoder;
use anycloud_providers::anthropic::wire::MessagesRequest;
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

    async fn parse(_ctx: &RequestCtx, wire: Self::Wire) -> Result<(ChatRequest, Self), ApiError> {
        Ok((request_from_wire(wire)?, Messages))
    }

    async fn encode(
        self,
        ctx: &RequestCtx,
        answer: &ChatResponse,
    ) -> Result<impl serde::Serialize + Send + use<>, ApiError> {
        Ok(response_to_wire(
            answer,
            ctx.model(),
            &ctx.answer_id("msg_"),
        ))
    }

    fn sse(
        self,
        ctx: &RequestCtx,
        canon: &ChatRequest,
    ) -> Result<impl SseEncoder + use<>, ApiError> {
        Ok(MessagesEncoder::new(
            ctx.answer_id("msg_"),
            canon.model.clone(),
        ))
    }

    fn render_error(e: ApiError) -> Response {
        e.into_anthropic_response()
    }
}
