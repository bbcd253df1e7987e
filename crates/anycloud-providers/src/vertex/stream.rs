//! Gemini `streamGenerateContent?alt=sse` chunks → canonical stream events.
//!
//! Each SSE `data:` is a whole partial `GenerateContentResponse`; there is no `[DONE]`,
//! the body just ends. The state machine:
//!
//! - first chunk → `Start` (the `responseId`, else a synthesized id);
//! - text parts → `TextDelta` (thought parts are skipped);
//! - a `functionCall` part arrives whole → `ToolCallStart` plus one `ToolCallDelta` with all
//!   of its arguments (trap 11: dropping them because no "delta" ever comes is the bug);
//! - `finishReason` → `Finish` (`ToolCalls` when the response called a function);
//! - `usageMetadata`: intermediate chunks may carry `{}` or partial counts (trap 12), so the
//!   last one with a prompt count wins and is emitted once, when the body ends;
//! - an `{"error": {...}}` chunk ends the stream with that error, classified like the
//!   HTTP error it stands for;
//! - a body that ends without any `finishReason` is a cut stream: a `Protocol` error.

use super::convert::{args_text, blocked_prompt, finish_reason, synth_call_id, usage};
use super::errors::google_error_from_json;
use super::wire::{GenerateContentResponse, UsageMetadata};
use crate::error::{ProviderError, ProviderErrorKind};
use crate::pump::{pump, Decode};
use crate::sse::{SseEvent, SseStream};
use crate::EventStream;
use anycloud_types::{FinishReason, StreamEvent};

/// Decoder state for one stream.
#[derive(Debug)]
pub struct StreamState {
    model: String,
    started: bool,
    tool_calls: u32,
    finished: bool,
    usage: Option<UsageMetadata>,
    failed: bool,
}

impl StreamState {
    /// `model` is reported when the cloud sends no `modelVersion`.
    pub fn new(model: impl Into<String>) -> StreamState {
        StreamState {
            model: model.into(),
            started: false,
            tool_calls: 0,
            finished: false,
            usage: None,
            failed: false,
        }
    }

    /// One SSE `data:` payload.
    pub fn on_data(&mut self, data: &str) -> Vec<Result<StreamEvent, ProviderError>> {
        if self.failed {
            return Vec::new();
        }
        let value: serde_json::Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => return self.fail(protocol(format!("stream chunk did not decode: {e}"))),
        };
        if let Some(err) = value.get("error") {
            let e = google_error_from_json(None, err);
            return self.fail(e);
        }
        let chunk: GenerateContentResponse = match serde_json::from_value(value) {
            Ok(c) => c,
            Err(e) => return self.fail(protocol(format!("stream chunk did not decode: {e}"))),
        };
        if let Some(e) = blocked_prompt(&chunk) {
            return self.fail(e);
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(Ok(StreamEvent::Start {
                id: chunk.response_id.clone().unwrap_or_else(synth_call_id),
                model: chunk
                    .model_version
                    .clone()
                    .unwrap_or_else(|| self.model.clone()),
            }));
        }
        if let Some(u) = chunk.usage_metadata {
            // `{}` and counts without the prompt are partial (trap 12).
            if u.prompt_token_count.is_some() {
                self.usage = Some(u);
            }
        }
        let Some(cand) = chunk.candidates.into_iter().next() else {
            return out;
        };
        for part in cand.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(call) = part.function_call {
                let index = self.tool_calls;
                self.tool_calls += 1;
                out.push(Ok(StreamEvent::ToolCallStart {
                    index,
                    id: synth_call_id(),
                    name: call.name,
                }));
                out.push(Ok(StreamEvent::ToolCallDelta {
                    index,
                    arguments: args_text(&call.args),
                }));
            } else if let (Some(text), false) = (part.text, part.thought == Some(true)) {
                if !text.is_empty() {
                    out.push(Ok(StreamEvent::TextDelta { text }));
                }
            }
        }
        if let Some(reason) = cand.finish_reason.as_deref() {
            if !self.finished {
                self.finished = true;
                let reason = match (self.tool_calls > 0, reason) {
                    (true, "STOP") => FinishReason::ToolCalls,
                    (_, r) => finish_reason(r),
                };
                out.push(Ok(StreamEvent::Finish { reason }));
            }
        }
        out
    }

    /// The body ended: usage, or the error for a stream cut before its finish.
    pub fn on_end(&mut self) -> Vec<Result<StreamEvent, ProviderError>> {
        if self.failed {
            return Vec::new();
        }
        if !self.finished {
            return self.fail(protocol(
                "upstream stream ended before a finishReason".to_string(),
            ));
        }
        self.usage
            .take()
            .map(|u| Ok(StreamEvent::Usage(usage(&u))))
            .into_iter()
            .collect()
    }

    fn fail(&mut self, e: ProviderError) -> Vec<Result<StreamEvent, ProviderError>> {
        self.failed = true;
        vec![Err(e)]
    }
}

fn protocol(message: String) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Protocol, message)
}

impl Decode for StreamState {
    type Input = SseEvent;
    fn decode(&mut self, ev: SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        collect(self.on_data(&ev.data), out)
    }
    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        collect(self.on_end(), out)
    }
}

/// The state machine's items into the pump's shape: events up to the first error.
fn collect(
    items: Vec<Result<StreamEvent, ProviderError>>,
    out: &mut Vec<StreamEvent>,
) -> Result<(), ProviderError> {
    for item in items {
        out.push(item?);
    }
    Ok(())
}

/// Canonical events from an SSE body.
pub fn events(sse: SseStream, model: String) -> EventStream {
    pump(sse, StreamState::new(model))
}
