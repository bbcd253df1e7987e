//! Keys and tenants: creation, authentication, revocation, listing, refusals.

use secrecy::ExposeSecret;
use serde_json::json;

use anycloud_store::{authenticate, create_key, keys, StoreError};

use crate::fixture::*;

both_backends!(
    created_key_authenticates_and_revocation_sticks,
    keys_list_by_tenant_and_refuse_bad_inserts,
    sync_tenants_upserts,
);

async fn created_key_authenticates_and_revocation_sticks(f: &Fixture) {
    let store = f.with_tenants().await;
    let (record, key) = create_key(store.as_ref(), "acme", Some("ci"))
        .await
        .expect("create");
    assert_eq!(record.key_prefix, format!("sk-ac-{}", record.id));
    let found = authenticate(store.as_ref(), key.expose_secret())
        .await
        .expect("auth");
    assert_eq!(found, Some(record.clone()));

    // Same id, one character of the secret changed.
    let clear = key.expose_secret();
    let last = clear.chars().last().expect("non-empty");
    let forged = format!(
        "{}{}",
        &clear[..clear.len() - 1],
        if last == 'a' { 'b' } else { 'a' }
    );
    assert_eq!(
        authenticate(store.as_ref(), &forged).await.expect("auth"),
        None
    );

    let revoked = store
        .revoke_key(&record.id)
        .await
        .expect("revoke")
        .expect("exists");
    let at = revoked.revoked_at.expect("revoked_at");
    assert!(at >= record.created_at);
    let again = store
        .revoke_key(&record.id)
        .await
        .expect("revoke")
        .expect("exists");
    assert_eq!(
        again.revoked_at,
        Some(at),
        "the first revocation time stays"
    );
    assert_eq!(
        authenticate(store.as_ref(), key.expose_secret())
            .await
            .expect("auth"),
        None
    );
    assert_eq!(
        store.revoke_key("nosuchkey000").await.expect("revoke"),
        None
    );
    // Another instance reads the same key, revoked.
    let other = f.open().await;
    assert_eq!(other.key_by_id(&record.id).await.expect("get"), Some(again));
}

async fn keys_list_by_tenant_and_refuse_bad_inserts(f: &Fixture) {
    let store = f.with_tenants().await;
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
    let mut acme: Vec<String> = store
        .list_keys(Some("acme"))
        .await
        .expect("list")
        .into_iter()
        .map(|k| k.id)
        .collect();
    acme.sort();
    let mut expected = vec![a1.id.clone(), a2.id.clone()];
    expected.sort();
    assert_eq!(acme, expected, "revoked keys are listed too");
    let globex = store.list_keys(Some("globex")).await.expect("list");
    assert_eq!(
        globex.iter().map(|k| &k.id).collect::<Vec<_>>(),
        vec![&g1.id]
    );
    assert_eq!(store.list_keys(None).await.expect("list").len(), 3);
    assert!(store
        .list_keys(Some("nobody"))
        .await
        .expect("list")
        .is_empty());

    let err = create_key(store.as_ref(), "initech", None)
        .await
        .expect_err("unknown tenant");
    assert!(
        matches!(err, StoreError::UnknownTenant { ref tenant } if tenant == "initech"),
        "{err:?}"
    );
    assert_eq!(err.kind(), "unknown_tenant");
    let dup = anycloud_store::NewKey {
        id: a1.id.clone(),
        tenant: "acme".into(),
        name: None,
        key_hash: keys::generate().hash,
        key_prefix: a1.key_prefix.clone(),
    };
    let err = store.insert_key(&dup).await.expect_err("duplicate id");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

async fn sync_tenants_upserts(f: &Fixture) {
    let store = f.with_tenants().await;
    store
        .sync_tenants(&[
            tenant("acme", json!({"models": ["gpt-4o"], "budget_usd": 100})),
            tenant("initech", json!({"clouds": ["aws-eu"]})),
        ])
        .await
        .expect("sync");
    assert_eq!(
        store.list_tenants().await.expect("list"),
        vec![
            tenant("acme", json!({"models": ["gpt-4o"], "budget_usd": 100})),
            tenant("globex", json!({})),
            tenant("initech", json!({"clouds": ["aws-eu"]})),
        ]
    );
    store.sync_tenants(&[]).await.expect("empty sync");
    assert_eq!(store.list_tenants().await.expect("list").len(), 3);
}
