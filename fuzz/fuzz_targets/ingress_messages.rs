//! A client's POST /v1/messages body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_server::fuzzing::messages_request(data));
