//! Vertex generateContent / predict replies and errors.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::vertex_response(data));
