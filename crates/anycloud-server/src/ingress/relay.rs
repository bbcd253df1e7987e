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
//!   events and stored in the API's non-streaming shape when the stream ends;
//! - resuming (README "Streams that survive a cloud failing"), when the model's streams are
//!   resumed: tool-call events are held back until the call is complete, and a stream that
//!   fails after its first byte continues on another cloud ([`super::resume`]) with the
//!   continuation's `Start` dropped, the repeated text skipped and one usage figure for
//!   the whole answer.

use super::resume::{Continuation, Resume};
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

    /// The upstream stream ended cleanly: the closing events. `fallback` is the gateway's
    /// usage estimate, for an API that must report usage when the cloud sent none. An
    /// encoder writes them here, or overrides [`SseEncoder::finish`] when it must await
    /// something first.
    fn close(&mut self, _fallback: Usage, _out: &mut BytesMut) {}

    /// The upstream stream ended cleanly: [`SseEncoder::close`]. Responses overrides it
    /// to store the response before it announces `response.completed`.
    #[allow(clippy::manual_async_fn)]
    fn finish(&mut self, fallback: Usage, out: &mut BytesMut) -> impl Future<Output = ()> + Send {
        self.close(fallback, out);
        async {}
    }

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
            // Only the prompt's count came (Anthropic's `message_start`) before the stream
            // ended: the cloud's input, and the output estimated.
            Some(u) if u.output_tokens == 0 && self.output_chars > 0 => (
                Usage {
                    output_tokens: self.output_chars.div_ceil(4),
                    ..u
                },
                true,
            ),
            Some(u) => (u, false),
            None => (self.estimate(), true),
        }
    }
}

impl Resumable {
    /// Held tool events are complete: out they go, and the stream can no longer resume.
    fn flush_held(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.held.is_empty() {
            self.tool_delivered = true;
            out.append(&mut self.held);
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
    /// Present when the model's streams are resumed.
    resume: Option<Resumable>,
}

/// A resumable stream's state in the relay.
struct Resumable {
    resume: Resume,
    /// The answer's text as the client got it: the prefill of a continuation.
    delivered: String,
    /// Tool-call events of a call not yet complete, not yet sent.
    held: Vec<StreamEvent>,
    /// A complete tool call reached the client: a prefill cannot carry it, so the
    /// stream is no longer resumable.
    tool_delivered: bool,
    /// Whitespace the continuation repeats (left out of its prefill).
    skip: String,
    /// Set once a continuation runs: usage of the attempts before it.
    earlier: Option<Earlier>,
}

/// What the attempts before a continuation used, for the client's one usage figure.
#[derive(Debug, Clone, Copy)]
struct Earlier {
    /// The first attempt's prompt (the cloud's count, else the estimate).
    input_tokens: u64,
    output_tokens: u64,
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
            resume: None,
        }
    }

    /// Makes the stream resumable (see [`super::resume`]).
    pub fn resumable(mut self, resume: Option<Resume>) -> Self {
        self.resume = resume.map(|resume| Resumable {
            resume,
            delivered: String::new(),
            held: Vec::new(),
            tool_delivered: false,
            skip: String::new(),
            earlier: None,
        });
        self
    }

    /// One upstream event: metered as the cloud produced it, then (for a resumable
    /// stream) held back or filtered, then encoded.
    fn event(&mut self, ev: StreamEvent) {
        self.meter.observe(&ev);
        let Some(r) = &mut self.resume else {
            self.deliver(ev);
            return;
        };
        let mut out = Vec::with_capacity(2);
        match ev {
            StreamEvent::Start { .. } if r.earlier.is_some() => {}
            StreamEvent::Usage(_) if r.earlier.is_some() => {}
            StreamEvent::TextDelta { mut text } => {
                while let (Some(s), Some(t)) = (r.skip.chars().next(), text.chars().next()) {
                    if s != t {
                        r.skip.clear();
                        break;
                    }
                    r.skip.remove(0);
                    text.remove(0);
                }
                if !text.is_empty() {
                    r.skip.clear();
                    r.flush_held(&mut out);
                    r.delivered.push_str(&text);
                    out.push(StreamEvent::TextDelta { text });
                }
            }
            StreamEvent::ToolCallStart { .. } => {
                r.flush_held(&mut out);
                r.held.push(ev);
            }
            StreamEvent::ToolCallDelta { .. } => r.held.push(ev),
            other => {
                r.flush_held(&mut out);
                out.push(other);
            }
        }
        for ev in out {
            self.deliver(ev);
        }
    }

    fn deliver(&mut self, ev: StreamEvent) {
        if let Some(c) = &mut self.capture {
            c.answer.observe(&ev);
        }
        self.encoder.event(ev, &mut self.buf);
    }

    /// The upstream failed: continue elsewhere when the stream is resumable. Returns
    /// whether it continues.
    async fn try_resume(&mut self, e: &ProviderError) -> bool {
        let Some(r) = &mut self.resume else {
            return false;
        };
        if r.tool_delivered {
            return false;
        }
        // Held tool events never reached the client: the continuation decides afresh.
        r.held.clear();
        let (used, _) = self.meter.usage();
        let earlier = match r.earlier {
            Some(e) => Earlier {
                output_tokens: e.output_tokens + used.output_tokens,
                ..e
            },
            None => Earlier {
                input_tokens: used.input_tokens,
                output_tokens: used.output_tokens,
            },
        };
        // The interrupted attempt's usage (estimated when the cloud sent none).
        let (usage, estimated) = self.meter.usage();
        self.tracker
            .complete_ok_attempt(Some(usage), estimated, Some(self.ttft_ms));
        let delivered = r.delivered.clone();
        let Some(c) = r.resume.continue_after(e, &delivered, &self.tracker).await else {
            return false;
        };
        let Continuation {
            first,
            rest,
            skip,
            input_estimate,
        } = c;
        r.skip = skip;
        r.earlier = Some(earlier);
        self.rest = rest;
        self.meter = Meter {
            usage: None,
            input_estimate,
            output_chars: 0,
        };
        self.event(first);
        true
    }

    /// The usage the client is told at the end: after a continuation, the first attempt's
    /// prompt and every attempt's output.
    fn client_usage(&self) -> Option<Usage> {
        let earlier = self.resume.as_ref()?.earlier?;
        let (last, _) = self.meter.usage();
        Some(Usage {
            input_tokens: earlier.input_tokens,
            output_tokens: earlier.output_tokens + last.output_tokens,
            ..Usage::default()
        })
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
                    if self.try_resume(&e).await {
                        return;
                    }
                    tracing::warn!(error = %e, reason = %e.reason_code(), "stream failed after first byte");
                    self.encoder.error(&e, &mut self.buf);
                    self.done = true;
                    return;
                }
                None => {
                    let mut held = Vec::new();
                    if let Some(r) = &mut self.resume {
                        r.flush_held(&mut held);
                    }
                    for ev in held {
                        self.deliver(ev);
                    }
                    let fallback = match self.client_usage() {
                        Some(u) => {
                            self.deliver(StreamEvent::Usage(u));
                            u
                        }
                        None => self.meter.estimate(),
                    };
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
            self.state.governance.capture(
                self.tracker.request_id(),
                &c.principal,
                &c.request,
                Some(&answer),
            );
        }
        self.tracker.finish(if self.done { 200 } else { 499 });
    }
}
