//! A client's POST /v1/chat/completions body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_server::fuzzing::chat_request(data));
