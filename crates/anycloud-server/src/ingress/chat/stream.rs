//! Canonical stream events → OpenAI `chat.completion.chunk` SSE.
//!
//! Usage is always requested upstream (metering needs it); the final
//! `choices: []` usage chunk reaches the client only if it asked with
//! `stream_options.include_usage`, and then every earlier chunk carries
//! `"usage": null`, as OpenAI does. A failure after the first byte ends the
//! stream with `data: {"error":…}` and `data: [DONE]`.

use super::convert::{response_to_wire, usage_to_wire};
use crate::ingress::relay::SseEncoder;
use anycloud_providers::openai::wire::{
    ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta, UsageWire,
};
use anycloud_providers::ProviderError;
use anycloud_types::{ChatResponse, StreamEvent, Usage};
use bytes::{BufMut, BytesMut};
use serde::Serialize;

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<ChunkChoice>,
    /// `Some(None)` → `"usage": null`; `None` → omitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageWire>>,
}

#[derive(Debug)]
pub struct ChunkEncoder {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
    role_sent: bool,
    usage: Option<Usage>,
    done: bool,
}

impl ChunkEncoder {
    pub fn new(id: String, created: i64, model: String, include_usage: bool) -> Self {
        ChunkEncoder {
            id,
            created,
            model,
            include_usage,
            role_sent: false,
            usage: None,
            done: false,
        }
    }

    fn chunk(&self, delta: Option<Delta>, finish: Option<&str>, out: &mut BytesMut) {
        let choices = vec![ChunkChoice {
            index: 0,
            delta: Some(delta.unwrap_or_default()),
            finish_reason: finish.map(str::to_string),
        }];
        self.write(choices, None, out);
    }

    fn write(&self, choices: Vec<ChunkChoice>, usage: Option<UsageWire>, out: &mut BytesMut) {
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage: if self.include_usage {
                Some(usage)
            } else {
                None
            },
        };
        out.put_slice(b"data: ");
        if serde_json::to_writer((&mut *out).writer(), &chunk).is_err() {
            out.put_slice(b"{}");
        }
        out.put_slice(b"\n\n");
    }

    fn ensure_role(&mut self, out: &mut BytesMut) {
        if !self.role_sent {
            self.role_sent = true;
            self.chunk(
                Some(Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..Delta::default()
                }),
                None,
                out,
            );
        }
    }
}

impl SseEncoder for ChunkEncoder {
    fn event(&mut self, ev: StreamEvent, out: &mut BytesMut) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { .. } => self.ensure_role(out),
            StreamEvent::TextDelta { text } => {
                self.ensure_role(out);
                if !text.is_empty() {
                    self.chunk(
                        Some(Delta {
                            content: Some(text),
                            ..Delta::default()
                        }),
                        None,
                        out,
                    );
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_role(out);
                self.chunk(
                    Some(Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index: Some(index),
                            id: Some(id),
                            kind: Some("function".into()),
                            function: Some(FunctionCallDelta {
                                name: Some(name),
                                arguments: Some(String::new()),
                            }),
                        }]),
                        ..Delta::default()
                    }),
                    None,
                    out,
                );
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                self.ensure_role(out);
                self.chunk(
                    Some(Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index: Some(index),
                            function: Some(FunctionCallDelta {
                                name: None,
                                arguments: Some(arguments),
                            }),
                            ..ToolCallDelta::default()
                        }]),
                        ..Delta::default()
                    }),
                    None,
                    out,
                );
            }
            StreamEvent::Finish { reason } => {
                self.ensure_role(out);
                self.chunk(None, Some(reason.as_openai()), out);
            }
            StreamEvent::Usage(u) => self.usage = Some(u),
        }
    }

    /// The upstream stream ended cleanly. The usage chunk carries the cloud's
    /// count only, never the gateway's estimate.
    fn close(&mut self, _fallback: Usage, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.done = true;
        if self.include_usage {
            let usage = self.usage.map(|u| usage_to_wire(&u)).unwrap_or_default();
            self.write(vec![], Some(usage), out);
        }
        out.put_slice(b"data: [DONE]\n\n");
    }

    /// The upstream stream failed after the client got its first byte.
    fn error(&mut self, e: &ProviderError, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.done = true;
        let body = serde_json::json!({"error": {
            "message": format!("The upstream stream failed: {} ({})", e.message, e.reason_code()),
            "type": "api_error",
            "param": null,
            "code": "stream_interrupted",
        }});
        out.put_slice(b"data: ");
        out.put_slice(body.to_string().as_bytes());
        out.put_slice(b"\n\ndata: [DONE]\n\n");
    }

    fn reassemble(&self, answer: &ChatResponse) -> serde_json::Value {
        let wire = response_to_wire(answer, &self.model, &self.id, self.created);
        serde_json::to_value(wire).unwrap_or_default()
    }
}
