//! An OCI chat stream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycloud_providers::fuzzing::oci_stream(data));
