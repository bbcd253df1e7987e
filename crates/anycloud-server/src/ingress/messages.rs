//! `POST /v1/messages` (Anthropic Messages API), non-streaming and SSE
//! streaming, served by any cloud through the canonical model — so an
//! application on the Anthropic SDK can be routed to Azure, Bedrock or
//! Anthropic alike.
//!
//! Same path as `chat` (auth → parse → route → dispatch with failover →
//! encode) with three differences: the key may come as `x-api-key` as well
//! as a bearer token; any `anthropic-version` header is accepted (none is
//! required); every error is rendered in Anthropic's shape
//! ([`ApiError::into_anthropic_response`]). The wire types are the
//! `anthropic` provider's, used in the other direction.

use super::messages_stream::MessagesEncoder;
use crate::auth::{authenticate_with, Principal};
use crate::body::read_json;
use crate::dispatch::{failover, open_stream};
use crate::error::ApiError;
use crate::outcome::Tracker;
use crate::request_id::{RequestId, RouteInfo};
use crate::state::AppState;
use anycloud_providers::anthropic::convert::{request_from_wire, response_to_wire};
use anycloud_providers::anthropic::wire::MessagesRequest;
use anycloud_providers::{CallCtx, EventStream};
use anycloud_types::{ChatRequest, StreamEvent};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let mut info = RouteInfo {
        api: "messages",
        model: "unknown".into(),
        cloud: "none".into(),
    };
    let mut tracker = None;
    let mut resp = match run(&state, rid, req, &mut info, &mut tracker).await {
        Ok(r) => r,
        Err(e) => {
            if let Some(t) = &tracker {
                t.set_route(e.route());
            }
            e.into_anthropic_response()
        }
    };
    // A streamed response finishes its own tracker when the stream ends.
    if let Some(t) = tracker {
        t.finish(resp.status().as_u16());
    }
    resp.extensions_mut().insert(info);
    resp
}

/// Parses a Messages request the way the handler does.
pub fn parse(wire: MessagesRequest) -> Result<ChatRequest, ApiError> {
    request_from_wire(wire).map_err(|e| ApiError::invalid(e.message, e.param.as_deref()))
}

async fn run(
    state: &Arc<AppState>,
    rid: String,
    req: Request,
    info: &mut RouteInfo,
    tracker_slot: &mut Option<Arc<Tracker>>,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let principal: Principal = authenticate_with(state, &parts.headers, true).await?;
    let tracker = Arc::new(Tracker::new(
        state.sinks.clone(),
        rid.clone(),
        info.api,
        principal.tenant.name.clone(),
        principal.key_id.clone(),
    ));
    *tracker_slot = Some(tracker.clone());
    let wire: MessagesRequest = read_json(body, state.config.server.max_body_bytes).await?;
    let chat = parse(wire)?;
    info.model = state.model_label(&chat.model);
    tracker.set_model(&info.model);
    let estimate = chat.estimate_input_tokens() + u64::from(chat.params.max_tokens.unwrap_or(0));
    let needs = chat.needs();
    tracker.set_needs(&needs, estimate);
    let plan = super::plan(state, &principal.tenant, &chat.model, &needs, estimate)?;
    let admission = crate::governance::admit(
        state,
        &principal,
        crate::governance::Ask {
            request_id: &rid,
            plan: &plan,
            input_tokens: chat.estimate_input_tokens(),
            max_output_tokens: chat.params.max_tokens.map(u64::from),
        },
    )
    .await?;
    tracker.set_usage_bounds(crate::outcome::UsageBounds::of(&chat));
    let ctx = CallCtx {
        request_id: rid.clone(),
        traceparent: super::traceparent(&parts.headers),
    };
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(state.config.server.request_timeout_ms);
    let id = format!("msg_{}", rid.trim_start_matches("req_"));

    if !chat.stream {
        let (chat_ref, ctx_ref) = (&chat, &ctx);
        let served = failover(
            state,
            &plan,
            &chat.model,
            deadline,
            &tracker,
            move |p, d| async move { p.chat(&d.target, chat_ref, ctx_ref).await },
        )
        .await?;
        info.cloud = served.cloud.clone();
        tracker.set_route(&served.decisions);
        tracker.complete_ok_attempt(Some(served.value.usage), false, None);
        let wire = response_to_wire(&served.value, &chat.model, &id);
        let mut resp = axum::Json(wire).into_response();
        super::stamp(&mut resp, &served.cloud, &served.decisions);
        admission.stamp(&mut resp);
        return Ok(resp);
    }

    let chat = Arc::new(chat);
    let ctx = Arc::new(ctx);
    let served = {
        let (chat, ctx) = (chat.clone(), ctx.clone());
        failover(
            state,
            &plan,
            &chat.model.clone(),
            deadline,
            &tracker,
            move |p, d| open_stream(p, d.target, chat.clone(), ctx.clone()),
        )
        .await?
    };
    info.cloud = served.cloud.clone();
    tracker.set_route(&served.decisions);
    let ttft_ms = tracker.elapsed_ms();
    let (first, rest) = served.value;
    let encoder = MessagesEncoder::new(id, chat.model.clone());
    let tracker = tracker_slot.take().unwrap_or(tracker);
    let finish = (tracker, chat.estimate_input_tokens(), ttft_ms);
    let body = Body::from_stream(sse_body(encoder, first, rest, finish));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    super::stamp(&mut resp, &served.cloud, &served.decisions);
    admission.stamp(&mut resp);
    Ok(resp)
}

struct StreamState {
    encoder: MessagesEncoder,
    first: Option<StreamEvent>,
    rest: EventStream,
    buf: BytesMut,
    /// The request's tracker, the prompt estimate and time to first token.
    finish: (Arc<Tracker>, u64, u64),
}

impl Drop for StreamState {
    fn drop(&mut self) {
        let (tracker, input_estimate, ttft_ms) = &self.finish;
        let (usage, estimated) = match self.encoder.usage() {
            Some(u) => (u, false),
            None => (
                anycloud_types::Usage {
                    input_tokens: *input_estimate,
                    ..Default::default()
                },
                true,
            ),
        };
        tracker.complete_ok_attempt(Some(usage), estimated, Some(*ttft_ms));
        tracker.finish(if self.encoder.is_done() { 200 } else { 499 });
    }
}

/// Relays events as they come: one upstream event → at most one write.
fn sse_body(
    encoder: MessagesEncoder,
    first: StreamEvent,
    rest: EventStream,
    finish: (Arc<Tracker>, u64, u64),
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    let st = StreamState {
        encoder,
        first: Some(first),
        rest,
        buf: BytesMut::with_capacity(512),
        finish,
    };
    futures::stream::unfold(st, |mut st| async move {
        if st.encoder.is_done() {
            return None;
        }
        if let Some(ev) = st.first.take() {
            st.encoder.event(ev, &mut st.buf);
        } else {
            match st.rest.next().await {
                Some(Ok(ev)) => st.encoder.event(ev, &mut st.buf),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, reason = %e.reason_code(), "stream failed after first byte");
                    st.encoder.error(&e, &mut st.buf);
                }
                None => st.encoder.finish(&mut st.buf),
            }
        }
        Some((Ok(st.buf.split().freeze()), st))
    })
    .filter(|r| futures::future::ready(!matches!(r, Ok(b) if b.is_empty())))
}
