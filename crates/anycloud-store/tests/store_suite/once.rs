//! Exactly-once bookkeeping writes (`*_once`, migration 0018): a spool batch tried again
//! after its commit's acknowledgement was lost — whole, or re-cut into other batches when
//! replayed from the spill file — writes nothing twice, on both backends.

use anycloud_store::spool::{Batch, Stamp};
use anycloud_store::{ChainKeys, ChainStatus};

use crate::fixture::*;

both_backends!(
    retried_batches_write_each_stamped_record_once,
    forgotten_marks_are_gone_and_only_theirs,
);

fn batch<T: Clone>(spool: &'static str, origin: i64, seqs: &[i64], items: &[T]) -> Batch<T> {
    Batch {
        spool,
        items: items.to_vec(),
        stamps: seqs
            .iter()
            .map(|&seq| Some(Stamp { origin, seq }))
            .collect(),
    }
}

async fn retried_batches_write_each_stamped_record_once(f: &Fixture) {
    let store = f.open().await;
    let rows: Vec<_> = (0..5)
        .map(|i| usage(t(NOV_1 + i * 1000), "azure-us", "gpt-4o", "acme", 100))
        .collect();

    // The ledger: the same batch twice, then a replay re-cut to overlap it.
    let first = batch("ledger", 7, &[1, 2, 3], &rows[..3]);
    store.insert_usage_once(&first).await.unwrap();
    store.insert_usage_once(&first).await.unwrap();
    assert_eq!(store.usage_count().await.unwrap(), 3);
    store
        .insert_usage_once(&batch("ledger", 7, &[2, 3, 4, 5], &rows[1..]))
        .await
        .unwrap();
    assert_eq!(store.usage_count().await.unwrap(), 5);
    // Another gateway (origin) with the same sequence numbers is its own history.
    store
        .insert_usage_once(&batch("ledger", 8, &[1], &rows[..1]))
        .await
        .unwrap();
    // Records spilled before stamps existed are written as they were.
    let bare = Batch {
        spool: "ledger",
        items: rows[..1].to_vec(),
        stamps: vec![None],
    };
    store.insert_usage_once(&bare).await.unwrap();
    assert_eq!(store.usage_count().await.unwrap(), 7);

    // The audit chain: a retried batch is not chained again, and the chain verifies.
    let keys = ChainKeys::unkeyed();
    let entries: Vec<_> = (1..=4).map(entry).collect();
    let b = batch("audit", 7, &[1, 2, 3], &entries[..3]);
    assert_eq!(store.append_audit_once(&b, &keys).await.unwrap().len(), 3);
    assert!(store.append_audit_once(&b, &keys).await.unwrap().is_empty());
    let b = batch("audit", 7, &[3, 4], &entries[2..]);
    let chained = store.append_audit_once(&b, &keys).await.unwrap();
    assert_eq!(chained.len(), 1);
    assert_eq!(chained[0].seq, 4);
    assert_eq!(chained[0].entry.request_id.as_deref(), Some("req_4"));
    assert_eq!(
        store.verify_audit(&keys).await.unwrap(),
        ChainStatus::Intact { count: 4 }
    );

    // Budget spend: summed once per record however often the batch is tried.
    let deltas: Vec<(String, String, f64)> = (0..4)
        .map(|i| {
            (
                "tenant:acme".into(),
                "2026-11-01".into(),
                0.25 + f64::from(i),
            )
        })
        .collect();
    let b = batch("spend", 7, &[1, 2, 3], &deltas[..3]);
    store.add_spend_once(&b).await.unwrap();
    store.add_spend_once(&b).await.unwrap();
    store
        .add_spend_once(&batch("spend", 7, &[2, 3, 4], &deltas[1..]))
        .await
        .unwrap();
    let spent = store.spend("tenant:acme", "2026-11-01").await.unwrap();
    assert!(
        (spent - 7.0).abs() < 1e-9,
        "0.25+1.25+2.25+3.25 = 7, got {spent}"
    );
    // (Marks are per spool: origin 7 reached 5 in the ledger first, yet the audit and
    // spend batches of origin 7 starting at 1 were written.)
}

/// `forget_spool_marks` deletes the marks of the origins and spool named, no other: a
/// forgotten origin's batch would be written again (which is why the spool forgets only
/// origins nothing can retry), another origin's or spool's is still skipped.
async fn forgotten_marks_are_gone_and_only_theirs(f: &Fixture) {
    let store = f.open().await;
    let rows: Vec<_> = (0..2)
        .map(|i| usage(t(NOV_1 + i * 1000), "azure-us", "gpt-4o", "acme", 100))
        .collect();
    let a = batch("ledger", 41, &[1], &rows[..1]);
    let b = batch("ledger", 42, &[1], &rows[1..]);
    store.insert_usage_once(&a).await.unwrap();
    store.insert_usage_once(&b).await.unwrap();
    assert_eq!(store.usage_count().await.unwrap(), 2);
    // Another spool's mark for origin 41 is its own.
    let keys = ChainKeys::unkeyed();
    let e = batch("audit", 41, &[1], &[entry(1)]);
    assert_eq!(store.append_audit_once(&e, &keys).await.unwrap().len(), 1);

    store.forget_spool_marks("ledger", &[41]).await.unwrap();
    store.insert_usage_once(&b).await.unwrap();
    assert_eq!(
        store.usage_count().await.unwrap(),
        2,
        "origin 42 keeps its mark"
    );
    assert!(
        store.append_audit_once(&e, &keys).await.unwrap().is_empty(),
        "the audit spool keeps its mark"
    );
    store.insert_usage_once(&a).await.unwrap();
    assert_eq!(
        store.usage_count().await.unwrap(),
        3,
        "origin 41's ledger mark is gone"
    );
}
