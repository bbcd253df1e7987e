//! A client's POST /v1/responses body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_server::fuzzing::responses_request(data));
