//! `POST /v1/responses`: a Responses request → the canonical request (replaying the
//! stored conversation of `previous_response_id`), and the answer → a response object
//! that is stored when `store` is true. The request path is [`super::super::pipeline`].

use super::stream::ResponsesEncoder;
use super::wire::{self, CreateResponse, Echo};
use super::{load, save, StoredDoc};
use crate::error::ApiError;
use crate::ingress::pipeline::{Api, RequestCtx};
use crate::ingress::relay::SseEncoder;
use crate::state::AppState;
use anycloud_providers::ProviderError;
use anycloud_types::{
    ChatRequest, ChatResponse, ContentBlock, Message, Role, SamplingParams, StreamEvent, Usage,
};
use bytes::BytesMut;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;

/// The Responses API's create call; a value is what answering it needs besides the
/// canonical request.
#[derive(Debug)]
pub struct Responses {
    echo: Echo,
    input_items: Vec<Value>,
    /// Conversation through this turn's input (without instructions).
    conversation: Vec<Message>,
}

fn response_id(ctx: &RequestCtx) -> String {
    ctx.answer_id("resp_")
}

impl Api for Responses {
    const NAME: &'static str = "responses";
    type Wire = CreateResponse;
    type Canon = ChatRequest;

    async fn parse(ctx: &RequestCtx, wire: Self::Wire) -> Result<(ChatRequest, Self), ApiError> {
        prepare(&ctx.state, ctx.tenant(), wire, ctx.id_suffix()).await
    }

    async fn encode(
        self,
        ctx: &RequestCtx,
        answer: &ChatResponse,
    ) -> Result<impl serde::Serialize + Send + use<>, ApiError> {
        let p = self;
        {
            let id = response_id(ctx);
            let (status, incomplete) = wire::status_of(Some(answer.finish_reason));
            let response = wire::response_object(
                &id,
                ctx.created,
                &p.echo,
                status,
                incomplete,
                wire::output_items(answer, &id),
                wire::usage(&answer.usage),
            );
            if p.echo.store {
                let mut conversation = p.conversation;
                conversation.push(wire::assistant_message(answer));
                let doc = StoredDoc {
                    response: response.clone(),
                    input_items: p.input_items,
                    conversation,
                };
                save(&ctx.state, ctx.tenant(), &id, &doc).await?;
            }
            Ok(response)
        }
    }

    fn sse(
        self,
        ctx: &RequestCtx,
        _canon: &ChatRequest,
    ) -> Result<impl SseEncoder + use<>, ApiError> {
        let (p, id) = (self, response_id(ctx));
        Ok(ResponsesStream {
            encoder: ResponsesEncoder::new(id.clone(), ctx.created, p.echo.clone()),
            state: ctx.state.clone(),
            tenant: ctx.tenant().to_string(),
            id,
            store: p.echo.store,
            input_items: p.input_items,
            conversation: p.conversation,
        })
    }
}

/// The Responses SSE encoder, which also stores the finished response.
#[derive(Debug)]
pub struct ResponsesStream {
    encoder: ResponsesEncoder,
    state: Arc<AppState>,
    tenant: String,
    id: String,
    store: bool,
    input_items: Vec<Value>,
    conversation: Vec<Message>,
}

impl SseEncoder for ResponsesStream {
    fn start(&mut self, out: &mut BytesMut) {
        self.encoder.start(out);
    }

    fn event(&mut self, ev: StreamEvent, out: &mut BytesMut) {
        self.encoder.event(ev, out);
    }

    /// Stores the conversation, then announces completion, so a client that sees
    /// `response.completed` can already chain `previous_response_id` to it.
    #[allow(clippy::manual_async_fn)]
    fn finish(&mut self, fallback: Usage, out: &mut BytesMut) -> impl Future<Output = ()> + Send {
        async move {
            let (response, chat) = self.encoder.close(out, fallback);
            if self.store {
                let mut conversation = std::mem::take(&mut self.conversation);
                conversation.push(wire::assistant_message(&chat));
                let doc = StoredDoc {
                    response: response.clone(),
                    input_items: std::mem::take(&mut self.input_items),
                    conversation,
                };
                if let Err(e) = save(&self.state, &self.tenant, &self.id, &doc).await {
                    tracing::error!(error = ?e.kind(), "could not store a streamed response");
                }
            }
            self.encoder.completed(response, out);
        }
    }

    fn error(&mut self, e: &ProviderError, out: &mut BytesMut) {
        self.encoder.error(e, out);
    }

    fn reassemble(&self, answer: &ChatResponse) -> Value {
        let (status, incomplete) = wire::status_of(Some(answer.finish_reason));
        wire::response_object(
            &self.id,
            self.encoder.created_at(),
            self.encoder.echo(),
            status,
            incomplete,
            wire::output_items(answer, &self.id),
            wire::usage(&answer.usage),
        )
    }
}

pub async fn prepare(
    state: &AppState,
    tenant: &str,
    w: CreateResponse,
    seed: &str,
) -> Result<(ChatRequest, Responses), ApiError> {
    if let Some(t) = w.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
        return Err(ApiError::invalid(
            format!("temperature {t} is out of range 0..2."),
            Some("temperature"),
        ));
    }
    if w.max_output_tokens == Some(0) {
        return Err(ApiError::invalid(
            "max_output_tokens must be at least 1.",
            Some("max_output_tokens"),
        ));
    }
    if w.metadata.as_ref().is_some_and(|m| m.len() > 16) {
        return Err(ApiError::invalid(
            "metadata may hold at most 16 keys.",
            Some("metadata"),
        ));
    }
    let input_items = wire::normalise_input(w.input, seed)?;
    let new_messages = wire::items_to_messages(&input_items)?;
    let mut conversation = match &w.previous_response_id {
        Some(prev) => {
            load(state, tenant, prev, "previous_response_id")
                .await?
                .conversation
        }
        None => Vec::new(),
    };
    conversation.extend(new_messages);
    let tools = wire::tools(w.tools.as_deref().unwrap_or(&[]))?;
    let tool_choice = w
        .tool_choice
        .as_ref()
        .map(|c| wire::tool_choice(c, &tools))
        .transpose()?;
    let response_format = w
        .text
        .as_ref()
        .map(wire::text_format)
        .transpose()?
        .flatten();
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    if let Some(i) = w.instructions.as_ref().filter(|i| !i.is_empty()) {
        messages.push(Message {
            role: Role::System,
            content: vec![ContentBlock::text(i.clone())],
            name: None,
        });
    }
    messages.extend(conversation.iter().cloned());
    let stream = w.stream.unwrap_or(false);
    let echo = Echo {
        model: w.model.clone(),
        instructions: w.instructions,
        max_output_tokens: w.max_output_tokens,
        previous_response_id: w.previous_response_id,
        store: w.store.unwrap_or(true),
        temperature: w.temperature,
        top_p: w.top_p,
        tools: w.tools.unwrap_or_default(),
        tool_choice: w.tool_choice.unwrap_or_else(|| json!("auto")),
        parallel_tool_calls: w.parallel_tool_calls.unwrap_or(true),
        text: w
            .text
            .unwrap_or_else(|| json!({"format": {"type": "text"}})),
        metadata: w.metadata.unwrap_or_default(),
        user: w.user.clone(),
    };
    // The Responses API has fewer sampling knobs than Chat Completions, and OpenAI's
    // cache key but no explicit breakpoints.
    let params = SamplingParams {
        temperature: w.temperature,
        top_p: w.top_p,
        max_tokens: w.max_output_tokens,
        ..SamplingParams::default()
    };
    let chat = ChatRequest {
        tools,
        tool_choice,
        parallel_tool_calls: w.parallel_tool_calls,
        response_format,
        params,
        user: w.user,
        stream,
        cache: anycloud_types::PromptCache {
            breakpoints: Vec::new(),
            key: w.prompt_cache_key,
        },
        ..ChatRequest::new(w.model, messages)
    };
    Ok((
        chat,
        Responses {
            echo,
            input_items,
            conversation,
        },
    ))
}
