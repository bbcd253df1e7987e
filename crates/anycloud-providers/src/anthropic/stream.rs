//! The Anthropic Messages SSE state machine: named events in, canonical
//! [`StreamEvent`]s out. Reusable by Claude on Vertex (`streamRawPredict`
//! sends the same SSE) and, fed decoded event-stream payloads through
//! [`EventDecoder::on_json`], by Claude on Bedrock `InvokeModel`.
//!
//! What it copes with (provider-wire-formats §0 items 5, 6, 11; §5.3):
//! - usage is split: input and cache counts in `message_start` (passed on at
//!   once, as a usage with no output yet), a running *cumulative*
//!   `output_tokens` in each `message_delta`; the last value of each field
//!   wins, nothing is summed, and the complete usage follows `message_stop`;
//! - `tool_use` blocks are renumbered among the response's tool calls (the
//!   Anthropic `index` counts text blocks too); `input_json_delta` fragments
//!   go out as they come, split anywhere, even inside JSON strings; a block
//!   that starts with a non-empty `input` and gets no deltas sends it whole;
//! - `event: error` after the 200 (`overloaded_error`) becomes an `Err`
//!   classified like the HTTP status it stands for (529 → retryable);
//! - `ping` and unknown events are ignored; a stream ending without
//!   `message_stop` is an error, not an empty success.

use super::convert::{stop_reason_from_wire, usage_from_wire};
use super::wire::{status_for_error_type, Block, BlockDelta, StreamEventWire, UsageWire};
use crate::error::{ProviderError, ProviderErrorKind};
use crate::pump::{pump, sse_decode};
use crate::sse::{SseEvent, SseStream};
use crate::EventStream;
use anycloud_types::StreamEvent;
use std::collections::HashMap;

#[derive(Debug)]
struct ToolBlock {
    /// Position among the response's tool calls.
    index: u32,
    /// `input` from `content_block_start` when it was not `{}`.
    initial: Option<String>,
    got_delta: bool,
}

/// Decoder state for one upstream stream.
#[derive(Debug, Default)]
pub struct EventDecoder {
    started: bool,
    finished: bool,
    done: bool,
    tools: HashMap<u32, ToolBlock>,
    next_tool: u32,
    usage: UsageWire,
}

impl EventDecoder {
    pub fn new() -> EventDecoder {
        EventDecoder::default()
    }

    /// Whether `message_stop` was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds one SSE event (its `data` carries the `type`; the `event:`
    /// name is redundant and not trusted over it).
    pub fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, ProviderError> {
        if ev.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        self.on_json(&ev.data)
    }

    /// Feeds one event's JSON.
    pub fn on_json(&mut self, data: &str) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        if self.done {
            return Ok(out);
        }
        let ev: StreamEventWire = serde_json::from_str(data).map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Protocol,
                format!("stream event did not decode: {e}"),
            )
        })?;
        match ev {
            StreamEventWire::MessageStart { message } => {
                self.merge_usage(&message.usage);
                if !self.started {
                    self.started = true;
                    out.push(StreamEvent::Start {
                        id: message.id,
                        model: message.model,
                    });
                    // The prompt's count (cache reads and writes included) is known now:
                    // a Messages client gets it in its own `message_start`, and a stream
                    // cut before `message_stop` is still billed the cloud's input.
                    if self.usage.input_tokens.is_some() {
                        out.push(StreamEvent::Usage(anycloud_types::Usage {
                            output_tokens: 0,
                            ..usage_from_wire(&self.usage)
                        }));
                    }
                }
            }
            StreamEventWire::ContentBlockStart {
                index,
                content_block,
            } => {
                self.ensure_started(&mut out);
                if let Block::ToolUse {
                    id, name, input, ..
                } = content_block
                {
                    let k = self.next_tool;
                    self.next_tool += 1;
                    let initial = match &input {
                        serde_json::Value::Object(o) if o.is_empty() => None,
                        serde_json::Value::Null => None,
                        v => Some(v.to_string()),
                    };
                    self.tools.insert(
                        index,
                        ToolBlock {
                            index: k,
                            initial,
                            got_delta: false,
                        },
                    );
                    out.push(StreamEvent::ToolCallStart { index: k, id, name });
                }
            }
            StreamEventWire::ContentBlockDelta { index, delta } => {
                self.ensure_started(&mut out);
                match delta {
                    BlockDelta::TextDelta { text } if !text.is_empty() => {
                        out.push(StreamEvent::TextDelta { text })
                    }
                    BlockDelta::InputJsonDelta { partial_json } => {
                        let Some(tool) = self.tools.get_mut(&index) else {
                            return Err(ProviderError::new(
                                ProviderErrorKind::Protocol,
                                format!("input_json_delta for block {index}, which is not a tool_use block"),
                            ));
                        };
                        tool.got_delta = true;
                        if !partial_json.is_empty() {
                            out.push(StreamEvent::ToolCallDelta {
                                index: tool.index,
                                arguments: partial_json,
                            });
                        }
                    }
                    _ => {}
                }
            }
            StreamEventWire::ContentBlockStop { index } => {
                if let Some(tool) = self.tools.get_mut(&index) {
                    if let (false, Some(initial)) = (tool.got_delta, tool.initial.take()) {
                        out.push(StreamEvent::ToolCallDelta {
                            index: tool.index,
                            arguments: initial,
                        });
                    }
                }
            }
            StreamEventWire::MessageDelta { delta, usage } => {
                self.ensure_started(&mut out);
                if let Some(u) = usage {
                    self.merge_usage(&u);
                }
                if let Some(reason) = delta.stop_reason.as_deref() {
                    if !self.finished {
                        self.finished = true;
                        out.push(StreamEvent::Finish {
                            reason: stop_reason_from_wire(Some(reason)),
                        });
                    }
                }
            }
            StreamEventWire::MessageStop => {
                self.ensure_started(&mut out);
                if !self.finished {
                    self.finished = true;
                    out.push(StreamEvent::Finish {
                        reason: stop_reason_from_wire(None),
                    });
                }
                self.done = true;
                out.push(StreamEvent::Usage(usage_from_wire(&self.usage)));
            }
            StreamEventWire::Error { error } => {
                let status = status_for_error_type(&error.kind);
                let message = if error.message.is_empty() {
                    format!("upstream stream reported {}", error.kind)
                } else {
                    format!("{}: {}", error.kind, error.message)
                };
                return Err(ProviderError::upstream(status, message));
            }
            StreamEventWire::Ping | StreamEventWire::Other => {}
        }
        Ok(out)
    }

    /// The upstream stream ended. Errors unless `message_stop` came.
    pub fn on_end(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        if self.done {
            Ok(Vec::new())
        } else {
            Err(ProviderError::new(
                ProviderErrorKind::Protocol,
                "stream ended early (no message_stop)",
            ))
        }
    }

    fn ensure_started(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: String::new(),
                model: String::new(),
            });
        }
    }

    /// Trap 6: every field present replaces the previous value.
    fn merge_usage(&mut self, u: &UsageWire) {
        let acc = &mut self.usage;
        acc.input_tokens = u.input_tokens.or(acc.input_tokens);
        acc.cache_read_input_tokens = u.cache_read_input_tokens.or(acc.cache_read_input_tokens);
        acc.cache_creation_input_tokens = u
            .cache_creation_input_tokens
            .or(acc.cache_creation_input_tokens);
        acc.cache_creation = u.cache_creation.or(acc.cache_creation);
        acc.output_tokens = u.output_tokens;
    }
}

sse_decode!(EventDecoder);

/// Runs the decoder over an SSE stream. The result ends after the first error.
pub fn events(sse: SseStream) -> EventStream {
    pump(sse, EventDecoder::new())
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
