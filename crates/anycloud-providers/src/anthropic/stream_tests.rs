#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use anycloud_types::{FinishReason, Usage};
use futures::StreamExt;
use serde_json::json;

fn feed(dec: &mut EventDecoder, events: &[serde_json::Value]) -> Vec<StreamEvent> {
    let mut out = Vec::new();
    for e in events {
        out.extend(dec.on_json(&e.to_string()).unwrap());
    }
    out
}

fn documented_stream() -> Vec<serde_json::Value> {
    vec![
        json!({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":410,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":7}}}),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        json!({"type":"ping"}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me check."}}),
        json!({"type":"content_block_stop","index":0}),
        json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}),
        json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}),
        json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Os"}}),
        json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"lo\"}"}}),
        json!({"type":"content_block_stop","index":1}),
        json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":20}}),
        json!({"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":38}}),
        json!({"type":"some_future_event","x":1}),
        json!({"type":"message_stop"}),
    ]
}

#[test]
fn documented_stream_decodes_with_tool_renumbering_and_last_usage() {
    let mut dec = EventDecoder::new();
    let out = feed(&mut dec, &documented_stream());
    assert_eq!(
        out,
        vec![
            StreamEvent::Start {
                id: "msg_01".into(),
                model: "claude".into()
            },
            // The prompt's count as soon as `message_start` gives it, no output yet.
            StreamEvent::Usage(Usage {
                input_tokens: 417,
                output_tokens: 0,
                cached_input_tokens: 7,
                cache_write_tokens: 0,
                cache_write_1h_tokens: 0,
                reasoning_tokens: 0,
            }),
            StreamEvent::TextDelta {
                text: "Let me check.".into()
            },
            // Anthropic block 1 is our tool call 0.
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_1".into(),
                name: "get_weather".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"city\": \"Os".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "lo\"}".into()
            },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls
            },
            // Output is the LAST cumulative value (38), not 1 + 20 + 38.
            StreamEvent::Usage(Usage {
                input_tokens: 417,
                output_tokens: 38,
                cached_input_tokens: 7,
                cache_write_tokens: 0,
                cache_write_1h_tokens: 0,
                reasoning_tokens: 0,
            }),
        ]
    );
    assert!(dec.on_end().unwrap().is_empty());
}

#[test]
fn tool_input_split_anywhere_reassembles() {
    let input = r#"{"city": "Oslo \"centre\"", "n": [1, 2]}"#;
    for cut in 0..input.len() {
        let (a, b) = input.split_at(cut);
        let mut dec = EventDecoder::new();
        let out = feed(
            &mut dec,
            &[
                json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}),
                json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":a}}),
                json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":b}}),
            ],
        );
        let args: String = out
            .iter()
            .filter_map(|e| match e {
                StreamEvent::ToolCallDelta { arguments, .. } => Some(arguments.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(args, input);
    }
}

#[test]
fn error_event_is_a_retryable_err_and_an_unfinished_stream_fails() {
    let mut dec = EventDecoder::new();
    feed(&mut dec, &documented_stream()[..4]);
    let e = dec
        .on_json(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
        .unwrap_err();
    assert_eq!(e.status, Some(529));
    assert!(e.is_retryable());
    assert!(e.message.contains("Overloaded"));
    let e = dec
        .on_json(r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#)
        .unwrap_err();
    assert!(!e.is_retryable());

    let mut dec = EventDecoder::new();
    feed(&mut dec, &documented_stream()[..5]);
    assert_eq!(dec.on_end().unwrap_err().kind, ProviderErrorKind::Protocol);
}

#[test]
fn tool_block_with_whole_input_and_no_deltas_sends_it() {
    let mut dec = EventDecoder::new();
    let out = feed(
        &mut dec,
        &[
            json!({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t","name":"f","input":{"a":1}}}),
            json!({"type":"content_block_stop","index":2}),
        ],
    );
    assert_eq!(
        out.last(),
        Some(&StreamEvent::ToolCallDelta {
            index: 0,
            arguments: r#"{"a":1}"#.into()
        })
    );
}

#[tokio::test]
async fn events_over_sse_bytes_split_arbitrarily() {
    let mut text = String::new();
    for e in documented_stream() {
        text.push_str(&format!(
            "event: {}\ndata: {e}\n\n",
            e["type"].as_str().unwrap()
        ));
    }
    let bytes = text.into_bytes();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = bytes
        .chunks(7)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let sse = crate::sse::decode_with(
        futures::stream::iter(chunks),
        std::time::Duration::from_secs(5),
        |e: std::io::Error| ProviderError::new(ProviderErrorKind::Connect, e.to_string()),
    );
    let all: Vec<_> = events(sse).collect().await;
    assert!(all.iter().all(Result::is_ok));
    assert!(matches!(all.last(), Some(Ok(StreamEvent::Usage(u))) if u.output_tokens == 38));
}
