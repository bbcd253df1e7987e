//! Replays the fuzz seeds and past crash inputs (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`) of the parsers this crate owns — every client API's request,
//! the admin API bodies — and of the config loader, through the entry points the
//! cargo-fuzz targets call.

use std::path::Path;

fn replay(target: &str, run: &dyn Fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(data) = std::fs::read(e.path()) {
                run(&data);
                n += 1;
            }
        }
    }
    assert!(n > 0, "no seeds for fuzz target {target}");
}

#[test]
fn client_request_decoders_survive_every_seed_and_past_crash() {
    replay("ingress_chat", &anycloud_server::fuzzing::chat_request);
    replay(
        "ingress_messages",
        &anycloud_server::fuzzing::messages_request,
    );
    replay(
        "ingress_embeddings",
        &anycloud_server::fuzzing::embeddings_request,
    );
}

#[test]
fn responses_and_admin_bodies_survive_every_seed_and_past_crash() {
    replay(
        "ingress_responses",
        &anycloud_server::fuzzing::responses_request,
    );
    replay("admin_bodies", &anycloud_server::fuzzing::admin_bodies);
}

#[test]
fn the_config_loader_survives_every_seed_and_past_crash() {
    // Same split as fuzz/fuzz_targets/config.rs: text, NUL, the value of every variable.
    replay("config", &|data| {
        let (text, env) = match data.iter().position(|&b| b == 0) {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (data, &b""[..]),
        };
        let (Ok(text), Ok(env)) = (std::str::from_utf8(text), std::str::from_utf8(env)) else {
            return;
        };
        let _ = anycloud_config::parse_str(text, Path::new("fuzz.toml"), &|name| {
            (name != "UNSET").then(|| env.to_string())
        });
    });
}
