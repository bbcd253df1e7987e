//! Governance: the audit chain (queries, tampering, two instances appending at once), spend, key policies and captures.

use chrono::Duration;
use serde_json::json;

use anycloud_store::governance::{AuditEntry, AuditQuery, CaptureRecord, ChainStatus};
use anycloud_store::{create_key, ChainKeys, Store};

use crate::fixture::*;

both_backends!(
    audit_chain_appends_queries_and_verifies,
    audit_tampering_is_detected,
    keyed_chain_resists_recomputed_hashes_and_rotates,
    spend_policies_and_captures_round_trip,
    two_instances_appending_at_once_keep_one_chain,
);

fn query(f: impl FnOnce(&mut AuditQuery)) -> AuditQuery {
    let mut q = AuditQuery {
        limit: 100,
        ..Default::default()
    };
    f(&mut q);
    q
}

async fn audit_chain_appends_queries_and_verifies(f: &Fixture) {
    let store = f.open().await;
    assert_eq!(
        store.verify_audit(&ChainKeys::unkeyed()).await.unwrap(),
        ChainStatus::Intact { count: 0 }
    );
    assert!(store
        .append_audit(&[], &ChainKeys::unkeyed())
        .await
        .unwrap()
        .is_empty());
    let mut first = entry(1);
    first.at += Duration::microseconds(123); // hashed at millisecond precision
    first.cost_usd = Some(-0.0); // an empty f64 sum; must verify after a round trip
    let written = store
        .append_audit(&[first, entry(2), entry(3)], &ChainKeys::unkeyed())
        .await
        .unwrap();
    assert_eq!(
        written.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(written[1].prev_hash, written[0].hash);
    let mut extra = entry(4);
    extra.tenant = Some("globex".into());
    extra.action = "admin.key.create".into();
    extra.cloud = None;
    extra.detail = Some(json!({"before": null, "after": {"id": "k9", "n": 1.0}}));
    let more = store
        .append_audit(&[extra], &ChainKeys::unkeyed())
        .await
        .unwrap();
    assert_eq!(
        more[0].prev_hash, written[2].hash,
        "a second batch continues the chain"
    );

    let by_tenant = store
        .query_audit(&query(|q| q.tenant = Some("globex".into())))
        .await
        .unwrap();
    assert_eq!(by_tenant.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4]);
    assert_eq!(by_tenant[0].entry.detail, more[0].entry.detail);
    let by_action = store
        .query_audit(&query(|q| q.action = Some("ai.chat_completions".into())))
        .await
        .unwrap();
    assert_eq!(by_action.len(), 3);
    let by_cloud = store
        .query_audit(&query(|q| q.cloud = Some("azure-us".into())))
        .await
        .unwrap();
    assert_eq!(by_cloud.len(), 3);
    let page = store
        .query_audit(&query(|q| {
            q.after = Some(1);
            q.limit = 2
        }))
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
    let window = store
        .query_audit(&query(|q| {
            q.from = Some(t(NOV_1 + 2_000));
            q.to = Some(t(NOV_1 + 4_000));
        }))
        .await
        .unwrap();
    assert_eq!(window.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(
        store.verify_audit(&ChainKeys::unkeyed()).await.unwrap(),
        ChainStatus::Intact { count: 4 }
    );
}

async fn broken_at(store: &dyn Store) -> (i64, String) {
    match store
        .verify_audit(&ChainKeys::unkeyed())
        .await
        .expect("verify")
    {
        ChainStatus::Broken { seq, problem, .. } => (seq, problem),
        ChainStatus::Intact { count } => panic!("tampering not detected ({count} entries)"),
    }
}

async fn audit_tampering_is_detected(f: &Fixture) {
    let store = f.open().await;
    store
        .append_audit(
            &(1..=5).map(entry).collect::<Vec<_>>(),
            &ChainKeys::unkeyed(),
        )
        .await
        .unwrap();
    let cases = [
        ("UPDATE audit_log SET tenant = 'other' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET cost_usd = 1.0 WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET at = '2027-01-01T00:00:00.000Z' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET route = '[]' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET detail = '{\"x\":1}' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET status = 500 WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET input_tokens = 1 WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET actor = 'admin' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET action = 'admin.key.create' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET hash = 'ab' WHERE seq = 2", 2, ""),
        ("DELETE FROM audit_log WHERE seq = 3", 3, "missing"),
        ("DELETE FROM audit_log WHERE seq = 1", 1, ""),
        ("DELETE FROM audit_log WHERE seq = 5", 5, "missing"),
        (
            "UPDATE audit_log SET seq = -2 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 4;
             UPDATE audit_log SET seq = 4 WHERE seq = -2",
            2,
            "",
        ),
        // Delete entry 3 and shift 4 and 5 down, head included: the hashes cover `seq`.
        (
            "DELETE FROM audit_log WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4;
             UPDATE audit_log SET seq = 4 WHERE seq = 5; UPDATE audit_head SET seq = 4",
            3,
            "",
        ),
        // Rows added past the recorded head.
        (
            "INSERT INTO audit_log SELECT seq + 5, at, actor, tenant, action, model, cloud,
                 request_id, status, latency_ms, input_tokens, output_tokens, cost_usd, route,
                 detail, prev_hash, hash FROM audit_log WHERE seq = 5",
            6,
            "",
        ),
    ];
    let mut cases = cases.to_vec();
    if f.url.starts_with("sqlite") {
        // A field that no longer parses still names its entry (PostgreSQL's typed
        // columns refuse such a value at the UPDATE).
        cases.push((
            "UPDATE audit_log SET at = 'not a time' WHERE seq = 3",
            3,
            "altered",
        ));
        cases.push((
            "UPDATE audit_log SET route = '{not json' WHERE seq = 4",
            4,
            "altered",
        ));
    }
    for (sql, seq, word) in cases {
        // Each case on a pristine copy of the chain: tamper, check, restore.
        f.exec(
            "CREATE TABLE audit_backup AS SELECT * FROM audit_log;
             CREATE TABLE head_backup AS SELECT * FROM audit_head",
        )
        .await;
        f.exec(sql).await;
        let (at, problem) = broken_at(store.as_ref()).await;
        assert_eq!(at, seq, "{sql}: {problem}");
        assert!(problem.contains(word), "{sql}: {problem}");
        f.exec(
            "DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_backup;
             DELETE FROM audit_head; INSERT INTO audit_head SELECT * FROM head_backup;
             DROP TABLE audit_backup; DROP TABLE head_backup",
        )
        .await;
        assert_eq!(
            store.verify_audit(&ChainKeys::unkeyed()).await.unwrap(),
            ChainStatus::Intact { count: 5 }
        );
    }
}

async fn spend_policies_and_captures_round_trip(f: &Fixture) {
    let store = f.with_tenants().await;
    store
        .add_spend(&[
            ("tenant:acme".into(), "2026-11-01".into(), 1.25),
            ("key:k1".into(), "total".into(), 0.5),
        ])
        .await
        .unwrap();
    store
        .add_spend(&[("tenant:acme".into(), "2026-11-01".into(), 0.75)])
        .await
        .unwrap();
    assert_eq!(store.spend("tenant:acme", "2026-11-01").await.unwrap(), 2.0);
    assert_eq!(store.spend("tenant:acme", "2026-12-01").await.unwrap(), 0.0);

    let (key, _) = create_key(store.as_ref(), "acme", None).await.unwrap();
    assert_eq!(store.key_policy(&key.id).await.unwrap(), None);
    let policy = json!({"budget": {"usd": 10.5, "period": "monthly"}, "rpm": 60});
    store.set_key_policy(&key.id, &policy).await.unwrap();
    store.set_key_policy(&key.id, &policy).await.unwrap();
    assert_eq!(store.key_policy(&key.id).await.unwrap(), Some(policy));

    let capture = CaptureRecord {
        request_id: "req_1".into(),
        at: t(NOV_1),
        tenant: "acme".into(),
        key_id: "2026-11".into(),
        nonce: vec![0, 1, 2, 255],
        ciphertext: vec![9; 64],
    };
    store.insert_capture(&capture).await.unwrap();
    assert_eq!(store.capture("req_1").await.unwrap(), Some(capture));
    assert_eq!(store.capture("req_2").await.unwrap(), None);
}

async fn two_instances_appending_at_once_keep_one_chain(f: &Fixture) {
    // Two stores with pools of their own, as two gateway instances would have.
    let instances = [f.open().await, f.open().await];
    const TASKS_PER_INSTANCE: i64 = 8;
    const APPENDS_PER_TASK: i64 = 12;
    let mut tasks = Vec::new();
    for (n, store) in instances.iter().enumerate() {
        for task in 0..TASKS_PER_INSTANCE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut written = Vec::new();
                for i in 0..APPENDS_PER_TASK {
                    // Batches of one to three entries.
                    let batch: Vec<AuditEntry> = (0..=(i % 3))
                        .map(|j| {
                            let mut e = entry(i);
                            e.actor = format!("instance:{n}:task:{task}:{i}:{j}");
                            e
                        })
                        .collect();
                    written.extend(
                        store
                            .append_audit(&batch, &ChainKeys::unkeyed())
                            .await
                            .expect("append"),
                    );
                }
                written
            }));
        }
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.expect("task").into_iter().map(|r| r.seq));
    }
    let per_task: i64 = (0..APPENDS_PER_TASK).map(|i| i % 3 + 1).sum();
    let total = 2 * TASKS_PER_INSTANCE * per_task;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "one gapless order");
    for store in &instances {
        assert_eq!(
            store
                .verify_audit(&ChainKeys::unkeyed())
                .await
                .expect("verify"),
            ChainStatus::Intact { count: total }
        );
    }
}

fn keys(id: &str, byte: u8) -> ChainKeys {
    ChainKeys::new((id.into(), vec![byte; 32]), vec![])
}

/// Rewrites entry `seq` and recomputes every hash from it on, as someone with database
/// access but without the key would (plain SHA-256, or HMAC under a guessed key).
async fn rewrite_from(store: &dyn Store, f: &Fixture, seq: i64, with: &ChainKeys) {
    let head = store.audit_head().await.unwrap().unwrap().0;
    let mut prev = match seq {
        1 => anycloud_store::governance::GENESIS_HASH.to_string(),
        s => store.audit_entry(s - 1).await.unwrap().unwrap().hash,
    };
    for s in seq..=head {
        let mut r = store.audit_entry(s).await.unwrap().unwrap();
        if s == seq {
            r.entry.tenant = Some("rewritten".into());
        }
        let hash = with.hash(&prev, s, &r.entry);
        f.exec(&format!(
            "UPDATE audit_log SET tenant = '{}', prev_hash = '{prev}', hash = '{hash}' WHERE seq = {s}",
            r.entry.tenant.unwrap_or_default()
        ))
        .await;
        prev = hash;
    }
    f.exec(&format!("UPDATE audit_head SET hash = '{prev}'"))
        .await;
}

async fn keyed_chain_resists_recomputed_hashes_and_rotates(f: &Fixture) {
    let store = f.open().await;
    // Two entries from before a key was set, three under key a1, two under a2 (rotated).
    store
        .append_audit(&[entry(1), entry(2)], &ChainKeys::unkeyed())
        .await
        .unwrap();
    let a1 = keys("a1", 1);
    store
        .append_audit(&[entry(3), entry(4), entry(5)], &a1)
        .await
        .unwrap();
    let a2 = ChainKeys::new(("a2".into(), vec![2; 32]), vec![("a1".into(), vec![1; 32])]);
    let written = store
        .append_audit(&[entry(6), entry(7)], &a2)
        .await
        .unwrap();
    assert!(written[0].hash.starts_with("a2:"), "{}", written[0].hash);
    assert_eq!(
        store.verify_audit(&a2).await.unwrap(),
        ChainStatus::Intact { count: 7 }
    );
    // Without the retired key the older entries cannot be checked.
    match store.verify_audit(&keys("a2", 2)).await.unwrap() {
        ChainStatus::Broken { seq, problem, .. } => {
            assert_eq!(seq, 3);
            assert!(problem.contains("`a1`"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
    f.exec(
        "CREATE TABLE audit_backup AS SELECT * FROM audit_log;
         CREATE TABLE head_backup AS SELECT * FROM audit_head",
    )
    .await;
    for (seq, forger) in [
        (4, ChainKeys::unkeyed()),
        (6, keys("a2", 9)),
        (3, keys("a1", 9)),
    ] {
        rewrite_from(store.as_ref(), f, seq, &forger).await;
        match store.verify_audit(&a2).await.unwrap() {
            ChainStatus::Broken {
                seq: at, problem, ..
            } => {
                assert_eq!(at, seq.max(3), "{problem}");
                assert!(problem.contains("altered"), "{problem}");
            }
            other => panic!("rewrite from {seq} not detected: {other:?}"),
        }
        f.exec(
            "DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_backup;
             DELETE FROM audit_head; INSERT INTO audit_head SELECT * FROM head_backup",
        )
        .await;
    }
    assert_eq!(
        store.verify_audit(&a2).await.unwrap(),
        ChainStatus::Intact { count: 7 }
    );
}
