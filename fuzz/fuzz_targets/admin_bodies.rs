//! The admin API's JSON bodies (tenants, keys, policies).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_server::fuzzing::admin_bodies(data));
