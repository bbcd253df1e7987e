//! The one SSE relay every streaming API uses: canonical stream events in, the API's
//! SSE bytes out (through its [`SseEncoder`]).
//!
//! The relay owns everything about a stream that is not wire format:
//! - write batching: it waits for one upstream event, then takes every event already
//!   decoded without waiting, so a burst leaves in one write;
//! - metering: the cloud's usage when it reports some, else an estimate (prompt estimate
//!   in, relayed characters / 4 out), flagged as estimated on the ledger;
//! - completion on `Drop`, however the stream ends: it completed (200, even with an error
//!   event — the client got a 200), or the client went away (499). Dropping the relay
//!   drops the upstream stream with it: the rest is never read, so nobody pays for
//!   tokens nobody reads, and the partial attempt is recorded with its estimate;
//! - payload capture: for tenants that capture, the answer is reassembled from the
//!   events and stored in the API's non-streaming shape when the stream ends.

use crate::auth::Principal;
use crate::outcome::Tracker;
use crate::state::AppState;
use anycloud_providers::{EventStream, ProviderError};
use anycloud_types::{ChatResponse, ContentBlock, FinishReason, StreamEvent, Usage};
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;

/// Canonical stream events → one API's SSE bytes.
pub trait SseEncoder: Send + 'static {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    /// Bytes sent before the first event (`response.created`, …).
    fn start(&mut self, _out: &mut BytesMut) {}

    fn event(&mut self, ev: StreamEvent, out: &mut BytesMut);

    /// The upstream stream ended cleanly. `fallback` is the gateway's usage estimate,
    /// for an API that must report usage when the cloud sent none.
    fn finish(&mut self, fallback: Usage, out: &mut BytesMut) -> impl Future<Output = ()> + Send;

    /// The upstream stream failed after the client got its first byte.
    fn error(&mut self, e: &ProviderError, out: &mut BytesMut);

    /// The whole answer in the API's non-streaming shape (for payload capture).
    fn reassemble(&self, answer: &ChatResponse) -> Value;
}

/// An API without streaming.
#[derive(Debug)]
pub enum NoStream {}

impl SseEncoder for NoStream {
    fn event(&mut self, _: StreamEvent, _: &mut BytesMut) {
        match *self {}
    }
    #[allow(clippy::manual_async_fn)]
    fn finish(&mut self, _: Usage, _: &mut BytesMut) -> impl Future<Output = ()> + Send {
        async move { match *self {} }
    }
    fn error(&mut self, _: &ProviderError, _: &mut BytesMut) {
        match *self {}
    }
    fn reassemble(&self, _: &ChatResponse) -> Value {
        match *self {}
    }
}

/// What a capturing tenant's stream keeps to store at its end.
#[derive(Debug)]
pub struct StreamCapture {
    principal: Principal,
    request: Value,
    answer: Reassembly,
}

impl StreamCapture {
    pub fn new(principal: &Principal, request: Value) -> StreamCapture {
        StreamCapture {
            principal: principal.clone(),
            request,
            answer: Reassembly::default(),
        }
    }
}

/// The canonical answer rebuilt from its stream events.
#[derive(Debug, Default)]
struct Reassembly {
    id: String,
    model: String,
    content: Vec<ContentBlock>,
    /// Canonical tool index → position in `content`.
    tools: Vec<(u32, usize)>,
    finish: Option<FinishReason>,
}

impl Reassembly {
    fn observe(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::Start { id, model } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            StreamEvent::TextDelta { text } => match self.content.last_mut() {
                Some(ContentBlock::Text { text: t }) => t.push_str(text),
                _ => self.content.push(ContentBlock::text(text.clone())),
            },
            StreamEvent::ToolCallStart { index, id, name } => {
                self.tools.push((*index, self.content.len()));
                self.content.push(ContentBlock::ToolUse {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                });
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                let at = self.tools.iter().rev().find(|(i, _)| i == index);
                if let Some(ContentBlock::ToolUse { arguments: a, .. }) =
                    at.and_then(|(_, at)| self.content.get_mut(*at))
                {
                    a.push_str(arguments);
                }
            }
            StreamEvent::Finish { reason } => self.finish = Some(*reason),
            StreamEvent::Usage(_) => {}
        }
    }

    fn into_response(self, usage: Usage, created: i64) -> ChatResponse {
        ChatResponse {
            id: self.id,
            model: self.model,
            created,
            content: self.content,
            finish_reason: self.finish.unwrap_or(FinishReason::Stop),
            usage,
            system_fingerprint: None,
        }
    }
}

/// Usage as the stream goes: the cloud's when it reports it, else an estimate.
#[derive(Debug)]
struct Meter {
    usage: Option<Usage>,
    input_estimate: u64,
    output_chars: u64,
}

impl Meter {
    fn observe(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::TextDelta { text } => self.output_chars += text.len() as u64,
            StreamEvent::ToolCallDelta { arguments, .. } => {
                self.output_chars += arguments.len() as u64
            }
            StreamEvent::Usage(u) => self.usage = Some(*u),
            _ => {}
        }
    }

    fn estimate(&self) -> Usage {
        Usage {
            input_tokens: self.input_estimate,
            output_tokens: self.output_chars.div_ceil(4),
            ..Usage::default()
        }
    }

    /// The usage to record, and whether it is an estimate.
    fn usage(&self) -> (Usage, bool) {
        match self.usage {
            Some(u) => (u, false),
            None => (self.estimate(), true),
        }
    }
}

/// One stream in flight, from its first upstream event to its end.
pub struct Relay<E: SseEncoder> {
    encoder: E,
    first: Option<StreamEvent>,
    /// Dropped with the relay: a client that leaves closes the upstream at once.
    rest: EventStream,
    buf: BytesMut,
    started: bool,
    /// The stream reached its end (cleanly or with an error event).
    done: bool,
    meter: Meter,
    state: Arc<AppState>,
    tracker: Arc<Tracker>,
    ttft_ms: u64,
    capture: Option<StreamCapture>,
}

impl<E: SseEncoder> Relay<E> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        encoder: E,
        first: StreamEvent,
        rest: EventStream,
        state: Arc<AppState>,
        tracker: Arc<Tracker>,
        input_estimate: u64,
        ttft_ms: u64,
        capture: Option<StreamCapture>,
    ) -> Relay<E> {
        Relay {
            encoder,
            first: Some(first),
            rest,
            buf: BytesMut::with_capacity(1024),
            started: false,
            done: false,
            meter: Meter {
                usage: None,
                input_estimate,
                output_chars: 0,
            },
            state,
            tracker,
            ttft_ms,
            capture,
        }
    }

    fn event(&mut self, ev: StreamEvent) {
        self.meter.observe(&ev);
        if let Some(c) = &mut self.capture {
            c.answer.observe(&ev);
        }
        self.encoder.event(ev, &mut self.buf);
    }

    /// Encodes the next batch: one awaited event and every one already decoded.
    async fn next_batch(&mut self) {
        if !self.started {
            self.started = true;
            self.encoder.start(&mut self.buf);
        }
        if let Some(ev) = self.first.take() {
            self.event(ev);
            return;
        }
        let mut next = self.rest.next().await;
        loop {
            match next {
                Some(Ok(ev)) => self.event(ev),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, reason = %e.reason_code(), "stream failed after first byte");
                    self.encoder.error(&e, &mut self.buf);
                    self.done = true;
                    return;
                }
                None => {
                    let fallback = self.meter.estimate();
                    self.encoder.finish(fallback, &mut self.buf).await;
                    self.done = true;
                    return;
                }
            }
            match self.rest.next().now_or_never() {
                Some(n) => next = n,
                None => return,
            }
        }
    }

    /// The streaming HTTP response.
    pub fn into_response(self) -> Response {
        let body = futures::stream::unfold(self, |mut st| async move {
            if st.done {
                return None;
            }
            st.next_batch().await;
            let bytes: Bytes = st.buf.split().freeze();
            Some((Ok::<_, std::convert::Infallible>(bytes), st))
        })
        .filter(|r| futures::future::ready(!matches!(r, Ok(b) if b.is_empty())));
        let mut resp = Response::new(Body::from_stream(body));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(E::CONTENT_TYPE),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}

impl<E: SseEncoder> Drop for Relay<E> {
    fn drop(&mut self) {
        let (usage, estimated) = self.meter.usage();
        self.tracker
            .complete_ok_attempt(Some(usage), estimated, Some(self.ttft_ms));
        if let Some(c) = self.capture.take() {
            let created = chrono::Utc::now().timestamp();
            let answer = self
                .encoder
                .reassemble(&c.answer.into_response(usage, created));
            crate::governance::capture::store(
                &self.state,
                self.tracker.request_id(),
                &c.principal,
                &c.request,
                Some(&answer),
            );
        }
        self.tracker.finish(if self.done { 200 } else { 499 });
    }
}
