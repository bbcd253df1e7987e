//! Tests of what only the SQLite backend has (files, URLs, its text timestamps), each on its
//! own temporary database file so they run in parallel. Everything both backends do is
//! tested once for both in `tests/store_suite.rs`.

#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::json;

use super::{parse_location, Location};
use crate::{authenticate, create_key, keys, open, Store, StoreError, TenantRecord};

fn url_for(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

fn tenant(name: &str, policy: serde_json::Value) -> TenantRecord {
    TenantRecord {
        name: name.to_owned(),
        policy,
    }
}

/// A fresh store on a file in a temp dir, with tenants `acme` and `globex` synced.
async fn fresh() -> (tempfile::TempDir, PathBuf, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("anycloud.db");
    let store = open(&url_for(&path)).await.expect("open");
    store
        .sync_tenants(&[tenant("acme", json!({})), tenant("globex", json!({}))])
        .await
        .expect("sync");
    (dir, path, store)
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let (_dir, path, store) = fresh().await;
    let (first, _) = create_key(store.as_ref(), "acme", Some("ci"))
        .await
        .expect("create");
    drop(store);

    let again = open(&url_for(&path)).await.expect("reopen");
    again.ping().await.expect("ping");
    assert_eq!(again.backend(), "sqlite");
    assert_eq!(again.list_tenants().await.expect("tenants").len(), 2);
    assert_eq!(again.key_by_id(&first.id).await.expect("get"), Some(first));
}

#[tokio::test]
async fn database_never_holds_the_clear_key() {
    let (dir, _path, store) = fresh().await;
    let mut secrets = Vec::new();
    for _ in 0..5 {
        let (_, key) = create_key(store.as_ref(), "acme", None)
            .await
            .expect("create");
        let clear = key.expose_secret().to_owned();
        let secret = clear[clear.len() - keys::SECRET_LEN..].to_owned();
        secrets.push(clear);
        secrets.push(secret);
    }
    // Every file SQLite wrote: the database, its WAL and shared-memory index.
    let mut scanned = 0;
    for entry in std::fs::read_dir(dir.path()).expect("read_dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        scanned += bytes.len();
        for s in &secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "clear key material found on disk"
            );
        }
    }
    assert!(scanned > 0, "nothing was written to disk");

    // The check can fail: the (non-secret) key id is on disk.
    let (record, _) = create_key(store.as_ref(), "acme", None)
        .await
        .expect("create");
    let found = std::fs::read_dir(dir.path()).expect("read_dir").any(|e| {
        let bytes = std::fs::read(e.expect("entry").path()).expect("read");
        bytes
            .windows(record.id.len())
            .any(|w| w == record.id.as_bytes())
    });
    assert!(found, "the scan cannot see what was stored");
}

#[tokio::test]
async fn sync_tenants_touches_updated_at_only_on_change() {
    let store = super::SqliteStore::open_in_memory().await.expect("open");
    store
        .sync_tenants(&[tenant("acme", json!({}))])
        .await
        .expect("sync");
    // Backdate the row instead of sleeping, so a change of timestamp is certain to show.
    let old = "2000-01-01T00:00:00.000Z";
    sqlx::query("UPDATE tenants SET created_at = ?1, updated_at = ?1")
        .bind(old)
        .execute(&store.pool)
        .await
        .expect("backdate");
    let times = || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT created_at, updated_at FROM tenants WHERE name = 'acme'",
        )
        .fetch_one(&store.pool)
        .await
        .expect("select")
    };

    store
        .sync_tenants(&[tenant("acme", json!({}))])
        .await
        .expect("sync");
    assert_eq!(times().await, (old.to_owned(), old.to_owned()));

    store
        .sync_tenants(&[tenant("acme", json!({"x": 1}))])
        .await
        .expect("sync");
    let (created, updated) = times().await;
    assert_eq!(created, old);
    assert!(updated.as_str() > old, "{updated}");
}

#[tokio::test]
async fn absolute_url_creates_file_and_parent_dirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/deeper/anycloud.db");
    assert!(path.is_absolute());
    let url = format!("sqlite://{}", path.display());
    assert!(url.starts_with("sqlite:///"));
    let store = open(&url).await.expect("open");
    store.ping().await.expect("ping");
    assert!(path.is_file());
}

#[tokio::test]
async fn relative_url_is_relative_to_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Build a relative path from the working directory to the temp dir, without changing
    // the working directory (tests run in parallel).
    let cwd = std::env::current_dir().expect("cwd");
    let ups = cwd.components().count() - 1;
    let abs_target = dir.path().join("rel/anycloud.db");
    let mut rel = PathBuf::new();
    for _ in 0..ups {
        rel.push("..");
    }
    rel.push(abs_target.strip_prefix("/").expect("absolute"));
    assert!(rel.is_relative());

    let store = open(&format!("sqlite://{}", rel.display()))
        .await
        .expect("open");
    store.ping().await.expect("ping");
    assert!(abs_target.is_file());
}

#[tokio::test]
async fn memory_url_works() {
    let store = open("sqlite::memory:").await.expect("open");
    store
        .sync_tenants(&[tenant("acme", json!({}))])
        .await
        .expect("sync");
    let (_, key) = create_key(store.as_ref(), "acme", None)
        .await
        .expect("create");
    assert!(authenticate(store.as_ref(), key.expose_secret())
        .await
        .expect("auth")
        .is_some());
    // Two in-memory stores do not share data.
    let other = open("sqlite::memory:").await.expect("open");
    assert!(other.list_tenants().await.expect("list").is_empty());
}

#[tokio::test]
async fn unsupported_scheme_names_the_scheme_only() {
    let err = open("mysql://admin:hunter2@db/anycloud")
        .await
        .expect_err("must fail");
    assert!(matches!(err, StoreError::UnsupportedUrl { ref scheme } if scheme == "mysql"));
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("mysql"));
    assert!(!shown.contains("hunter2"), "{shown}");

    assert!(matches!(
        open("anycloud.db").await,
        Err(StoreError::InvalidUrl { .. })
    ));
    assert!(matches!(
        open("sqlite://").await,
        Err(StoreError::InvalidUrl { .. })
    ));
}

#[tokio::test]
async fn postgres_errors_never_show_the_password() {
    // Nothing listens on port 1: the connection is refused.
    for url in [
        "postgres://admin:hunter2@127.0.0.1:1/anycloud",
        "postgresql://admin:hunter2@127.0.0.1:1/anycloud?connect_timeout=1",
        "postgres://admin:hunter2@127.0.0.1:notaport/anycloud",
    ] {
        let err = open(url).await.expect_err("must fail");
        let mut shown = format!("{err} {err:?}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            shown.push_str(&format!(" {s} {s:?}"));
            source = s.source();
        }
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[test]
fn sqlite_locations() {
    let loc = |rest: &str| parse_location(rest).ok();
    let file = |p: &str| Some(Location::File(PathBuf::from(p)));
    assert_eq!(loc("//anycloud.db"), file("anycloud.db"));
    assert_eq!(loc("//data/a.db"), file("data/a.db"));
    assert_eq!(loc("///var/lib/a.db"), file("/var/lib/a.db"));
    assert_eq!(loc("a.db"), file("a.db"));
    assert_eq!(loc(":memory:"), Some(Location::Memory));
    assert_eq!(loc("//:memory:"), Some(Location::Memory));
    assert!(parse_location("//a.db?mode=ro").is_err());
    assert!(parse_location("").is_err());
}

#[test]
fn key_record_serializes_without_hash() {
    let record = crate::KeyRecord {
        id: "abcdef012345".into(),
        tenant: "acme".into(),
        name: None,
        key_hash: "deadbeef".into(),
        key_prefix: "sk-ac-abcdef012345".into(),
        created_at: chrono::Utc::now(),
        revoked_at: None,
    };
    let text = serde_json::to_string(&record).expect("serialize");
    assert!(
        !text.contains("key_hash") && !text.contains("deadbeef"),
        "{text}"
    );
    assert!(text.contains("sk-ac-abcdef012345"));
}

/// Multi-row INSERTs come in power-of-two sizes (so each SQL shape is prepared once), cover
/// every row exactly once, in order, and never exceed the cap.
#[test]
fn pow2_chunks_cover_every_row_in_a_few_cached_shapes() {
    for len in [0usize, 1, 2, 3, 7, 8, 100, 513, 2_000] {
        let items: Vec<usize> = (0..len).collect();
        let chunks: Vec<&[usize]> = super::pow2_chunks(&items, 512).collect();
        assert!(chunks
            .iter()
            .all(|c| c.len().is_power_of_two() && c.len() <= 512));
        assert_eq!(chunks.concat(), items, "len {len}");
    }
    let sizes: Vec<usize> = super::pow2_chunks(&[0u8; 2_000], 512)
        .map(<[u8]>::len)
        .collect();
    assert_eq!(sizes, vec![512, 512, 512, 256, 128, 64, 16]);
}
