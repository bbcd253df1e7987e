//! A client's POST /v1/embeddings body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_server::fuzzing::embeddings_request(data));
