//! Canonical stream events → OpenAI `chat.completion.chunk` SSE.
//!
//! Usage is always requested upstream (metering needs it); the final
//! `choices: []` usage chunk reaches the client only if it asked with
//! `stream_options.include_usage`, and then every earlier chunk carries
//! `"usage": null`, as OpenAI does. A failure after the first byte ends the
//! stream with `data: {"error":…}` and `data: [DONE]`.

use anycloud_providers::openai::convert::usage_to_wire;
use anycloud_providers::openai::wire::{
    ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta, UsageWire,
};
use anycloud_providers::ProviderError;
use anycloud_types::{StreamEvent, Usage};
use bytes::{BufMut, Bytes, BytesMut};
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
    output_chars: u64,
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
            output_chars: 0,
            done: false,
        }
    }

    /// The usage seen so far (for metering when the stream ends).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Characters of text and tool arguments relayed, for a usage estimate
    /// when the cloud sends none.
    pub fn output_chars(&self) -> u64 {
        self.output_chars
    }

    pub fn is_done(&self) -> bool {
        self.done
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

    pub fn event(&mut self, ev: StreamEvent, out: &mut BytesMut) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { .. } => self.ensure_role(out),
            StreamEvent::TextDelta { text } => {
                self.output_chars += text.len() as u64;
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
                self.output_chars += arguments.len() as u64;
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

    /// The upstream stream ended cleanly.
    pub fn finish(&mut self, out: &mut BytesMut) {
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
    pub fn error(&mut self, e: &ProviderError, out: &mut BytesMut) {
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
}

pub fn take(out: &mut BytesMut) -> Bytes {
    out.split().freeze()
}
