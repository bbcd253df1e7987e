//! An Anthropic Messages stream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::anthropic_stream(data));
