#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use futures::StreamExt;
use serde_json::{json, Value};

fn data(v: Value) -> SseEvent {
    SseEvent {
        event: None,
        data: v.to_string(),
    }
}

fn done() -> SseEvent {
    SseEvent {
        event: None,
        data: "[DONE]".into(),
    }
}

/// Runs the decoder over events; the last item is the end-of-stream result.
fn run(events: &[SseEvent]) -> (Vec<StreamEvent>, Result<(), ProviderError>) {
    let mut dec = ChunkDecoder::new();
    let mut out = Vec::new();
    for ev in events {
        match dec.on_event(ev) {
            Ok(evs) => out.extend(evs),
            Err(e) => return (out, Err(e)),
        }
    }
    match dec.on_end() {
        Ok(evs) => {
            out.extend(evs);
            (out, Ok(()))
        }
        Err(e) => (out, Err(e)),
    }
}

fn chunk(choices: Value) -> Value {
    json!({"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": choices})
}

fn text(t: &str) -> StreamEvent {
    StreamEvent::TextDelta { text: t.into() }
}

fn start() -> StreamEvent {
    StreamEvent::Start {
        id: "chatcmpl-x".into(),
        model: "gpt-4o".into(),
    }
}

#[test]
fn azure_text_stream_with_filter_chunks_and_usage() {
    let events = vec![
        // Azure's prompt-filter chunk: empty choices, empty id.
        data(
            json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]}),
        ),
        data(chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null, "content_filter_results": {}}]),
        )),
        data(chunk(
            json!([{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]),
        )),
        // Asynchronous filter offsets: no delta.
        data(
            json!({"id": "", "choices": [{"index": 0, "finish_reason": null, "content_filter_results": {},
            "content_filter_offsets": {"check_offset": 0, "start_offset": 0, "end_offset": 3}}]}),
        ),
        data(chunk(
            json!([{"index": 0, "delta": {"content": "lo"}, "finish_reason": null}]),
        )),
        data(chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        )),
        data(
            json!({"id": "", "choices": [{"index": 0, "finish_reason": null, "content_filter_offsets": {}}]}),
        ),
        data(
            json!({"id": "chatcmpl-x", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
            "prompt_tokens_details": {"cached_tokens": 4}}}),
        ),
        done(),
    ];
    let (out, end) = run(&events);
    end.unwrap();
    assert_eq!(
        out,
        vec![
            start(),
            text("Hel"),
            text("lo"),
            StreamEvent::Finish {
                reason: FinishReason::Stop
            },
            StreamEvent::Usage(Usage {
                input_tokens: 9,
                output_tokens: 2,
                cached_input_tokens: 4,
                ..Usage::default()
            }),
        ]
    );
}

#[test]
fn tool_call_fragments_by_index() {
    let events = vec![
        data(chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": null}]),
        )),
        data(chunk(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}}]),
        )),
        data(chunk(json!([{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}}]))),
        data(chunk(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\":\"Oslo\"}"}}]}}]),
        )),
        data(chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        )),
        done(),
    ];
    let (out, end) = run(&events);
    end.unwrap();
    assert_eq!(
        out,
        vec![
            start(),
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "get_weather".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"ci".into()
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "call_2".into(),
                name: "get_time".into()
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{}".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "ty\":\"Oslo\"}".into()
            },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls
            },
        ]
    );
}

#[test]
fn missing_or_reused_indexes_and_late_names() {
    let events = vec![
        data(chunk(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{\"x\""}}]}}]),
        )),
        // No index, no id: continues the current call.
        data(chunk(
            json!([{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": ":1}"}}]}}]),
        )),
        // Index 0 reused with a new id: a second call.
        data(chunk(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "b", "function": {"arguments": "{"}}]}}]),
        )),
        // Its name arrives late; the held-back arguments follow the start.
        data(chunk(
            json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "g", "arguments": "}"}}]}}]),
        )),
        data(chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        )),
    ];
    let (out, end) = run(&events);
    end.unwrap();
    assert_eq!(
        out[1..],
        vec![
            StreamEvent::ToolCallStart {
                index: 0,
                id: "a".into(),
                name: "f".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"x\"".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: ":1}".into()
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "b".into(),
                name: "g".into()
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{}".into()
            },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls
            },
        ][..]
    );
}

#[test]
fn usage_on_a_normal_chunk_is_emitted_at_the_end() {
    let events = vec![
        data(chunk(json!([{"index": 0, "delta": {"content": "x"}}]))),
        data(
            json!({"id": "chatcmpl-x", "model": "gpt-4o", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
        ),
    ];
    let (out, end) = run(&events);
    end.unwrap();
    assert_eq!(
        out.last(),
        Some(&StreamEvent::Usage(Usage {
            input_tokens: 1,
            output_tokens: 1,
            ..Usage::default()
        }))
    );
    assert!(out.contains(&StreamEvent::Finish {
        reason: FinishReason::Length
    }));
}

#[test]
fn mid_stream_error_is_classified() {
    let events = vec![
        data(chunk(json!([{"index": 0, "delta": {"content": "x"}}]))),
        data(
            json!({"error": {"message": "The server is overloaded", "type": "service_unavailable_error", "code": "server_is_overloaded"}}),
        ),
        data(chunk(json!([{"index": 0, "delta": {"content": "never"}}]))),
    ];
    let (out, end) = run(&events);
    assert_eq!(out, vec![start(), text("x")]);
    let e = end.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Upstream);
    assert_eq!(e.status, Some(503));
    assert_eq!(e.message, "The server is overloaded");
    assert!(e.is_retryable());

    let (_, end) = run(&[data(
        json!({"error": {"message": "too long", "type": "invalid_request_error", "code": "context_length_exceeded"}}),
    )]);
    assert_eq!(end.unwrap_err().kind, ProviderErrorKind::InvalidRequest);
}

#[test]
fn early_end_is_a_protocol_error() {
    let (out, end) = run(&[data(chunk(
        json!([{"index": 0, "delta": {"content": "Hel"}}]),
    ))]);
    assert_eq!(out, vec![start(), text("Hel")]);
    let e = end.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Protocol);
    assert_eq!(e.message, "stream ended early");

    // An empty stream too.
    assert_eq!(run(&[]).1.unwrap_err().kind, ProviderErrorKind::Protocol);
    // A finish without [DONE] (the usage chunk lost) is fine.
    let (_, end) = run(&[data(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
    ))]);
    end.unwrap();
    // [DONE] without a finish reason still finishes.
    let (out, end) = run(&[
        data(chunk(json!([{"index": 0, "delta": {"content": "a"}}]))),
        done(),
    ]);
    end.unwrap();
    assert_eq!(
        out.last(),
        Some(&StreamEvent::Finish {
            reason: FinishReason::Other
        })
    );
}

#[test]
fn garbage_is_a_protocol_error() {
    let (_, end) = run(&[SseEvent {
        event: None,
        data: "{not json".into(),
    }]);
    assert_eq!(end.unwrap_err().kind, ProviderErrorKind::Protocol);
}

#[tokio::test]
async fn events_driver_stops_after_done_and_after_errors() {
    let sse: SseStream = Box::pin(futures::stream::iter(vec![
        Ok(data(chunk(
            json!([{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]),
        ))),
        Ok(done()),
        Ok(SseEvent {
            event: None,
            data: "{garbage after done".into(),
        }),
    ]));
    let out: Vec<_> = events(sse).collect().await;
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(Result::is_ok));

    let sse: SseStream = Box::pin(futures::stream::iter(vec![
        Ok(data(chunk(
            json!([{"index": 0, "delta": {"content": "a"}}]),
        ))),
        Err(ProviderError::new(ProviderErrorKind::Timeout, "idle")),
        Ok(data(chunk(
            json!([{"index": 0, "delta": {"content": "b"}}]),
        ))),
    ]));
    let out: Vec<_> = events(sse).collect().await;
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[2].as_ref().unwrap_err().kind,
        ProviderErrorKind::Timeout
    );
}
