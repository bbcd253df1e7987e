//! Black-box durability of the ledger: the real `anycloud serve` binary under load from
//! 8 concurrent clients over emulated clouds, then SIGTERM (every completed response has
//! its usage record) or SIGKILL (the store opens cleanly and at most the last unflushed
//! batch is missing).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[path = "common/serve.rs"]
mod serve;

use serve::{signal, wait_exit};

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_anycloud");

struct Gateway {
    child: Child,
    url: String,
    key: String,
    db: PathBuf,
    _dir: tempfile::TempDir,
    _emulator: EmulatorHandle,
}

async fn start() -> Gateway {
    let emulator = spawn_on_port(
        EmulatorConfig::openai_compatible("local", "emu-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let config = dir.path().join("anycloud.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{db}"
[[clouds]]
name = "local"
provider = "openai_compatible"
base_url = "{base}"
api_key = "emu-key"
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
            db = db.display(),
            base = emulator.base_url()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["keys", "create", "--config"])
        .arg(&config)
        .args(["--tenant", "t"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let (child, url) = serve::serve(BIN, &config);
    Gateway {
        child,
        url,
        key,
        db,
        _dir: dir,
        _emulator: emulator,
    }
}

/// Runs 8 clients until `stop`; returns the completion time of every 200 whose body was
/// received whole.
async fn load(g: &Gateway, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Instant>> {
    let done = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (url, key, stop, done) = (g.url.clone(), g.key.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let stream = (i + n).is_multiple_of(2);
                let body = serde_json::json!({"model": "gpt-4o", "stream": stream,
                    "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": format!("hello {i} {n}")}]});
                let Ok(resp) = client
                    .post(format!("{url}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let ok = resp.status() == 200;
                let Ok(text) = resp.text().await else {
                    continue;
                };
                if ok && (!stream || text.contains("[DONE]")) {
                    done.lock().unwrap().push(Instant::now());
                }
            }
        }));
    }
    tokio::spawn(async move {
        for t in tasks {
            let _ = t.await;
        }
        let v = done.lock().unwrap().clone();
        v
    })
}

async fn open_db(path: &Path) -> sqlx::SqlitePool {
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_every_record_of_every_completed_response() {
    let mut g = start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&g, stop.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Requests keep arriving while the gateway shuts down.
    signal(&g.child, "-TERM");
    let status = tokio::task::block_in_place(|| wait_exit(&mut g.child, Duration::from_secs(20)));
    stop.store(true, Ordering::Relaxed);
    let completed = clients.await.unwrap().len() as i64;
    assert!(status.success(), "exit status {status}");
    assert!(completed > 50, "too little load: {completed}");
    let pool = open_db(&g.db).await;
    let records: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(&pool)
        .await
        .unwrap();
    let costed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM usage_ledger WHERE cost_nanos > 0 AND outcome = 'ok'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(records, completed, "ledger records vs completed responses");
    assert_eq!(costed, records, "every record has tokens and a cost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_leaves_a_clean_store_missing_at_most_the_last_batch() {
    let mut g = start().await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&g, stop.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    signal(&g.child, "-KILL");
    tokio::task::block_in_place(|| wait_exit(&mut g.child, Duration::from_secs(10)));
    stop.store(true, Ordering::Relaxed);
    let done = clients.await.unwrap();
    let completed = done.len() as i64;
    // What may be missing is what had not been committed: records finished within one
    // flush interval (50 ms) plus one commit before the kill. Allow 500 ms for a commit
    // on a loaded machine; the 8 requests in flight may have been recorded without their
    // response reaching the client.
    let window = Duration::from_millis(550);
    let recent = done
        .iter()
        .filter(|t| killed_at.saturating_duration_since(**t) <= window)
        .count() as i64;
    let pool = open_db(&g.db).await;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    let records: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("completed {completed}, records {records}, completed in the last window {recent}");
    assert!(completed > 50, "too little load: {completed}");
    assert!(
        records >= completed - recent,
        "lost more than the last batch: {records} records, {completed} completed, {recent} recent"
    );
    assert!(
        records <= completed + 8,
        "{records} records for {completed} responses"
    );
}
