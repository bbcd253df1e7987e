//! Unit tests for the ConverseStream decoder, including frames split at every offset.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use anycloud_types::{FinishReason, Usage};
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::Header;
use futures::StreamExt;

fn sh(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_string().into()))
}
use proptest::prelude::*;

fn frame(kind: &str, name: &str, payload: &str) -> Vec<u8> {
    let type_header = if kind == "event" {
        ":event-type"
    } else {
        ":exception-type"
    };
    let msg = Message::new(payload.as_bytes().to_vec())
        .add_header(sh(type_header, name))
        .add_header(sh(":content-type", "application/json"))
        .add_header(sh(":message-type", kind));
    let mut out = Vec::new();
    write_message_to(&msg, &mut out).unwrap();
    out
}

fn tool_stream() -> Vec<u8> {
    [
        frame("event", "messageStart", r#"{"role":"assistant","p":"abcdefgh"}"#),
        frame("event", "contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Checking "}}"#),
        frame("event", "contentBlockStop", r#"{"contentBlockIndex":0}"#),
        frame("event", "contentBlockStart", r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"get_weather"}}}"#),
        frame("event", "contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}}}"#),
        frame("event", "contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Oslo\"}"}}}"#),
        frame("event", "contentBlockStop", r#"{"contentBlockIndex":1}"#),
        frame("event", "messageStop", r#"{"stopReason":"tool_use"}"#),
        frame("event", "metadata", r#"{"usage":{"inputTokens":120,"outputTokens":9,"totalTokens":129,"cacheReadInputTokens":5},"metrics":{"latencyMs":812}}"#),
    ]
    .concat()
}

fn expected() -> Vec<StreamEvent> {
    vec![
        StreamEvent::Start {
            id: "r1".into(),
            model: "m".into(),
        },
        StreamEvent::TextDelta {
            text: "Checking ".into(),
        },
        StreamEvent::ToolCallStart {
            index: 0,
            id: "tooluse_1".into(),
            name: "get_weather".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            arguments: "{\"city\":".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            arguments: "\"Oslo\"}".into(),
        },
        StreamEvent::Finish {
            reason: FinishReason::ToolCalls,
        },
        StreamEvent::Usage(Usage {
            input_tokens: 125,
            output_tokens: 9,
            cached_input_tokens: 5,
            ..Usage::default()
        }),
    ]
}

/// Decodes `chunks` through the whole pipeline; errors become their kind.
fn run(chunks: Vec<Vec<u8>>) -> Vec<Result<StreamEvent, ProviderErrorKind>> {
    let body = futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c))));
    let s = events(body, ConverseDecoder::new("r1", "m"));
    futures::executor::block_on(s.map(|r| r.map_err(|e| e.kind)).collect())
}

#[test]
fn whole_stream_in_one_read() {
    let got: Vec<_> = run(vec![tool_stream()])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, expected());
}

#[test]
fn every_single_split_point_decodes_the_same() {
    let bytes = tool_stream();
    for cut in 0..=bytes.len() {
        let got: Vec<_> = run(vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()])
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, expected(), "split at {cut}");
    }
}

proptest! {
    #[test]
    fn any_chunking_decodes_the_same(cuts in proptest::collection::vec(0usize..2000, 0..40)) {
        let bytes = tool_stream();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            chunks.push(bytes[prev..c].to_vec());
            prev = c;
        }
        let got: Vec<_> = run(chunks).into_iter().map(Result::unwrap).collect();
        prop_assert_eq!(got, expected());
    }
}

#[test]
fn doc_vector_frame_decodes() {
    // provider-wire-formats §3.7, a 148-byte contentBlockDelta frame.
    let hex = "0000009400000057b4ab9aee0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a224869227d7d1f944657";
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let mut msgs = Vec::new();
    FrameReader::new().push(&bytes, &mut msgs).unwrap();
    let evs = ConverseDecoder::new("r", "m").on_message(&msgs[0]).unwrap();
    assert_eq!(evs[1], StreamEvent::TextDelta { text: "Hi".into() });
}

#[test]
fn corrupted_crc_is_a_protocol_error() {
    let mut bytes = tool_stream();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    let got = run(vec![bytes]);
    assert_eq!(got.last(), Some(&Err(ProviderErrorKind::Protocol)));
}

#[test]
fn exception_frame_after_200_is_a_classified_error() {
    let bytes = [
        frame("event", "messageStart", r#"{"role":"assistant"}"#),
        frame(
            "event",
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        ),
        frame(
            "exception",
            "throttlingException",
            r#"{"message":"Too many tokens"}"#,
        ),
    ]
    .concat();
    let body = futures::stream::iter([Ok(Bytes::from(bytes))]);
    let items: Vec<_> = futures::executor::block_on(
        events(body, ConverseDecoder::new("r", "m")).collect::<Vec<_>>(),
    );
    assert_eq!(items.len(), 3);
    let err = items[2].as_ref().unwrap_err();
    assert_eq!(err.status, Some(429));
    assert!(err.is_retryable());
    assert!(err.message.contains("Too many tokens"));
}

#[test]
fn stream_without_message_stop_is_an_error() {
    let bytes = [
        frame("event", "messageStart", r#"{"role":"assistant"}"#),
        frame(
            "event",
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        ),
    ]
    .concat();
    let got = run(vec![bytes]);
    assert_eq!(got.last(), Some(&Err(ProviderErrorKind::Protocol)));
    // Empty body too (earendil-works/pi #4210).
    assert_eq!(run(vec![]), vec![Err(ProviderErrorKind::Protocol)]);
    // A body cut inside a frame.
    let bytes = tool_stream();
    let got = run(vec![bytes[..bytes.len() - 3].to_vec()]);
    assert_eq!(got.last(), Some(&Err(ProviderErrorKind::Protocol)));
}
