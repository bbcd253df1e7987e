//! OpenAI / Azure / compatible replies and errors.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::openai_response(data));
