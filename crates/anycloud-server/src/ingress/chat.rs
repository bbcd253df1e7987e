//! `POST /v1/chat/completions` (OpenAI Chat Completions), non-streaming and
//! SSE streaming, served by any cloud through the canonical model.

use super::chat_stream::{take, ChunkEncoder};
use crate::auth::{authenticate, Principal};
use crate::body::read_json;
use crate::dispatch::{failover, failover_hedged, open_stream};
use crate::error::ApiError;
use crate::outcome::Tracker;
use crate::request_id::{RequestId, RouteInfo};
use crate::state::AppState;
use anycloud_providers::openai::convert::{request_from_wire, response_to_wire};
use anycloud_providers::openai::wire::ChatCompletionRequest;
use anycloud_providers::{CallCtx, EventStream};
use anycloud_types::StreamEvent;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;

pub async fn handle(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let mut info = RouteInfo {
        api: "chat_completions",
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
            e.into_response()
        }
    };
    // A streamed response finishes its own tracker when the stream ends.
    if let Some(t) = tracker {
        t.finish(resp.status().as_u16());
    }
    resp.extensions_mut().insert(info);
    resp
}

async fn run(
    state: &Arc<AppState>,
    rid: String,
    req: Request,
    info: &mut RouteInfo,
    tracker_slot: &mut Option<Arc<Tracker>>,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let principal: Principal = authenticate(state, &parts.headers).await?;
    let tracker = Arc::new(Tracker::new(
        state.sinks.clone(),
        rid.clone(),
        info.api,
        principal.tenant.name.clone(),
        principal.key_id.clone(),
    ));
    *tracker_slot = Some(tracker.clone());
    let wire: ChatCompletionRequest = read_json(body, state.config.server.max_body_bytes).await?;
    let capture = crate::governance::capture::wants(state, &principal).then(|| wire.clone());
    let include_usage = wire
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let chat =
        request_from_wire(wire).map_err(|e| ApiError::invalid(e.message, e.param.as_deref()))?;
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
    let id = format!("chatcmpl-{}", rid.trim_start_matches("req_"));
    let created = chrono::Utc::now().timestamp();

    if !chat.stream {
        let (chat_ref, ctx_ref) = (&chat, &ctx);
        let served = failover_hedged(
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
        let wire = response_to_wire(&served.value, &chat.model, &id, created);
        if let Some(req) = &capture {
            crate::governance::capture::store(state, &rid, &principal, req, Some(&wire));
        }
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
    let encoder = ChunkEncoder::new(id, created, chat.model.clone(), include_usage);
    // The stream now owns the tracker and finishes it when it ends.
    let tracker = tracker_slot.take().unwrap_or(tracker);
    let finish = StreamFinish {
        tracker,
        input_estimate: chat.estimate_input_tokens(),
        ttft_ms,
    };
    let body = Body::from_stream(sse_body(encoder, first, rest, finish));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    super::stamp(&mut resp, &served.cloud, &served.decisions);
    admission.stamp(&mut resp);
    if let Some(req) = &capture {
        // Streamed responses are not reassembled: the request is captured alone.
        crate::governance::capture::store::<()>(state, &rid, &principal, req, None);
    }
    Ok(resp)
}

/// Reports a stream's usage and end to its tracker, however it ends.
struct StreamFinish {
    tracker: Arc<Tracker>,
    input_estimate: u64,
    ttft_ms: u64,
}

struct StreamState {
    encoder: ChunkEncoder,
    first: Option<StreamEvent>,
    rest: EventStream,
    buf: BytesMut,
    finish: StreamFinish,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        // Usage from the cloud when it sent some, else an estimate (flagged).
        let (usage, estimated) = match self.encoder.usage() {
            Some(u) => (u, false),
            None => (
                anycloud_types::Usage {
                    input_tokens: self.finish.input_estimate,
                    output_tokens: self.encoder.output_chars().div_ceil(4),
                    ..Default::default()
                },
                true,
            ),
        };
        let f = &self.finish;
        f.tracker
            .complete_ok_attempt(Some(usage), estimated, Some(f.ttft_ms));
        // 200 if the stream ran to its end (even with an error event: the
        // client got a 200), 499 if the client went away first.
        f.tracker
            .finish(if self.encoder.is_done() { 200 } else { 499 });
    }
}

/// Relays events chunk by chunk: one upstream event → one client write,
/// nothing buffered beyond the current chunk.
fn sse_body(
    encoder: ChunkEncoder,
    first: StreamEvent,
    rest: EventStream,
    finish: StreamFinish,
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
            // Wait for one event, then take every event already decoded
            // without waiting, so a burst leaves in one write.
            let mut next = st.rest.next().await;
            loop {
                match next {
                    Some(Ok(ev)) => st.encoder.event(ev, &mut st.buf),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, reason = %e.reason_code(), "stream failed after first byte");
                        st.encoder.error(&e, &mut st.buf);
                        break;
                    }
                    None => {
                        st.encoder.finish(&mut st.buf);
                        break;
                    }
                }
                match st.rest.next().now_or_never() {
                    Some(n) => next = n,
                    None => break,
                }
            }
        }
        let bytes = take(&mut st.buf);
        Some((Ok(bytes), st))
    })
    .filter(|r| futures::future::ready(!matches!(r, Ok(b) if b.is_empty())))
}
