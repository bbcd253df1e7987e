//! The config loader: TOML with `${VAR}` interpolation, then validation. The input is
//! the config text, a NUL byte, and the value every variable resolves to.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (text, env) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let (Ok(text), Ok(env)) = (std::str::from_utf8(text), std::str::from_utf8(env)) else {
        return;
    };
    let _ = anycloud_config::parse_str(text, std::path::Path::new("fuzz.toml"), &|name| {
        (name != "UNSET").then(|| env.to_string())
    });
});
