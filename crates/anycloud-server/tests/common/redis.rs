//! The machine's Redis for tests (`ANYCLOUD_TEST_REDIS`, default
//! `redis://127.0.0.1:6379`): started with the command in `shared/docs/services.md`
//! when it is down; a test skips with one loud line only when that is impossible, and
//! fails instead when `CI` is set. Each test gets its own random key prefix, whose keys
//! are deleted when the [`TestRedis`] is dropped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

fn reachable(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    client
        .get_connection_with_timeout(Duration::from_secs(1))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

/// The test Redis with a fresh prefix, or `None` (after saying why) when there is none.
pub fn test_redis(test: &str) -> Option<TestRedis> {
    let url =
        std::env::var("ANYCLOUD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if !reachable(&url) {
        // The start command from shared/docs/services.md.
        let _ = std::process::Command::new("redis-server")
            .args([
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1 -::1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/var/lib/redis",
                "--logfile",
                "/var/log/redis/ci.log",
            ])
            .status();
        for _ in 0..50 {
            if reachable(&url) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if !reachable(&url) {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{test}: Redis at {url} is unreachable and could not be started (CI must not skip)"
            );
        }
        eprintln!("SKIPPED {test}: no Redis at {url} and `redis-server` could not start one");
        return None;
    }
    let prefix = format!("anycloud-test:{}:{test}:", rand::random::<u64>());
    Some(TestRedis { url, prefix })
}

impl TestRedis {
    /// Every key under this test's prefix.
    pub fn keys(&self) -> Vec<String> {
        let mut c = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut c)
            .unwrap_or_default()
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let _ = redis::cmd("DEL").arg(keys).query::<i64>(&mut self.conn());
        }
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
