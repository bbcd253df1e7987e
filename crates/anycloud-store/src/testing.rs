//! Test support (feature `test-util`): a fresh PostgreSQL schema per test, on the server
//! named by `ANYCLOUD_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! [`PgSchema::create`] starts the machine's PostgreSQL if it is down; if it still cannot
//! connect, it prints one loud line and returns `None` so the test can skip — unless `CI`
//! is set, where it fails instead. The schema is dropped when the [`PgSchema`] is dropped,
//! even when the test panics. Used by this crate's store suite and by other crates' tests
//! (anything that takes a store URL can use [`PgSchema::url`]).

// Test support: failing loudly is its job.
#![allow(clippy::panic, clippy::expect_used)]

use std::time::Duration;

use rand::Rng;
use sqlx::{Connection, Executor, PgConnection};

use crate::{PgStore, StoreError};

/// The environment variable naming the test server.
pub const POSTGRES_ENV: &str = "ANYCLOUD_TEST_POSTGRES";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
/// How to start the machine's cluster when it is down (see services.md).
const START_POSTGRES: &str =
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

/// The test server's URL.
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// A schema of its own on the test server, dropped on drop.
#[derive(Debug)]
pub struct PgSchema {
    server: String,
    name: String,
}

impl PgSchema {
    /// Creates `anycloud_test_<random>`; `None` (after one loud line on stderr) when no
    /// server can be reached and `CI` is unset.
    pub async fn create() -> Option<PgSchema> {
        let server = postgres_url();
        let mut conn = match connect_or_start(&server).await {
            Ok(conn) => conn,
            Err(reason) if std::env::var_os("CI").is_some() => {
                panic!("PostgreSQL for tests unreachable ({POSTGRES_ENV}): {reason}")
            }
            Err(reason) => {
                eprintln!("SKIPPED: PostgreSQL for tests unreachable ({POSTGRES_ENV}): {reason}");
                return None;
            }
        };
        let name = format!("anycloud_test_{:016x}", rand::thread_rng().gen::<u64>());
        conn.execute(format!("CREATE SCHEMA {name}").as_str())
            .await
            .expect("create test schema");
        let _ = conn.close().await;
        Some(PgSchema { server, name })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A store URL whose connections use this schema (`options=-c search_path=<schema>`).
    pub fn url(&self) -> String {
        let sep = if self.server.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.server, self.name
        )
    }

    /// A migrated store on this schema.
    pub async fn store(&self) -> Result<PgStore, StoreError> {
        PgStore::open(&self.url()).await
    }
}

impl Drop for PgSchema {
    /// Drops the schema from a thread of its own: `Drop` cannot await, and the test's
    /// runtime may be the one running this.
    fn drop(&mut self) {
        let server = self.server.clone();
        let sql = format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
            self.name
        );
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&server).await.ok()?;
                conn.execute(sql.as_str()).await.ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test schema {}", self.name);
        }
    }
}

/// Connects, starting the local cluster once if the first attempt fails.
async fn connect_or_start(server: &str) -> Result<PgConnection, String> {
    if let Ok(conn) = PgConnection::connect(server).await {
        return Ok(conn);
    }
    let started = std::process::Command::new("sh")
        .arg("-c")
        .arg(START_POSTGRES)
        .output();
    // Give a just-started server a few seconds to accept connections.
    let mut last = String::from("not started");
    for _ in 0..40 {
        match PgConnection::connect(server).await {
            Ok(conn) => return Ok(conn),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let how = match started {
        Ok(out) if out.status.success() => "started it, still refused".to_owned(),
        Ok(out) => format!(
            "could not start it: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("could not start it: {e}"),
    };
    Err(format!("{last}; {how}"))
}
