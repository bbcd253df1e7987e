//! A Bedrock ConverseStream (frames + events).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::bedrock_stream(data));
