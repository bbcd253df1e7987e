//! Migrations: listed, applied in order and once, on both backends.

use chrono::Utc;

use anycloud_store::open_unmigrated;

use crate::fixture::*;

both_backends!(migrations_are_listed_applied_once_and_idempotent,);

async fn migrations_are_listed_applied_once_and_idempotent(f: &Fixture) {
    // A fresh database: every migration is pending, and applied in order, once.
    let store = open_unmigrated(&f.url).await.expect("open");
    let all = store.pending_migrations().await.expect("pending");
    let versions: Vec<i64> = all.iter().map(|m| m.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 5]);
    assert_eq!(
        store.pending_migrations().await.expect("pending"),
        all,
        "listing changes nothing"
    );
    let seen = std::sync::Mutex::new(Vec::new());
    let applied = store
        .migrate(&|m| seen.lock().unwrap().push(m.version))
        .await
        .expect("migrate");
    assert_eq!((applied, seen.lock().unwrap().clone()), (all, versions));
    assert!(store
        .pending_migrations()
        .await
        .expect("pending")
        .is_empty());
    assert!(store.migrate(&|_| {}).await.expect("migrate").is_empty());
    // Opening (as `serve` does) finds nothing to do either.
    f.open().await.ping().await.expect("ping");

    // Forget the newest migration: it is pending again and applying it reports it once.
    f.exec("DROP TABLE responses; DELETE FROM _sqlx_migrations WHERE version = 5")
        .await;
    let pending = store.pending_migrations().await.expect("pending");
    assert_eq!(
        pending.iter().map(|m| m.version).collect::<Vec<_>>(),
        vec![5]
    );
    let applied = store.migrate(&|_| {}).await.expect("migrate");
    assert_eq!(applied, pending);
    assert!(store
        .pending_migrations()
        .await
        .expect("pending")
        .is_empty());
    store
        .purge_responses(Utc::now())
        .await
        .expect("table is back");
}
