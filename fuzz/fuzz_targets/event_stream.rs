//! The AWS event-stream framing (Bedrock).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::event_stream(data));
