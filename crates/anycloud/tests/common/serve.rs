//! Starts the real `anycloud serve` binary on the port 0 its config asks for and learns the
//! address from its JSON log; stderr keeps being drained so the child never blocks.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use std::time::Instant;

/// The child and its base URL (`http://127.0.0.1:<port>`).
pub fn serve(bin: &str, config: &Path) -> (Child, String) {
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("ANYCLOUD_LOG", "info")
        .env("ANYCLOUD_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The listening address is in the log; keep draining stderr afterwards.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("anycloud listening") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line);
                }
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("gateway did not start");
    let log: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = log["fields"]["addr"].as_str().unwrap().to_string();
    (child, format!("http://{addr}"))
}

/// Sends `sig` (`-TERM`, `-KILL`, …) to the child.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits for the child to exit, at most `within`.
pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(start.elapsed() < within, "gateway did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A new virtual key for `tenant`, made by the binary's `keys create` against `config`'s
/// store (the way an operator makes one); panics with the command's stderr if it fails.
pub fn create_key(bin: &str, config: &Path, tenant: &str) -> String {
    let out = Command::new(bin)
        .args(["keys", "create", "--tenant", tenant, "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string()
}
