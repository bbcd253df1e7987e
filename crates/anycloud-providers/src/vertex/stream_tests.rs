//! Unit tests for the Gemini stream state machine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::stream::StreamState;
use crate::error::ProviderErrorKind;
use anycloud_types::{FinishReason, StreamEvent, Usage};

fn run(chunks: &[&str]) -> Vec<Result<StreamEvent, crate::ProviderError>> {
    let mut s = StreamState::new("gemini-2.0-flash");
    let mut out = Vec::new();
    for c in chunks {
        out.extend(s.on_data(c));
    }
    out.extend(s.on_end());
    out
}

fn ok(v: Vec<Result<StreamEvent, crate::ProviderError>>) -> Vec<StreamEvent> {
    v.into_iter().map(Result::unwrap).collect()
}

#[test]
fn text_stream_takes_usage_from_the_last_complete_chunk() {
    let ev = ok(run(&[
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]}}],"usageMetadata":{},"modelVersion":"gemini-2.0-flash-001","responseId":"r1"}"#,
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"lo"}]}}],"usageMetadata":{"candidatesTokenCount":1}}"#,
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"!"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":3,"totalTokenCount":12}}"#,
    ]));
    assert_eq!(
        ev,
        vec![
            StreamEvent::Start {
                id: "r1".into(),
                model: "gemini-2.0-flash-001".into()
            },
            StreamEvent::TextDelta { text: "Hel".into() },
            StreamEvent::TextDelta { text: "lo".into() },
            StreamEvent::TextDelta { text: "!".into() },
            StreamEvent::Finish {
                reason: FinishReason::Stop
            },
            StreamEvent::Usage(Usage {
                input_tokens: 9,
                output_tokens: 3,
                ..Usage::default()
            }),
        ]
    );
}

#[test]
fn whole_function_calls_become_start_plus_one_delta() {
    let ev = ok(run(&[
        r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Oslo"}}},{"functionCall":{"name":"get_time"}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":5}}"#,
    ]));
    let StreamEvent::ToolCallStart { index, id, name } = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!((*index, name.as_str()), (0, "get_weather"));
    assert!(id.starts_with("call_"));
    assert_eq!(
        ev[2],
        StreamEvent::ToolCallDelta {
            index: 0,
            arguments: r#"{"city":"Oslo"}"#.into()
        }
    );
    assert!(
        matches!(&ev[3], StreamEvent::ToolCallStart { index: 1, name, .. } if name == "get_time")
    );
    assert_eq!(
        ev[4],
        StreamEvent::ToolCallDelta {
            index: 1,
            arguments: "{}".into()
        }
    );
    assert_eq!(
        ev[5],
        StreamEvent::Finish {
            reason: FinishReason::ToolCalls
        }
    );
    assert!(matches!(ev[6], StreamEvent::Usage(u) if u.input_tokens == 20));
}

#[test]
fn cut_streams_and_in_stream_errors_fail() {
    let out = run(&[r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}"#]);
    let e = out.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Protocol);

    let out = run(&[
        r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}"#,
        r#"{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"ignored"}]}}]}"#,
    ]);
    assert_eq!(out.len(), 3, "{out:?}");
    let e = out[2].as_ref().unwrap_err();
    assert_eq!(e.status, Some(429));
    assert!(e.is_retryable());

    let out = run(&["not json"]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].as_ref().unwrap_err().kind,
        ProviderErrorKind::Protocol
    );
}

#[test]
fn safety_stop_is_a_content_filter_finish() {
    let ev = ok(run(&[
        r#"{"candidates":[{"content":{"parts":[{"text":"Hm"}]},"finishReason":"SAFETY"}],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":1}}"#,
    ]));
    assert!(ev.contains(&StreamEvent::Finish {
        reason: FinishReason::ContentFilter
    }));
}
