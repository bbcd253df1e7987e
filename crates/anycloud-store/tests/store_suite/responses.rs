//! Stored Responses API documents: per tenant, expiry, purge, seen by every instance.

use chrono::{Duration, Utc};

use anycloud_store::StoredResponse;

use crate::fixture::*;

both_backends!(responses_are_per_tenant_expire_and_purge,);

async fn responses_are_per_tenant_expire_and_purge(f: &Fixture) {
    let store = f.open().await;
    let now = Utc::now();
    let doc = |id: &str, tenant: &str, ttl: Duration, body: &[u8]| StoredResponse {
        id: id.into(),
        tenant: tenant.into(),
        created_at: now,
        expires_at: now + ttl,
        key_id: Some("k1".into()),
        body: body.to_vec(),
    };
    store
        .put_response(&doc("resp_a", "t1", Duration::days(1), b"sealed"))
        .await
        .unwrap();
    store
        .put_response(&doc("resp_old", "t1", Duration::seconds(-1), b"x"))
        .await
        .unwrap();
    let got = store
        .get_response("t1", "resp_a", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.body.as_slice(), got.key_id.as_deref()),
        (&b"sealed"[..], Some("k1"))
    );
    // Timestamps read back at millisecond precision on both backends.
    assert_eq!(got.created_at.timestamp_millis(), now.timestamp_millis());
    assert_eq!(got.created_at.timestamp_subsec_nanos() % 1_000_000, 0);
    assert!(
        store
            .get_response("t2", "resp_a", now)
            .await
            .unwrap()
            .is_none(),
        "other tenant"
    );
    assert!(
        store
            .get_response("t1", "resp_old", now)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    // Another tenant can neither overwrite nor delete it.
    store
        .put_response(&doc("resp_a", "t2", Duration::days(1), b"evil"))
        .await
        .unwrap();
    let still = store
        .get_response("t1", "resp_a", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.body, b"sealed");
    assert!(!store.delete_response("t2", "resp_a").await.unwrap());
    assert_eq!(store.purge_responses(now).await.unwrap(), 1);
    // A second instance sees what the first stored (a conversation continues anywhere).
    let other = f.open().await;
    assert!(other
        .get_response("t1", "resp_a", now)
        .await
        .unwrap()
        .is_some());
    assert!(other.delete_response("t1", "resp_a").await.unwrap());
    assert!(store
        .get_response("t1", "resp_a", now)
        .await
        .unwrap()
        .is_none());
}
