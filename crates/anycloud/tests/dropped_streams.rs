//! Scenario 5 (tests/chaos/README.md): 1,000 clients that hang up mid-stream, then an
//! upstream that trickles one byte a second, against the real binary. The gateway's tasks
//! (`anycloud_tokio_alive_tasks`), open sockets and file descriptors (`/proc/<pid>/fd`)
//! are counted before and after: once the clients are gone they return to where they were
//! — nothing leaks. A client that waits on the trickling cloud gets an answer once the
//! cloud's `first_byte_timeout_ms` has passed (here 2 s), not after the request deadline.
//!
//! `CHAOS_CLIENTS` (default 1,000) sets how many clients hang up at once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[path = "common/serve.rs"]
mod serve;

use anycloud_emulators::{spawn_on_port, EmulatorConfig};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_anycloud");
const ADMIN: &str = "dropped-streams-admin-token-0123456789";

/// `(alive tasks, open fds, of which sockets)` of the gateway.
async fn counts(url: &str, pid: u32, store_dir: &std::path::Path) -> (i64, usize, usize) {
    let metrics = reqwest::Client::new()
        .get(format!("{url}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tasks = metrics
        .lines()
        .find_map(|l| l.strip_prefix("anycloud_tokio_alive_tasks "))
        .and_then(|v| v.trim().parse().ok())
        .expect("anycloud_tokio_alive_tasks in /metrics");
    let (mut fds, mut sockets) = (0, 0);
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        // The SQLite pool opens the database, its WAL and shm per connection as load
        // grows it (up to its bound, closed again at its idle timeout): those are the
        // pool's, not a request's, so they are not counted as a leak.
        if target.starts_with(store_dir) {
            continue;
        }
        fds += 1;
        if target.to_string_lossy().starts_with("socket:") {
            sockets += 1;
        }
    }
    (tasks, fds, sockets)
}

/// One streamed chat request over a raw connection. `hang_up`: return (dropping the
/// connection) as soon as that many body bytes arrived, or after `give_up`. Returns the
/// status line (empty when none came) and whether the stream had started.
async fn stream(addr: &str, key: &str, hang_up: usize, give_up: Duration) -> (String, bool) {
    let body = r#"{"model":"gpt-4o","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"tell me a long story"}]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if let Some(head) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() - head - 4 >= hang_up {
                    break;
                }
            }
        }
        Some(got)
    };
    let got = tokio::time::timeout(give_up, work)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&got);
    let status = text.lines().next().unwrap_or("").to_string();
    (status, text.contains("data: "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_streams_and_trickling_upstreams_leak_nothing() {
    let clients: usize = std::env::var("CHAOS_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let emulator = spawn_on_port(
        EmulatorConfig::openai_compatible("local", "emu-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("anycloud.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN}"
[store]
url = "sqlite://{db}"
[[clouds]]
name = "local"
provider = "openai_compatible"
base_url = "{emu}"
api_key = "emu-key"
first_byte_timeout_ms = 2000
idle_timeout_ms = 2000
[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "local"
target = "gpt-4o"
capabilities = ["chat", "stream"]
price = {{ input_per_mtok = 2.5, output_per_mtok = 10.0 }}
[[tenants]]
name = "t"
"#,
            db = dir.path().join("gw.db").display(),
            emu = emulator.base_url()
        ),
    )
    .unwrap();
    let key = serve::create_key(BIN, &config, "t");
    let (mut child, url) = serve::serve(BIN, &config);
    let pid = child.id();
    let addr = url.trim_start_matches("http://").to_string();

    // Warm up (key cache, store pool, upstream pool), then the baseline.
    for _ in 0..5 {
        let (status, started) = stream(&addr, &key, usize::MAX, Duration::from_secs(10)).await;
        assert!(status.contains(" 200 ") && started, "{status}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = counts(&url, pid, dir.path()).await;

    // 1. `clients` streams at once, each hung up on after its first bytes of body; the
    // emulator spaces events 50 ms apart so every stream is mid-way when it is dropped.
    emulator.faults().set_chunk_delay(Duration::from_millis(50));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (addr, key) = (addr.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            stream(&addr, &key, 1, Duration::from_secs(30)).await
        }));
    }
    let mut started = 0;
    for t in tasks {
        started += usize::from(t.await.unwrap().1);
    }
    emulator.faults().set_chunk_delay(Duration::ZERO);

    // 2. A cloud trickling one byte a second: half the clients hang up after a second,
    // half wait for the gateway's answer.
    emulator.faults().trickle(Duration::from_secs(1));
    let mut hang = Vec::new();
    let mut wait = Vec::new();
    for i in 0..40 {
        let (addr, key) = (addr.clone(), key.clone());
        let t0 = Instant::now();
        let give_up = if i % 2 == 0 { 1 } else { 30 };
        let t = tokio::spawn(async move {
            let r = stream(&addr, &key, usize::MAX, Duration::from_secs(give_up)).await;
            (r, t0.elapsed())
        });
        if i % 2 == 0 {
            hang.push(t);
        } else {
            wait.push(t);
        }
    }
    for t in hang {
        t.await.unwrap();
    }
    let mut waited = Vec::new();
    for t in wait {
        waited.push(t.await.unwrap());
    }
    emulator.faults().trickle(Duration::ZERO);

    // Back to the baseline within 10 s.
    let t = Instant::now();
    let after = loop {
        let now = counts(&url, pid, dir.path()).await;
        if (now.0 <= before.0 + 2 && now.1 <= before.1 + 2) || t.elapsed() > Duration::from_secs(10)
        {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let slowest = waited.iter().map(|w| w.1).max().unwrap_or_default();
    let answered: Vec<&str> = waited.iter().map(|w| w.0 .0.as_str()).collect();
    let pass = after.0 <= before.0 + 2 && after.1 <= before.1 + 2 && after.2 <= before.2 + 2;
    println!(
        "scenario 5 (dropped streams, trickling upstream): {} — {clients} clients hung up mid-stream ({started} had stream data); \
         20 gave up on a trickling cloud, 20 waited and were answered within {slowest:?} ({:?}); \
         tasks {} → {}, fds {} → {}, sockets {} → {} (after settling {:?})",
        if pass { "PASS" } else { "FAIL" },
        answered.first(),
        before.0,
        after.0,
        before.1,
        after.1,
        before.2,
        after.2,
        t.elapsed(),
    );
    serve::signal(&child, "-TERM");
    serve::wait_exit(&mut child, Duration::from_secs(30));
    assert!(
        started >= clients * 9 / 10,
        "most streams had started before the hang-up"
    );
    assert!(
        slowest < Duration::from_secs(10),
        "a trickling cloud held a client past its first-byte timeout: {slowest:?}"
    );
    assert!(
        answered.iter().all(|s| !s.is_empty()),
        "every waiting client got an answer: {answered:?}"
    );
    assert!(pass, "leak: see the line above");
}
