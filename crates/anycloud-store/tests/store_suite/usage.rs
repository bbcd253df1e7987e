//! The usage ledger: inserts, per-day summaries, daily cost and record reads.

use chrono::{Duration, NaiveDate};

use crate::fixture::*;

both_backends!(
    usage_reports_sum_per_day_cloud_model_and_tenant,
    served_usage_pages_through_ok_rows_in_time_order,
);

async fn usage_reports_sum_per_day_cloud_model_and_tenant(f: &Fixture) {
    let store = f.open().await;
    // Sub-millisecond parts are dropped on both backends alike.
    let first = t(NOV_1 + 5_000) + Duration::microseconds(999);
    let records = vec![
        usage(first, "azure-us", "gpt-4o", "acme", 1_500),
        usage(t(NOV_1 + 60_000), "azure-us", "gpt-4o", "acme", 2_500),
        usage(t(NOV_1 + 70_000), "aws-eu", "claude", "globex", 7),
        usage(
            t(NOV_1 + DAY + 1),
            "azure-us",
            "gpt-4o",
            "acme",
            1_000_000_000_000,
        ),
        usage(t(NOV_1 + 3 * DAY - 1), "aws-eu", "claude", "acme", 3),
    ];
    store.insert_usage(&records).await.expect("insert");
    store.insert_usage(&[]).await.expect("empty insert");
    assert_eq!(store.usage_count().await.expect("count"), 5);

    let summary = store
        .usage_summary(t(NOV_1), t(NOV_1 + 2 * DAY))
        .await
        .expect("summary");
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).expect("day");
    let rows: Vec<_> = summary
        .iter()
        .map(|r| {
            (
                r.day,
                r.cloud.as_str(),
                r.tenant.as_str(),
                r.requests,
                r.input_tokens,
                r.cost_nanos,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (day(1), "aws-eu", "globex", 1, 100, 7),
            (day(1), "azure-us", "acme", 2, 200, 4_000),
            (day(2), "azure-us", "acme", 1, 100, 1_000_000_000_000),
        ]
    );
    let daily = store
        .daily_cost("aws-eu", None, t(NOV_1 + 10 * DAY))
        .await
        .expect("daily");
    assert_eq!(
        daily
            .iter()
            .map(|d| (d.day, d.cost_nanos))
            .collect::<Vec<_>>(),
        vec![(day(1), 7), (day(3), 3)]
    );
    let from_day_2 = store
        .daily_cost("aws-eu", Some(t(NOV_1 + DAY)), t(NOV_1 + 10 * DAY))
        .await
        .expect("daily");
    assert_eq!(from_day_2.len(), 1);

    // Whole UTC days are read from the daily rollups (migration 0020), other ranges from
    // the ledger's rows: the same records give the same sums either way.
    let scanned = store
        .usage_summary(t(NOV_1), t(NOV_1 + 2 * DAY - 1))
        .await
        .expect("summary");
    assert_eq!(scanned, summary);
    let scanned = store
        .daily_cost("aws-eu", Some(t(NOV_1 + 1)), t(NOV_1 + 10 * DAY))
        .await
        .expect("daily");
    assert_eq!(scanned, daily);
    // A second batch for the same day, cloud, model and tenant adds to its rollup row.
    store
        .insert_usage(&[usage(t(NOV_1 + 80_000), "aws-eu", "claude", "globex", 5)])
        .await
        .expect("insert");
    let again = store
        .usage_summary(t(NOV_1), t(NOV_1 + DAY))
        .await
        .expect("summary");
    assert_eq!((again[0].requests, again[0].cost_nanos), (2, 12));
    assert_eq!(
        again,
        store
            .usage_summary(t(NOV_1), t(NOV_1 + DAY - 1))
            .await
            .expect("summary")
    );

    let read = store
        .usage_records(t(NOV_1), t(NOV_1 + 10 * DAY), 2)
        .await
        .expect("records");
    let mut expected = records[0].clone();
    expected.at = t(NOV_1 + 5_000);
    assert_eq!(read, vec![expected, records[1].clone()]);
}

/// What `anycloud simulate` streams: only served (`ok`) rows, in time then id order, page
/// by page; rows at the same millisecond are neither lost nor repeated across pages; the
/// router's needs and token estimate come back as written, and NULL on rows without them.
async fn served_usage_pages_through_ok_rows_in_time_order(f: &Fixture) {
    let store = f.open().await;
    let mut records = Vec::new();
    for i in 0..7 {
        // Three rows share each millisecond, so page boundaries fall inside ties.
        let mut r = usage(t(NOV_1 + 1_000 * (i / 3)), "azure-us", "gpt-4o", "acme", i);
        r.request_id = format!("req_{i}");
        records.push(r);
    }
    records[1].outcome = "upstream_503".into();
    records[4].needs = None;
    records[4].estimated_tokens = None;
    records.push(usage(t(NOV_1 + 2 * DAY), "aws-eu", "claude", "acme", 99));
    store.insert_usage(&records).await.expect("insert");

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .served_usage(t(NOV_1), t(NOV_1 + DAY), after, 2)
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.0);
        seen.extend(page.into_iter().map(|(_, r)| r));
    }
    let ids: Vec<&str> = seen.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["req_0", "req_2", "req_3", "req_4", "req_5", "req_6"]);
    assert_eq!(
        seen[0].needs,
        Some(vec!["chat".to_string(), "stream".to_string()])
    );
    assert_eq!(seen[0].estimated_tokens, Some(120));
    assert_eq!(seen[3].needs, None);
    assert_eq!(seen[3].estimated_tokens, None);
}
