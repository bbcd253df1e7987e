//! Anthropic Messages replies.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::anthropic_response(data));
