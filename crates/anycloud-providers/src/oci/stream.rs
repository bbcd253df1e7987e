//! The OCI GENERIC chat stream: SSE `data:` objects in, canonical
//! [`StreamEvent`]s out.
//!
//! OCI streaming is unconfirmed (provider-wire-formats §9); this follows the
//! best description in §6.4 and is deliberately tolerant:
//! - text: `{"index":0,"message":{"role":"ASSISTANT","content":[{"type":"TEXT","text":"…"}]}}`;
//! - tool calls: `message.toolCalls[]`, `name`/`arguments` flat or under
//!   `function`; an entry with a new `id` starts a call, one without continues
//!   the last call's arguments;
//! - end: a chunk with `finishReason` (any casing);
//! - usage: a `usage` object on any chunk (asked for with
//!   `streamOptions.isIncludeUsage`); when none arrives by the end it is
//!   estimated (about four characters a token) so metering never sees zero;
//! - errors: a chunk in the OCI error shape (`code` + string `message`);
//! - `data: [DONE]` is accepted but not required. A stream that ends without
//!   a `finishReason` is an error, not an empty success.

use super::convert::{error_from_stream, finish_reason, usage_from_wire};
use super::wire::{MessageWire, StreamChunk};
use crate::error::{ProviderError, ProviderErrorKind};
use crate::pump::{pump, sse_decode};
use crate::sse::{SseEvent, SseStream};
use crate::EventStream;
use anycloud_types::{StreamEvent, Usage};

/// Decoder state for one upstream stream.
#[derive(Debug)]
pub struct OciDecoder {
    id: String,
    model: String,
    /// Prompt-size estimate, used only when the cloud reports no usage.
    estimated_input: u64,
    started: bool,
    finished: bool,
    done: bool,
    usage: Option<Usage>,
    output_chars: u64,
    /// Ids of the calls started so far (our index = position).
    calls: Vec<String>,
}

impl OciDecoder {
    pub fn new(id: String, model: String, estimated_input: u64) -> OciDecoder {
        OciDecoder {
            id,
            model,
            estimated_input,
            started: false,
            finished: false,
            done: false,
            usage: None,
            output_chars: 0,
            calls: Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds one SSE event; returns the canonical events it produces.
    pub fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        if ev.is_done() {
            self.done = true;
            return Ok(out);
        }
        if ev.data.trim().is_empty() {
            return Ok(out);
        }
        let chunk: StreamChunk = serde_json::from_str(&ev.data).map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Protocol,
                format!("oci stream chunk did not decode: {e}"),
            )
        })?;
        if let (Some(code), Some(serde_json::Value::String(message))) =
            (&chunk.code, &chunk.message)
        {
            return Err(error_from_stream(code, message));
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: self.id.clone(),
                model: self.model.clone(),
            });
        }
        if let Some(m) = chunk.message.filter(serde_json::Value::is_object) {
            let m: MessageWire = serde_json::from_value(m).map_err(|e| {
                ProviderError::new(
                    ProviderErrorKind::Protocol,
                    format!("oci stream message did not decode: {e}"),
                )
            })?;
            self.on_message(&m, &mut out);
        }
        if let Some(reason) = &chunk.finish_reason {
            if !self.finished {
                self.finished = true;
                out.push(StreamEvent::Finish {
                    reason: finish_reason(reason),
                });
            }
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(usage_from_wire(u));
        }
        Ok(out)
    }

    fn on_message(&mut self, m: &MessageWire, out: &mut Vec<StreamEvent>) {
        for part in m.content.iter().flatten() {
            if let super::wire::ContentPart::Text { text } = part {
                if !text.is_empty() {
                    self.output_chars += text.len() as u64;
                    out.push(StreamEvent::TextDelta { text: text.clone() });
                }
            }
        }
        for call in m.tool_calls.iter().flatten() {
            let id = call.id.as_deref().filter(|s| !s.is_empty());
            let new_call = match id {
                Some(id) => self.calls.last().map(String::as_str) != Some(id),
                None => self.calls.is_empty(),
            };
            if new_call {
                let index = self.calls.len();
                let id = id.map_or_else(|| format!("call_{index}"), str::to_string);
                self.calls.push(id.clone());
                out.push(StreamEvent::ToolCallStart {
                    index: index as u32,
                    id,
                    name: call.name().unwrap_or_default().to_string(),
                });
            }
            if let Some(args) = call.arguments().filter(|a| !a.is_empty()) {
                self.output_chars += args.len() as u64;
                out.push(StreamEvent::ToolCallDelta {
                    index: (self.calls.len() - 1) as u32,
                    arguments: args.to_string(),
                });
            }
        }
    }

    /// The upstream stream ended. Errors unless it finished; emits usage (the
    /// cloud's, else an estimate).
    pub fn on_end(&mut self) -> Result<Vec<StreamEvent>, ProviderError> {
        if !self.finished {
            return Err(ProviderError::new(
                ProviderErrorKind::Protocol,
                "oci stream ended early (no finishReason)",
            ));
        }
        let usage = self.usage.take().unwrap_or(Usage {
            input_tokens: self.estimated_input,
            output_tokens: self.output_chars.div_ceil(4),
            ..Usage::default()
        });
        Ok(vec![StreamEvent::Usage(usage)])
    }
}

sse_decode!(OciDecoder);

/// Runs the decoder over an SSE stream. The result ends after the first error.
pub fn events(sse: SseStream, dec: OciDecoder) -> EventStream {
    pump(sse, dec)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use anycloud_types::FinishReason;

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.into(),
        }
    }

    fn run(dec: &mut OciDecoder, chunks: &[&str]) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = Vec::new();
        for c in chunks {
            out.extend(dec.on_event(&ev(c))?);
        }
        out.extend(dec.on_end()?);
        Ok(out)
    }

    #[test]
    fn text_finish_and_usage() {
        let mut d = OciDecoder::new("rid".into(), "m".into(), 7);
        let out = run(
            &mut d,
            &[
                r#"{"index":0,"message":{"role":"ASSISTANT","content":[{"type":"TEXT","text":"Hel"}]},"pad":"x"}"#,
                r#"{"index":0,"message":{"role":"ASSISTANT","content":[{"type":"TEXT","text":"lo"}]}}"#,
                r#"{"message":{"role":"ASSISTANT"},"finishReason":"STOP"}"#,
                r#"{"usage":{"promptTokens":3,"completionTokens":2,"totalTokens":5}}"#,
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                StreamEvent::Start {
                    id: "rid".into(),
                    model: "m".into()
                },
                StreamEvent::TextDelta { text: "Hel".into() },
                StreamEvent::TextDelta { text: "lo".into() },
                StreamEvent::Finish {
                    reason: FinishReason::Stop
                },
                StreamEvent::Usage(Usage {
                    input_tokens: 3,
                    output_tokens: 2,
                    ..Usage::default()
                }),
            ]
        );
    }

    #[test]
    fn tool_calls_nested_or_flat_and_estimated_usage() {
        let mut d = OciDecoder::new("rid".into(), "m".into(), 7);
        let out = run(
            &mut d,
            &[
                r#"{"message":{"role":"ASSISTANT","toolCalls":[{"id":"c1","type":"FUNCTION","function":{"name":"get_weather","arguments":"{\"ci"}}]}}"#,
                r#"{"message":{"role":"ASSISTANT","toolCalls":[{"arguments":"ty\":1}"}]}}"#,
                r#"{"message":{"role":"ASSISTANT","toolCalls":[{"id":"c2","type":"FUNCTION","name":"other","arguments":"{}"}]}}"#,
                r#"{"finishReason":"tool_calls"}"#,
                "[DONE]",
            ],
        )
        .unwrap();
        assert_eq!(
            out[1],
            StreamEvent::ToolCallStart {
                index: 0,
                id: "c1".into(),
                name: "get_weather".into()
            }
        );
        assert_eq!(
            out[3],
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "ty\":1}".into()
            }
        );
        assert_eq!(
            out[4],
            StreamEvent::ToolCallStart {
                index: 1,
                id: "c2".into(),
                name: "other".into()
            }
        );
        assert_eq!(
            out[6],
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls
            }
        );
        // No usage from the cloud: 7 estimated input, 12 argument chars → 3.
        assert_eq!(
            out[7],
            StreamEvent::Usage(Usage {
                input_tokens: 7,
                output_tokens: 3,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn errors_and_early_end() {
        let mut d = OciDecoder::new("r".into(), "m".into(), 1);
        let e = d
            .on_event(&ev(r#"{"code":"TooManyRequests","message":"slow down"}"#))
            .unwrap_err();
        assert_eq!(e.status, Some(429));
        assert!(e.is_retryable());
        let mut d = OciDecoder::new("r".into(), "m".into(), 1);
        let e = run(
            &mut d,
            &[r#"{"message":{"content":[{"type":"TEXT","text":"x"}]}}"#],
        )
        .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Protocol);
        let mut d = OciDecoder::new("r".into(), "m".into(), 1);
        assert_eq!(
            d.on_event(&ev("{not json")).unwrap_err().kind,
            ProviderErrorKind::Protocol
        );
    }
}
