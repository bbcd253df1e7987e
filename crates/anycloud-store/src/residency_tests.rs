#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;
use std::sync::Mutex;

async fn memory() -> Arc<dyn Store> {
    crate::open("sqlite::memory:").await.unwrap()
}

fn response(tenant: &str, id: &str, expires_in_days: i64) -> StoredResponse {
    let now = Utc::now();
    StoredResponse {
        id: id.into(),
        tenant: tenant.into(),
        created_at: now,
        expires_at: now + chrono::Duration::days(expires_in_days),
        key_id: None,
        body: format!("prompt of {tenant}").into_bytes(),
    }
}

fn capture(tenant: &str, id: &str) -> CaptureRecord {
    CaptureRecord {
        request_id: id.into(),
        at: Utc::now(),
        tenant: tenant.into(),
        key_id: "k1".into(),
        nonce: vec![0; 12],
        ciphertext: vec![1, 2, 3],
    }
}

#[tokio::test]
async fn content_goes_to_the_tenants_jurisdiction_and_nothing_else_moves() {
    let (main, eu, us) = (memory().await, memory().await, memory().await);
    let stores = BTreeMap::from([("eu".to_owned(), eu.clone()), ("us".to_owned(), us.clone())]);
    let r = ResidentStore::new(main.clone(), stores);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    r.residency()
        .unwrap()
        .on_write(Arc::new(move |w: &ContentWrite| {
            let j = w.jurisdiction.clone().unwrap_or_else(|| "none".into());
            sink.lock().unwrap().push((w.tenant.clone(), j, w.kind));
        }));
    r.sync_tenants(&[
        TenantRecord {
            name: "emea".into(),
            policy: json!({"jurisdictions": ["eu"]}),
        },
        TenantRecord {
            name: "amer".into(),
            policy: json!({"jurisdictions": ["eu", "us"], "data_jurisdiction": "us"}),
        },
        TenantRecord {
            name: "nowhere".into(),
            policy: json!({"jurisdictions": null}),
        },
    ])
    .await
    .unwrap();

    r.put_response(&response("emea", "resp_e", 1))
        .await
        .unwrap();
    r.put_response(&response("amer", "resp_a", 1))
        .await
        .unwrap();
    r.insert_capture(&capture("emea", "req_e")).await.unwrap();
    r.insert_capture(&capture("amer", "req_a")).await.unwrap();
    assert!(matches!(
        r.put_response(&response("nowhere", "resp_n", 1)).await,
        Err(StoreError::NoContentStore { .. })
    ));
    // Dropped, not queued for ever nor stored elsewhere.
    r.insert_capture(&capture("nowhere", "req_n"))
        .await
        .unwrap();
    assert!(r.capture("req_n").await.unwrap().is_none());

    let rows = |s: Arc<dyn Store>| async move { tenant_rows(s.as_ref()).await.unwrap() };
    assert_eq!(
        rows(eu.clone()).await,
        BTreeMap::from([("emea".into(), (1, 1))])
    );
    assert_eq!(
        rows(us.clone()).await,
        BTreeMap::from([("amer".into(), (1, 1))])
    );
    assert!(rows(main.clone()).await.is_empty());
    // Tenants (metadata) are in the main store only.
    assert_eq!(main.list_tenants().await.unwrap().len(), 3);
    assert!(eu.list_tenants().await.unwrap().is_empty());

    // Reads and deletes follow the tenant; another tenant's id reads as absent.
    let now = Utc::now();
    assert!(r
        .get_response("emea", "resp_e", now)
        .await
        .unwrap()
        .is_some());
    assert!(r
        .get_response("amer", "resp_e", now)
        .await
        .unwrap()
        .is_none());
    assert_eq!(r.capture("req_a").await.unwrap().unwrap().tenant, "amer");
    assert!(r.delete_response("emea", "resp_e").await.unwrap());
    assert!(eu
        .get_response("emea", "resp_e", now)
        .await
        .unwrap()
        .is_none());

    // Retention purges every content store.
    r.put_response(&response("amer", "resp_old", -1))
        .await
        .unwrap();
    assert_eq!(r.purge_responses(now).await.unwrap(), 1);
    assert_eq!(rows(us).await, BTreeMap::from([("amer".into(), (1, 1))]));

    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .map(|(t, j, _)| format!("{t}>{j}"))
            .collect::<Vec<_>>(),
        [
            "emea>eu",
            "amer>us",
            "emea>eu",
            "amer>us",
            "nowhere>none",
            "nowhere>none",
            "amer>us"
        ]
    );
}

#[tokio::test]
async fn a_tenant_reloaded_from_the_store_is_routed() {
    let (main, eu) = (memory().await, memory().await);
    main.sync_tenants(&[TenantRecord {
        name: "late".into(),
        policy: json!({"data_jurisdiction": "eu"}),
    }])
    .await
    .unwrap();
    let r = ResidentStore::new(main, BTreeMap::from([("eu".to_owned(), eu)]));
    assert_eq!(r.residency().unwrap().placement("late"), None);
    r.list_tenants().await.unwrap();
    assert_eq!(
        r.residency().unwrap().placement("late").as_deref(),
        Some("eu")
    );
}
