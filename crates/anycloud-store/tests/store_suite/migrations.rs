//! Migrations: listed, applied in order and once, on both backends.

use anycloud_store::open_unmigrated;

use crate::fixture::*;

both_backends!(migrations_are_listed_applied_once_and_idempotent,);

async fn migrations_are_listed_applied_once_and_idempotent(f: &Fixture) {
    // A fresh database: every migration is pending, and applied in order, once.
    let store = open_unmigrated(&f.url).await.expect("open");
    let all = store.pending_migrations().await.expect("pending");
    let versions: Vec<i64> = all.iter().map(|m| m.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 5, 15, 17, 18]);
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
    f.exec("DROP TABLE spool_marks; DELETE FROM _sqlx_migrations WHERE version = 18")
        .await;
    let pending = store.pending_migrations().await.expect("pending");
    assert_eq!(
        pending.iter().map(|m| m.version).collect::<Vec<_>>(),
        vec![18]
    );
    let applied = store.migrate(&|_| {}).await.expect("migrate");
    assert_eq!(applied, pending);
    assert!(store
        .pending_migrations()
        .await
        .expect("pending")
        .is_empty());
    assert_eq!(
        store
            .usage_count()
            .await
            .expect("the store works after re-applying it"),
        0
    );
}

/// PostgreSQL only: several instances share one database and may start at the same moment.
/// (An SQLite file has one gateway.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_instances_migrating_at_once_apply_each_migration_once() {
    let Some(f) = Fixture::postgres().await else {
        return;
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = f.url.clone();
        tasks.push(tokio::spawn(async move {
            let store = open_unmigrated(&url).await.expect("open");
            store.migrate(&|_| {}).await.expect("migrate at once")
        }));
    }
    let mut applied = Vec::new();
    for task in tasks {
        applied.extend(task.await.expect("task").into_iter().map(|m| m.version));
    }
    applied.sort_unstable();
    assert_eq!(
        applied,
        vec![1, 2, 3, 5, 15, 17, 18],
        "each migration applied by exactly one instance"
    );
}
