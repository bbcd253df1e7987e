//! A Vertex streamGenerateContent stream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::vertex_stream(data));
