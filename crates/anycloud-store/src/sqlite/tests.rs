//! Tests of the SQLite backend and of the backend-independent key workflows on it, each on
//! its own temporary database file so they run in parallel.

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
async fn created_key_authenticates() {
    let (_dir, _path, store) = fresh().await;
    let (record, key) = create_key(store.as_ref(), "acme", Some("ci"))
        .await
        .expect("create");
    assert_eq!(record.tenant, "acme");
    assert_eq!(record.name.as_deref(), Some("ci"));
    assert_eq!(record.key_prefix, format!("sk-ac-{}", record.id));
    assert!(key.expose_secret().starts_with(&record.key_prefix));
    assert!(record.revoked_at.is_none());

    let found = authenticate(store.as_ref(), key.expose_secret())
        .await
        .expect("auth");
    assert_eq!(found, Some(record));
}

#[tokio::test]
async fn wrong_secret_with_right_id_fails() {
    let (_dir, _path, store) = fresh().await;
    let (record, key) = create_key(store.as_ref(), "acme", None)
        .await
        .expect("create");
    let clear = key.expose_secret();
    // Same id, same length and alphabet, one character of the secret changed.
    let last = clear.chars().last().expect("non-empty");
    let swapped = if last == 'a' { 'b' } else { 'a' };
    let forged = format!("{}{swapped}", &clear[..clear.len() - 1]);
    assert_eq!(keys::parse_id(&forged), Some(record.id.as_str()));
    assert_eq!(
        authenticate(store.as_ref(), &forged).await.expect("auth"),
        None
    );

    // Malformed and unknown keys fail too.
    assert_eq!(authenticate(store.as_ref(), "").await.expect("auth"), None);
    let stranger = keys::generate();
    let unknown = authenticate(store.as_ref(), stranger.key.expose_secret()).await;
    assert_eq!(unknown.expect("auth"), None);
}

#[tokio::test]
async fn revoked_key_fails_and_revocation_is_idempotent() {
    let (_dir, _path, store) = fresh().await;
    let (record, key) = create_key(store.as_ref(), "acme", None)
        .await
        .expect("create");

    let revoked = store
        .revoke_key(&record.id)
        .await
        .expect("revoke")
        .expect("exists");
    let at = revoked.revoked_at.expect("revoked_at set");
    assert!(at >= record.created_at);
    assert!(revoked.is_revoked());
    assert_eq!(
        authenticate(store.as_ref(), key.expose_secret())
            .await
            .expect("auth"),
        None
    );

    let again = store
        .revoke_key(&record.id)
        .await
        .expect("revoke")
        .expect("exists");
    assert_eq!(again.revoked_at, Some(at));
    assert_eq!(
        store.revoke_key("nosuchkey000").await.expect("revoke"),
        None
    );
    let stored = store
        .key_by_id(&record.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.revoked_at, Some(at));
}

#[tokio::test]
async fn list_keys_by_tenant() {
    let (_dir, _path, store) = fresh().await;
    let (a1, _) = create_key(store.as_ref(), "acme", Some("one"))
        .await
        .expect("create");
    let (g1, _) = create_key(store.as_ref(), "globex", None)
        .await
        .expect("create");
    let (a2, _) = create_key(store.as_ref(), "acme", Some("two"))
        .await
        .expect("create");
    store.revoke_key(&a2.id).await.expect("revoke");

    let acme: Vec<String> = store
        .list_keys(Some("acme"))
        .await
        .expect("list")
        .into_iter()
        .map(|k| k.id)
        .collect();
    let mut expected = vec![a1.id.clone(), a2.id.clone()];
    expected.sort();
    let mut got = acme.clone();
    got.sort();
    assert_eq!(got, expected, "revoked keys are listed too");

    let globex = store.list_keys(Some("globex")).await.expect("list");
    assert_eq!(globex.len(), 1);
    assert_eq!(globex[0].id, g1.id);
    assert_eq!(store.list_keys(None).await.expect("list").len(), 3);
    assert!(store
        .list_keys(Some("nobody"))
        .await
        .expect("list")
        .is_empty());
}

#[tokio::test]
async fn key_for_unknown_tenant_is_refused() {
    let (_dir, _path, store) = fresh().await;
    let err = create_key(store.as_ref(), "initech", None)
        .await
        .expect_err("must fail");
    assert!(
        matches!(err, StoreError::UnknownTenant { ref tenant } if tenant == "initech"),
        "{err:?}"
    );
    assert_eq!(err.kind(), "unknown_tenant");
}

#[tokio::test]
async fn duplicate_key_id_is_a_conflict() {
    let (_dir, _path, store) = fresh().await;
    let (record, _) = create_key(store.as_ref(), "acme", None)
        .await
        .expect("create");
    let other = keys::generate();
    let dup = crate::NewKey {
        id: record.id.clone(),
        tenant: "acme".into(),
        name: None,
        key_hash: other.hash,
        key_prefix: record.key_prefix.clone(),
    };
    let err = store.insert_key(&dup).await.expect_err("must fail");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
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
async fn sync_tenants_upserts() {
    let (_dir, _path, store) = fresh().await;
    store
        .sync_tenants(&[
            tenant("acme", json!({"models": ["gpt-4o"], "budget_usd": 100})),
            tenant("initech", json!({"clouds": ["aws-eu"]})),
        ])
        .await
        .expect("sync");
    let tenants = store.list_tenants().await.expect("list");
    assert_eq!(
        tenants,
        vec![
            tenant("acme", json!({"models": ["gpt-4o"], "budget_usd": 100})),
            tenant("globex", json!({})),
            tenant("initech", json!({"clouds": ["aws-eu"]})),
        ]
    );
    store.sync_tenants(&[]).await.expect("empty sync");
    assert_eq!(store.list_tenants().await.expect("list").len(), 3);
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
    let err = open("postgres://admin:hunter2@db/anycloud")
        .await
        .expect_err("must fail");
    assert!(matches!(err, StoreError::UnsupportedUrl { ref scheme } if scheme == "postgres"));
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("postgres"));
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
