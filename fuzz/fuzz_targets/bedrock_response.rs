//! Bedrock Converse replies and errors.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::bedrock_response(data));
