//! Canonical stream events → Anthropic Messages SSE (named events).
//!
//! Order, as Anthropic sends it: `message_start` (usage.input_tokens and the
//! cache counts when already known, else 0 — OpenAI-family clouds report usage
//! only at the end), `ping`, then per content block `content_block_start` /
//! `content_block_delta` (`text_delta` or `input_json_delta`) /
//! `content_block_stop`, then `message_delta` with `stop_reason` and the
//! final usage (`output_tokens`, plus input and cache counts, which current
//! SDKs take from `message_delta` when present), then `message_stop`. A
//! failure after the first byte ends the stream with `event: error`
//! (`api_error`, or `overloaded_error` for an overloaded cloud).

use super::convert::{response_to_wire, stop_reason_to_wire, usage_to_wire};
use crate::ingress::relay::SseEncoder;
use anycloud_providers::anthropic::wire::{
    error_type_for_status, Block, BlockDelta, ErrorEnvelope, MessageDeltaBody, MessagesResponse,
    StreamEventWire, UsageWire,
};
use anycloud_providers::ProviderError;
use anycloud_types::{ChatResponse, FinishReason, StreamEvent, Usage};
use bytes::{BufMut, BytesMut};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Tool(u32),
}

#[derive(Debug)]
pub struct MessagesEncoder {
    id: String,
    model: String,
    started: bool,
    /// The open content block: its Anthropic index and kind.
    open: Option<(u32, Open)>,
    next_block: u32,
    /// Canonical tool index → Anthropic block index.
    tool_blocks: HashMap<u32, u32>,
    reason: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

impl MessagesEncoder {
    pub fn new(id: String, model: String) -> Self {
        MessagesEncoder {
            id,
            model,
            started: false,
            open: None,
            next_block: 0,
            tool_blocks: HashMap::new(),
            reason: None,
            usage: None,
            done: false,
        }
    }

    fn write<T: Serialize>(name: &str, data: &T, out: &mut BytesMut) {
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_slice(b"\ndata: ");
        if serde_json::to_writer((&mut *out).writer(), data).is_err() {
            out.put_slice(b"{}");
        }
        out.put_slice(b"\n\n");
    }

    fn emit(ev: StreamEventWire, out: &mut BytesMut) {
        Self::write(ev.name(), &ev, out);
    }

    fn ensure_started(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        let mut usage = self.usage.map(|u| usage_to_wire(&u)).unwrap_or(UsageWire {
            input_tokens: Some(0),
            ..UsageWire::default()
        });
        usage.output_tokens = 0;
        let message = MessagesResponse {
            id: self.id.clone(),
            kind: "message".into(),
            role: "assistant".into(),
            model: self.model.clone(),
            content: vec![],
            stop_reason: None,
            stop_sequence: None,
            usage,
        };
        Self::emit(StreamEventWire::MessageStart { message }, out);
        Self::emit(StreamEventWire::Ping, out);
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if let Some((index, _)) = self.open.take() {
            Self::emit(StreamEventWire::ContentBlockStop { index }, out);
        }
    }

    fn open_block(&mut self, kind: Open, block: Block, out: &mut BytesMut) -> u32 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, kind));
        Self::emit(
            StreamEventWire::ContentBlockStart {
                index,
                content_block: block,
            },
            out,
        );
        index
    }
}

impl SseEncoder for MessagesEncoder {
    const CONTENT_TYPE: &'static str = "text/event-stream; charset=utf-8";

    fn event(&mut self, ev: StreamEvent, out: &mut BytesMut) {
        if self.done {
            return;
        }
        if let StreamEvent::Usage(u) = ev {
            self.usage = Some(u);
            return;
        }
        // `message_start` waits for the next event: a cloud that reports the prompt's
        // usage right after its start (Anthropic) has it in there, cache counts included.
        if matches!(ev, StreamEvent::Start { .. }) {
            return;
        }
        self.ensure_started(out);
        match ev {
            StreamEvent::Start { .. } | StreamEvent::Usage(_) => {}
            StreamEvent::TextDelta { text } => {
                if text.is_empty() {
                    return;
                }
                let index = match self.open {
                    Some((i, Open::Text)) => i,
                    _ => self.open_block(
                        Open::Text,
                        Block::Text {
                            text: String::new(),
                            cache_control: None,
                        },
                        out,
                    ),
                };
                Self::emit(
                    StreamEventWire::ContentBlockDelta {
                        index,
                        delta: BlockDelta::TextDelta { text },
                    },
                    out,
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                let block = Block::ToolUse {
                    id,
                    name,
                    input: serde_json::json!({}),
                    cache_control: None,
                };
                let b = self.open_block(Open::Tool(index), block, out);
                self.tool_blocks.insert(index, b);
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                // Deltas of a call other than the open one (rare, from
                // clouds that interleave calls) still carry its own block
                // index; the SDKs accumulate by index.
                let Some(&b) = self.tool_blocks.get(&index) else {
                    return;
                };
                if !arguments.is_empty() {
                    Self::emit(
                        StreamEventWire::ContentBlockDelta {
                            index: b,
                            delta: BlockDelta::InputJsonDelta {
                                partial_json: arguments,
                            },
                        },
                        out,
                    );
                }
            }
            StreamEvent::Finish { reason } => self.reason = Some(reason),
        }
    }

    /// `message_delta` carries the cloud's usage only, never the gateway's estimate.
    fn close(&mut self, _fallback: Usage, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.ensure_started(out);
        self.close_block(out);
        self.done = true;
        let reason = self.reason.unwrap_or(FinishReason::Stop);
        let usage = self.usage.map(|u| usage_to_wire(&u)).unwrap_or_default();
        Self::emit(
            StreamEventWire::MessageDelta {
                delta: MessageDeltaBody {
                    stop_reason: Some(stop_reason_to_wire(reason).to_string()),
                    stop_sequence: None,
                },
                usage: Some(usage),
            },
            out,
        );
        Self::emit(StreamEventWire::MessageStop, out);
    }

    /// The upstream stream failed after the client got its first byte.
    fn error(&mut self, e: &ProviderError, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.done = true;
        let kind = match e.status {
            Some(503 | 529) => error_type_for_status(529),
            _ => "api_error",
        };
        let body = ErrorEnvelope::new(
            kind,
            format!(
                "The upstream stream failed: {} ({})",
                e.message,
                e.reason_code()
            ),
        );
        Self::write("error", &body, out);
    }

    fn reassemble(&self, answer: &ChatResponse) -> serde_json::Value {
        serde_json::to_value(response_to_wire(answer, &self.model, &self.id)).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use anycloud_providers::ProviderErrorKind;

    fn events(text: &str) -> Vec<(String, serde_json::Value)> {
        text.split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                let (ev, data) = f.split_once('\n').unwrap();
                (
                    ev.strip_prefix("event: ").unwrap().to_string(),
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn text_then_tool_then_usage() {
        let mut enc = MessagesEncoder::new("msg_1".into(), "claude-sonnet".into());
        let mut out = BytesMut::new();
        for ev in [
            StreamEvent::Start {
                id: "x".into(),
                model: "gpt".into(),
            },
            StreamEvent::TextDelta { text: "Hi".into() },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "f".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"a\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "1}".into(),
            },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
            },
            StreamEvent::Usage(Usage {
                input_tokens: 9,
                output_tokens: 4,
                ..Usage::default()
            }),
        ] {
            enc.event(ev, &mut out);
        }
        enc.close(Usage::default(), &mut out);
        let evs = events(std::str::from_utf8(&out).unwrap());
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(evs[0].1["message"]["model"], "claude-sonnet");
        assert_eq!(evs[0].1["message"]["usage"]["input_tokens"], 0);
        assert_eq!(evs[5].1["content_block"]["type"], "tool_use");
        assert_eq!(evs[5].1["index"], 1);
        assert_eq!(evs[6].1["delta"]["partial_json"], "{\"a\":");
        assert_eq!(evs[9].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(evs[9].1["usage"]["output_tokens"], 4);
        assert_eq!(evs[9].1["usage"]["input_tokens"], 9);
        for (name, data) in &evs {
            assert_eq!(data["type"], *name);
        }
    }

    #[test]
    fn failure_after_first_byte_is_an_error_event() {
        let mut enc = MessagesEncoder::new("msg_1".into(), "m".into());
        let mut out = BytesMut::new();
        enc.event(StreamEvent::TextDelta { text: "Hi".into() }, &mut out);
        let e = ProviderError::new(ProviderErrorKind::Protocol, "stream ended early");
        enc.error(&e, &mut out);
        enc.close(Usage::default(), &mut out);
        let evs = events(std::str::from_utf8(&out).unwrap());
        let (name, data) = evs.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(data["error"]["type"], "api_error");
        assert!(!evs.iter().any(|(n, _)| n == "message_stop"));
    }
}
