//! Canonical stream events → the Responses API's SSE event sequence.
//!
//! `response.created` and `response.in_progress` first; then per output
//! item `output_item.added`, its content or argument deltas and `.done`
//! events, `output_item.done`; and last `response.completed` (or
//! `response.incomplete`) carrying usage. Every event has `event:` and
//! `data:` lines and a rising `sequence_number`; there is no `[DONE]`.

use super::wire::{function_call_item, message_item, response_object, status_of, usage, Echo};
use anycloud_providers::ProviderError;
use anycloud_types::{ChatResponse, ContentBlock, FinishReason, StreamEvent, Usage};
use bytes::{BufMut, BytesMut};
use serde_json::{json, Value};

#[derive(Debug)]
struct OpenText {
    item_id: String,
    output_index: usize,
    text: String,
}

#[derive(Debug)]
struct OpenCall {
    index: u32,
    item_id: String,
    output_index: usize,
    call_id: String,
    name: String,
    arguments: String,
}

#[derive(Debug)]
pub struct ResponsesEncoder {
    id: String,
    created_at: i64,
    echo: Echo,
    seq: u64,
    output: Vec<Value>,
    content: Vec<ContentBlock>,
    text: Option<OpenText>,
    call: Option<OpenCall>,
    calls_seen: u32,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

impl ResponsesEncoder {
    pub fn new(id: String, created_at: i64, echo: Echo) -> Self {
        ResponsesEncoder {
            id,
            created_at,
            echo,
            seq: 0,
            output: Vec::new(),
            content: Vec::new(),
            text: None,
            call: None,
            calls_seen: 0,
            finish: None,
            usage: None,
            done: false,
        }
    }

    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    pub fn echo(&self) -> &Echo {
        &self.echo
    }

    fn emit(&mut self, ty: &str, mut data: Value, out: &mut BytesMut) {
        if let Some(o) = data.as_object_mut() {
            o.insert("type".into(), json!(ty));
            o.insert("sequence_number".into(), json!(self.seq));
        }
        self.seq += 1;
        out.put_slice(b"event: ");
        out.put_slice(ty.as_bytes());
        out.put_slice(b"\ndata: ");
        out.put_slice(data.to_string().as_bytes());
        out.put_slice(b"\n\n");
    }

    fn snapshot(&self, status: &str, usage_v: Value) -> Value {
        response_object(
            &self.id,
            self.created_at,
            &self.echo,
            status,
            Value::Null,
            self.output.clone(),
            usage_v,
        )
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self, out: &mut BytesMut) {
        let r = self.snapshot("in_progress", Value::Null);
        self.emit("response.created", json!({"response": r}), out);
        let r = self.snapshot("in_progress", Value::Null);
        self.emit("response.in_progress", json!({"response": r}), out);
    }

    fn close_text(&mut self, out: &mut BytesMut) {
        let Some(t) = self.text.take() else { return };
        let part = json!({"type": "output_text", "text": t.text, "annotations": []});
        self.emit(
            "response.output_text.done",
            json!({"item_id": t.item_id, "output_index": t.output_index, "content_index": 0, "text": t.text}),
            out,
        );
        self.emit(
            "response.content_part.done",
            json!({"item_id": t.item_id, "output_index": t.output_index, "content_index": 0, "part": part}),
            out,
        );
        let item = message_item(&t.item_id, &t.text, "completed");
        self.emit(
            "response.output_item.done",
            json!({"output_index": t.output_index, "item": item}),
            out,
        );
        self.output.push(item);
        self.content.push(ContentBlock::Text { text: t.text });
    }

    fn close_call(&mut self, out: &mut BytesMut) {
        let Some(c) = self.call.take() else { return };
        self.emit(
            "response.function_call_arguments.done",
            json!({"item_id": c.item_id, "output_index": c.output_index, "arguments": c.arguments}),
            out,
        );
        let item = function_call_item(&c.item_id, &c.call_id, &c.name, &c.arguments, "completed");
        self.emit(
            "response.output_item.done",
            json!({"output_index": c.output_index, "item": item}),
            out,
        );
        self.output.push(item);
        self.content.push(ContentBlock::ToolUse {
            id: c.call_id,
            name: c.name,
            arguments: c.arguments,
        });
    }

    fn next_output_index(&self) -> usize {
        self.output.len() + usize::from(self.text.is_some()) + usize::from(self.call.is_some())
    }

    pub fn event(&mut self, ev: StreamEvent, out: &mut BytesMut) {
        if self.done {
            return;
        }
        let suffix = self.id.trim_start_matches("resp_").to_string();
        match ev {
            StreamEvent::Start { .. } => {}
            StreamEvent::TextDelta { text } => {
                if text.is_empty() {
                    return;
                }
                self.close_call(out);
                if self.text.is_none() {
                    let output_index = self.next_output_index();
                    let item_id = format!("msg_{suffix}");
                    let item = json!({"type": "message", "id": item_id, "status": "in_progress",
                                      "role": "assistant", "content": []});
                    self.emit(
                        "response.output_item.added",
                        json!({"output_index": output_index, "item": item}),
                        out,
                    );
                    self.emit(
                        "response.content_part.added",
                        json!({"item_id": item_id, "output_index": output_index, "content_index": 0,
                               "part": {"type": "output_text", "text": "", "annotations": []}}),
                        out,
                    );
                    self.text = Some(OpenText {
                        item_id,
                        output_index,
                        text: String::new(),
                    });
                }
                let (item_id, output_index) = match &mut self.text {
                    Some(t) => {
                        t.text.push_str(&text);
                        (t.item_id.clone(), t.output_index)
                    }
                    None => return,
                };
                self.emit(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": output_index, "content_index": 0, "delta": text}),
                    out,
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.close_text(out);
                self.close_call(out);
                let output_index = self.next_output_index();
                let item_id = format!("fc_{suffix}_{}", self.calls_seen);
                self.calls_seen += 1;
                let item = function_call_item(&item_id, &id, &name, "", "in_progress");
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": output_index, "item": item}),
                    out,
                );
                self.call = Some(OpenCall {
                    index,
                    item_id,
                    output_index,
                    call_id: id,
                    name,
                    arguments: String::new(),
                });
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                let Some(c) = self.call.as_mut().filter(|c| c.index == index) else {
                    return;
                };
                c.arguments.push_str(&arguments);
                let (item_id, output_index) = (c.item_id.clone(), c.output_index);
                self.emit(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": output_index, "delta": arguments}),
                    out,
                );
            }
            StreamEvent::Finish { reason } => self.finish = Some(reason),
            StreamEvent::Usage(u) => self.usage = Some(u),
        }
    }

    /// Closes open items and returns the final response object (to store
    /// before [`ResponsesEncoder::completed`] announces it) and the
    /// assistant content for the stored conversation.
    pub fn close(&mut self, out: &mut BytesMut, fallback_usage: Usage) -> (Value, ChatResponse) {
        self.close_text(out);
        self.close_call(out);
        let (status, incomplete) = status_of(self.finish);
        let u = self.usage.unwrap_or(fallback_usage);
        let mut r = self.snapshot(status, usage(&u));
        r["incomplete_details"] = incomplete;
        let chat = ChatResponse {
            id: self.id.clone(),
            model: self.echo.model.clone(),
            created: self.created_at,
            content: self.content.clone(),
            finish_reason: self.finish.unwrap_or(FinishReason::Stop),
            usage: u,
            system_fingerprint: None,
        };
        (r, chat)
    }

    /// The terminal event.
    pub fn completed(&mut self, response: Value, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.done = true;
        let ty = if response["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(ty, json!({"response": response}), out);
    }

    /// A failure after the first byte: `event: error`, then `response.failed`.
    pub fn error(&mut self, e: &ProviderError, out: &mut BytesMut) {
        if self.done {
            return;
        }
        self.done = true;
        let message = format!(
            "The upstream stream failed: {} ({})",
            e.message,
            e.reason_code()
        );
        self.emit(
            "error",
            json!({"code": "stream_interrupted", "message": message, "param": null}),
            out,
        );
        let mut r = self.snapshot("failed", Value::Null);
        r["error"] = json!({"code": "server_error", "message": message});
        self.emit("response.failed", json!({"response": r}), out);
    }
}
