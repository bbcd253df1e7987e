//! ConverseStream: AWS event-stream frames in, canonical [`StreamEvent`]s out.
//!
//! Two layers. [`FrameReader`] turns body bytes into event-stream messages with
//! `aws-smithy-eventstream`'s `MessageFrameDecoder` (prelude and message CRCs checked;
//! frames may be split across reads or packed several to a read). [`ConverseDecoder`] is
//! the state machine over those messages (provider-wire-formats §3.5 and §0 items 2–4):
//!
//! - `contentBlockStart` with `toolUse` starts a tool call; `toolUse.input` deltas are
//!   its argument fragments, keyed by `contentBlockIndex`;
//! - `messageStop` gives `Finish`, and the `metadata` event that follows carries usage —
//!   so reading continues past `messageStop`;
//! - `:message-type: exception` frames inside the 200 stream become an `Err` classified by
//!   `:exception-type` like the HTTP error they stand for;
//! - a stream that ends before `messageStop` is an error, not an empty success.

use super::convert::{exception_error, finish_reason, usage_from_wire};
use super::wire;
use crate::error::{ProviderError, ProviderErrorKind};
use crate::pump::{pump, Decode};
use crate::EventStream;
use anycloud_types::StreamEvent;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use futures::Stream;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::time::Duration;

/// Event-stream messages are at most 16 MiB (the framing's own limit); more buffered
/// bytes than that without a complete frame means the peer is not speaking event-stream.
const MAX_BUFFERED: usize = 16 * 1024 * 1024 + 16;

/// Bytes in, complete event-stream messages out.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: BytesMut,
    decoder: MessageFrameDecoder,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Appends `chunk` and moves every complete message to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Message>) -> Result<(), ProviderError> {
        self.buf.extend_from_slice(chunk);
        loop {
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(m)) => out.push(m),
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => {
                    return Err(ProviderError::new(
                        ProviderErrorKind::Protocol,
                        format!("invalid event-stream frame: {e}"),
                    ))
                }
            }
        }
        if self.buf.len() > MAX_BUFFERED {
            return Err(ProviderError::new(
                ProviderErrorKind::Protocol,
                "event-stream frame larger than 16 MiB",
            ));
        }
        Ok(())
    }

    /// Whether bytes of an unfinished frame are buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

/// A string header of `msg`.
fn header<'a>(msg: &'a Message, name: &str) -> Option<&'a str> {
    msg.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

fn payload<T: DeserializeOwned>(msg: &Message, event: &str) -> Result<T, ProviderError> {
    serde_json::from_slice(msg.payload()).map_err(|e| {
        ProviderError::new(
            ProviderErrorKind::Protocol,
            format!("ConverseStream {event} event did not decode: {e}"),
        )
    })
}

/// State of one ConverseStream response.
#[derive(Debug)]
pub struct ConverseDecoder {
    id: String,
    model: String,
    started: bool,
    finished: bool,
    usage_sent: bool,
    /// `contentBlockIndex` → our tool-call index.
    calls: HashMap<u32, u32>,
}

impl ConverseDecoder {
    /// `id` is the response id to report (Bedrock's request id), `model` the model id.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> ConverseDecoder {
        ConverseDecoder {
            id: id.into(),
            model: model.into(),
            started: false,
            finished: false,
            usage_sent: false,
            calls: HashMap::new(),
        }
    }

    /// Whether the `metadata` event (the last one) was seen.
    pub fn is_done(&self) -> bool {
        self.usage_sent
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: self.id.clone(),
                model: self.model.clone(),
            });
        }
    }

    /// Feeds one event-stream message.
    pub fn on_message(&mut self, msg: &Message) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        match header(msg, ":message-type") {
            Some("event") => {}
            Some("exception") => {
                let name = header(msg, ":exception-type").unwrap_or("unknownException");
                let body: wire::ErrorBody =
                    serde_json::from_slice(msg.payload()).unwrap_or_default();
                return Err(exception_error(
                    name,
                    None,
                    body.message.as_deref().unwrap_or_default(),
                ));
            }
            Some("error") => {
                let code = header(msg, ":error-code").unwrap_or("UnknownError");
                let text = header(msg, ":error-message").unwrap_or_default();
                return Err(exception_error(code, None, text));
            }
            other => {
                return Err(ProviderError::new(
                    ProviderErrorKind::Protocol,
                    format!(
                        "event-stream message with unknown :message-type {}",
                        other.unwrap_or("(missing)")
                    ),
                ))
            }
        }
        let event = header(msg, ":event-type").unwrap_or_default();
        self.start(&mut out);
        match event {
            "messageStart" | "contentBlockStop" => {}
            "contentBlockStart" => {
                let p: wire::ContentBlockStart = payload(msg, event)?;
                if let Some(t) = p.start.and_then(|s| s.tool_use) {
                    let index = self.calls.len() as u32;
                    self.calls.insert(p.content_block_index, index);
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: t.tool_use_id,
                        name: t.name,
                    });
                }
            }
            "contentBlockDelta" => {
                let p: wire::ContentBlockDelta = payload(msg, event)?;
                let Some(delta) = p.delta else {
                    return Ok(out);
                };
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta { text });
                }
                if let Some(t) = delta.tool_use {
                    let Some(&index) = self.calls.get(&p.content_block_index) else {
                        return Err(ProviderError::new(
                            ProviderErrorKind::Protocol,
                            format!(
                                "tool input for content block {} that never started",
                                p.content_block_index
                            ),
                        ));
                    };
                    if !t.input.is_empty() {
                        out.push(StreamEvent::ToolCallDelta {
                            index,
                            arguments: t.input,
                        });
                    }
                }
            }
            "messageStop" => {
                let p: wire::MessageStop = payload(msg, event)?;
                if !self.finished {
                    self.finished = true;
                    out.push(StreamEvent::Finish {
                        reason: finish_reason(&p.stop_reason),
                    });
                }
            }
            "metadata" => {
                let p: wire::Metadata = payload(msg, event)?;
                if let (Some(u), false) = (p.usage, self.usage_sent) {
                    self.usage_sent = true;
                    out.push(StreamEvent::Usage(usage_from_wire(&u)));
                }
            }
            // Newer event kinds are ignored, as the SDKs do with unknown union members.
            _ => {}
        }
        Ok(out)
    }

    /// The body ended. Without `messageStop` this is a failed stream (§0 item 3).
    pub fn on_end(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        if !self.finished {
            return Err(ProviderError::new(
                ProviderErrorKind::Protocol,
                "stream ended early: Bedrock sent no messageStop",
            ));
        }
        Ok(Vec::new())
    }
}

/// Both layers: body bytes → messages → canonical events.
struct Layers {
    frames: FrameReader,
    dec: ConverseDecoder,
}

impl Decode for Layers {
    type Input = Bytes;
    fn decode(&mut self, bytes: Bytes, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let mut msgs = Vec::new();
        let pushed = self.frames.push(&bytes, &mut msgs);
        // The messages completed before a framing error still count.
        for m in &msgs {
            out.extend(self.dec.on_message(m)?);
        }
        pushed
    }
    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if self.frames.has_partial() {
            return Err(ProviderError::new(
                ProviderErrorKind::Protocol,
                "stream ended inside an event-stream frame",
            ));
        }
        out.extend(self.dec.on_end()?);
        Ok(())
    }
    // Never done early: the `metadata` event with usage follows `messageStop`, and
    // the body is read to its close.
}

/// Runs both layers over a body stream (already wrapped with the idle timeout). The
/// result ends after the first error.
pub fn events<S>(body: S, dec: ConverseDecoder) -> EventStream
where
    S: Stream<Item = Result<Bytes, ProviderError>> + Send + 'static,
{
    let layers = Layers {
        frames: FrameReader::new(),
        dec,
    };
    pump(body, layers)
}

/// [`events`] over a reqwest response body with `idle` allowed between reads.
pub fn from_response(resp: reqwest::Response, idle: Duration, dec: ConverseDecoder) -> EventStream {
    let body = crate::sse::with_idle_timeout(resp.bytes_stream(), idle, |e: reqwest::Error| {
        ProviderError::from_transport(&e)
    });
    events(body, dec)
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
