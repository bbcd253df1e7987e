//! The SSE parser, split at data-chosen places.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::sse(data));
