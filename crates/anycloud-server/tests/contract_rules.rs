//! The two contract rules of README "Routing" through the HTTP API, over the
//! emulators: ship-first is satisfied once the primary's deployment has
//! started (an expired primary window skips the primary and lets the others
//! serve), and a model the primary declined never goes to the primary even
//! when it has a deployment (`declined_by_primary` in `x-anycloud-route`,
//! the admin explain and `/metrics`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{error_of, header, hello, start_with, Options, ADMIN_TOKEN};

/// Primary `azure-us` with ship-first; it declined `gpt-4o` (and still has a
/// deployment of it); its licence for `licensed` ended in 2020, and
/// `upcoming` starts on it only in 2099.
const AGREEMENTS: &str = r#"
[agreements.primary]
cloud = "azure-us"
ship_first = true
declined_models = ["gpt-4o"]

[[models]]
name = "licensed"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
valid_from = "2019-01-01"
valid_until = "2020-12-31"
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"

[[models]]
name = "upcoming"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
valid_from = "2099-01-01"
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"
"#;

async fn gateway() -> common::Gateway {
    start_with(Options {
        routing: AGREEMENTS.to_string(),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_declined_model_skips_the_primary_everywhere_it_is_reported() {
    let gw = gateway().await;
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-anycloud-cloud"), "local-openai");
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:declined(declined_by_primary) local-openai:ok"
    );
    assert_eq!(gw.azure.request_count(), 0, "the primary was not asked");

    let ex: serde_json::Value = gw
        .http
        .get(format!(
            "{}/admin/v1/route/explain?model=gpt-4o&tenant=team",
            gw.url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ex["declined"][0]["cloud"], "azure-us");
    assert_eq!(ex["declined"][0]["reason"], "declined_by_primary");
    assert_eq!(
        ex["route_header"],
        "azure-us:declined(declined_by_primary) local-openai:ok"
    );

    let metrics = gw
        .http
        .get(format!("{}/metrics", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("anycloud_route_declines_total{")
                && l.contains("cloud=\"azure-us\"")
                && l.contains("reason=\"declined_by_primary\"")
        })
        .unwrap_or_else(|| panic!("no declined_by_primary counter in\n{metrics}"));
    assert!(line.ends_with(" 1"), "{line}");
}

#[tokio::test]
async fn an_expired_primary_window_lets_the_others_serve() {
    let gw = gateway().await;
    // Shipped by the primary in 2019, its window ended in 2020: the others serve.
    let r = gw.chat(hello("licensed")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:declined(outside_window) local-openai:ok"
    );
    // Not yet started on the primary: held back by ship-first, 403.
    let r = gw.chat(hello("upcoming")).await;
    let route = header(&r, "x-anycloud-route").to_string();
    error_of(r, 403).await;
    assert_eq!(
        route,
        "azure-us:declined(outside_window) local-openai:declined(ship_first)"
    );
    assert_eq!(gw.azure.request_count(), 0);
}
