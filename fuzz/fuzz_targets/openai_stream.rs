//! An OpenAI chat-completions stream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::openai_stream(data));
