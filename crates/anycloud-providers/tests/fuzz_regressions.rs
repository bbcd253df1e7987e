//! Replays every fuzz seed and every input the fuzzers ever crashed on
//! (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`) through the same entry points
//! the cargo-fuzz targets call (`anycloud_providers::fuzzing`: a cloud's replies and streams), in the normal test
//! suite: a decoder change that brings a crash back fails here, on stable, in seconds.

use anycloud_providers::fuzzing as f;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(data) = std::fs::read(e.path()) else {
                continue;
            };
            run(&data);
            n += 1;
        }
    }
    assert!(n > 0, "no seeds for fuzz target {target}");
}

#[test]
fn stream_parsers_survive_every_seed_and_past_crash() {
    replay("sse", f::sse);
    replay("event_stream", f::event_stream);
}

#[test]
fn cloud_decoders_survive_every_seed_and_past_crash() {
    replay("openai_response", f::openai_response);
    replay("openai_stream", f::openai_stream);
    replay("anthropic_response", f::anthropic_response);
    replay("anthropic_stream", f::anthropic_stream);
    replay("bedrock_response", f::bedrock_response);
    replay("bedrock_stream", f::bedrock_stream);
    replay("vertex_response", f::vertex_response);
    replay("vertex_stream", f::vertex_stream);
    replay("oci_response", f::oci_response);
    replay("oci_stream", f::oci_stream);
}
