//! Migrations: listed, applied in order and once, on both backends.

use anycloud_store::open_unmigrated;

use crate::fixture::*;

both_backends!(migrations_are_listed_applied_once_and_idempotent,);

async fn migrations_are_listed_applied_once_and_idempotent(f: &Fixture) {
    // A fresh database: every migration is pending, and applied in order, once.
    let store = open_unmigrated(&f.url).await.expect("open");
    let all = store.pending_migrations().await.expect("pending");
    let versions: Vec<i64> = all.iter().map(|m| m.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 5, 15, 17, 18, 20]);
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

    // Ledger rows written before the newest migration (0020, the daily rollups) existed.
    let rows = vec![
        usage(t(NOV_1 + 5_000), "azure-us", "gpt-4o", "acme", 1_500),
        usage(t(NOV_1 + 60_000), "azure-us", "gpt-4o", "acme", 2_500),
        usage(t(NOV_1 + DAY + 1), "aws-eu", "claude", "acme", 7),
    ];
    f.open().await.insert_usage(&rows).await.expect("insert");
    let scanned = store
        .usage_summary(t(NOV_1), t(NOV_1 + 2 * DAY - 1))
        .await
        .expect("summary over a partial day scans the ledger");

    // Forget the newest migration: it is pending again and applying it reports it once.
    f.exec("DROP TABLE usage_daily; DELETE FROM _sqlx_migrations WHERE version = 20")
        .await;
    let pending = store.pending_migrations().await.expect("pending");
    assert_eq!(
        pending.iter().map(|m| m.version).collect::<Vec<_>>(),
        vec![20]
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
        3
    );
    // It backfilled the rollups from the rows already there: whole days read the same sums.
    let rolled = store
        .usage_summary(t(NOV_1), t(NOV_1 + 2 * DAY))
        .await
        .expect("summary over whole days");
    assert_eq!(rolled, scanned);
    assert_eq!(rolled.len(), 2);
    assert_eq!(
        store
            .daily_cost("azure-us", None, t(NOV_1 + 2 * DAY))
            .await
            .expect("daily")
            .iter()
            .map(|d| d.cost_nanos)
            .collect::<Vec<_>>(),
        vec![4_000]
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
        vec![1, 2, 3, 5, 15, 17, 18, 20],
        "each migration applied by exactly one instance"
    );
}
