//! The Chat Completions chunk state machine: SSE events in, canonical
//! [`StreamEvent`]s out. Shared by the `openai`, `openai_compatible` and
//! `azure_openai` providers.
//!
//! What it copes with (provider-wire-formats §0 items 7, 8, 10):
//! - Azure's filter-only chunks (empty `choices`, `id: ""`, no `delta`,
//!   `content_filter_offsets`) are skipped;
//! - tool-call fragments are keyed by `index`, with `id`/`name` only on the
//!   first one; a fragment without `index` continues the current call, and a
//!   known index arriving with a new `id` starts a new call;
//! - the `choices: []` usage chunk becomes [`StreamEvent::Usage`] (usage on a
//!   normal chunk is kept and emitted at the end if no usage chunk came);
//! - `data: {"error": ...}` becomes an `Err` classified like the HTTP error it
//!   stands for, and ends the stream;
//! - a stream that ends with neither `[DONE]` nor a `finish_reason` is an
//!   error ("stream ended early"), not an empty success.

use super::convert::usage_from_wire;
use super::wire::{ChatCompletionChunk, ChunkChoice, ToolCallDelta};
use crate::error::{ProviderError, ProviderErrorKind};
use crate::http::error_from_stream_object;
use crate::pump::{pump, sse_decode};
use crate::sse::{SseEvent, SseStream};
use crate::EventStream;
use anycloud_types::{FinishReason, StreamEvent, Usage};

/// One tool call being assembled.
#[derive(Debug, Default)]
struct Call {
    /// The upstream's `index` for it.
    upstream_index: Option<u32>,
    id: Option<String>,
    name: Option<String>,
    started: bool,
    /// Argument text received before the call could be started (no name yet).
    pending: String,
}

/// Decoder state for one upstream stream.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    started: bool,
    finished: bool,
    done: bool,
    usage_sent: bool,
    pending_usage: Option<Usage>,
    calls: Vec<Call>,
    /// Our index of the call the last fragment went to.
    current: Option<usize>,
}

impl ChunkDecoder {
    pub fn new() -> ChunkDecoder {
        ChunkDecoder::default()
    }

    /// Whether `[DONE]` was seen; nothing after it is read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds one SSE event; returns the canonical events it produces.
    pub fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        if self.done {
            return Ok(out);
        }
        if ev.is_done() {
            self.done = true;
            self.finish(FinishReason::Other, &mut out);
            self.flush_usage(&mut out);
            return Ok(out);
        }
        if ev.data.trim().is_empty() {
            return Ok(out);
        }
        let chunk: ChatCompletionChunk = serde_json::from_str(&ev.data).map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Protocol,
                format!("stream chunk did not decode: {e}"),
            )
        })?;
        if let Some(err) = &chunk.error {
            return Err(error_from_stream_object(err));
        }
        let choice = chunk.choices.iter().find(|c| c.index == 0);
        if let Some(u) = &chunk.usage {
            if chunk.choices.is_empty() {
                self.start(&chunk, &mut out);
                out.push(StreamEvent::Usage(usage_from_wire(u)));
                self.usage_sent = true;
                return Ok(out);
            }
            self.pending_usage = Some(usage_from_wire(u));
        }
        let Some(choice) = choice else {
            // Azure's prompt-filter chunk or another empty one.
            return Ok(out);
        };
        if choice.delta.is_none() && choice.finish_reason.is_none() {
            // Azure's asynchronous-filter offsets chunk.
            return Ok(out);
        }
        self.start(&chunk, &mut out);
        self.on_choice(choice, &mut out);
        Ok(out)
    }

    /// The upstream stream ended (no more events). Errors unless it finished.
    pub fn on_end(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        if !self.done && !self.finished {
            return Err(ProviderError::new(
                ProviderErrorKind::Protocol,
                "stream ended early",
            ));
        }
        self.flush_usage(&mut out);
        Ok(out)
    }

    fn start(&mut self, chunk: &ChatCompletionChunk, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id.clone(),
                model: chunk.model.clone(),
            });
        }
    }

    fn on_choice(&mut self, choice: &ChunkChoice, out: &mut Vec<StreamEvent>) {
        if let Some(delta) = &choice.delta {
            for text in [&delta.content, &delta.refusal].into_iter().flatten() {
                if !text.is_empty() {
                    out.push(StreamEvent::TextDelta { text: text.clone() });
                }
            }
            for frag in delta.tool_calls.iter().flatten() {
                self.on_fragment(frag, out);
            }
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish(FinishReason::from_openai(reason), out);
        }
    }

    fn on_fragment(&mut self, frag: &ToolCallDelta, out: &mut Vec<StreamEvent>) {
        let frag_id = frag.id.as_deref().filter(|s| !s.is_empty());
        let known = match frag.index {
            Some(ix) => self
                .calls
                .iter()
                .rposition(|c| c.upstream_index == Some(ix))
                // A reused index with a different id is a new call.
                .filter(|&k| match (frag_id, self.calls[k].id.as_deref()) {
                    (Some(new), Some(old)) => new == old,
                    _ => true,
                }),
            // No index: a new call if it brings an id, else the current one.
            None if frag_id.is_some() => None,
            None => self.current,
        };
        let k = known.unwrap_or_else(|| {
            self.calls.push(Call {
                upstream_index: frag.index,
                ..Call::default()
            });
            self.calls.len() - 1
        });
        self.current = Some(k);
        let call = &mut self.calls[k];
        if call.id.is_none() {
            call.id = frag_id.map(str::to_string);
        }
        let function = frag.function.as_ref();
        if call.name.is_none() {
            call.name = function
                .and_then(|f| f.name.as_deref())
                .filter(|n| !n.is_empty())
                .map(str::to_string);
        }
        let args = function.and_then(|f| f.arguments.as_deref()).unwrap_or("");
        call.pending.push_str(args);
        if call.name.is_some() {
            start_call(k, call, out);
        }
    }

    /// Emits `Finish` once, starting any call still waiting for its name.
    fn finish(&mut self, reason: FinishReason, out: &mut Vec<StreamEvent>) {
        if self.finished {
            return;
        }
        for (k, call) in self.calls.iter_mut().enumerate() {
            start_call(k, call, out);
        }
        self.finished = true;
        out.push(StreamEvent::Finish { reason });
    }

    fn flush_usage(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.usage_sent {
            if let Some(u) = self.pending_usage.take() {
                out.push(StreamEvent::Usage(u));
                self.usage_sent = true;
            }
        }
    }
}

/// Emits the call's start if not yet done, then any argument text held back.
fn start_call(k: usize, call: &mut Call, out: &mut Vec<StreamEvent>) {
    let index = k as u32;
    if !call.started {
        call.started = true;
        out.push(StreamEvent::ToolCallStart {
            index,
            id: call.id.clone().unwrap_or_else(|| format!("call_{k}")),
            name: call.name.clone().unwrap_or_default(),
        });
    }
    if !call.pending.is_empty() {
        out.push(StreamEvent::ToolCallDelta {
            index,
            arguments: std::mem::take(&mut call.pending),
        });
    }
}

sse_decode!(ChunkDecoder);

/// Runs the decoder over an SSE stream. The result ends after the first error.
pub fn events(sse: SseStream) -> EventStream {
    pump(sse, ChunkDecoder::new())
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
