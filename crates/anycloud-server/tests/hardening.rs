//! Issue #14's defects, each as a user (or an attacker) would meet it over HTTP: no way
//! into the admin API, the dashboard or `/metrics` without the token, and a per-address
//! limit on failed attempts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{start, start_with, Options, ADMIN_TOKEN};
use reqwest::{redirect, StatusCode};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_empty_admin_token_in_the_config_opens_nothing() {
    // Validation refuses it at start; a config built in code still must not open up.
    let gw = start_with(Options {
        adjust: Some(|c| c.server.admin_token = Some(secrecy::SecretString::from(""))),
        ..Options::default()
    })
    .await;
    for form in [vec![("token", "")], vec![]] {
        let r = client()
            .post(format!("{}/ui/login", gw.url))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{form:?}");
        assert!(r.headers().get("set-cookie").is_none());
    }
    for auth in ["Bearer ", "Bearer", "bearer  "] {
        let r = client()
            .get(format!("{}/admin/v1/tenants", gw.url))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
    }
}

#[tokio::test]
async fn ten_failed_admin_attempts_from_one_address_get_a_429_even_with_the_right_token() {
    let gw = start().await;
    let admin = |token: &'static str| {
        client()
            .get(format!("{}/admin/v1/tenants", gw.url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(admin(ADMIN_TOKEN).await.unwrap().status(), StatusCode::OK);
    for _ in 0..10 {
        let r = admin("not-the-admin-token").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = admin(ADMIN_TOKEN).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = common::header(&r, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_failed_attempts");
    // The dashboard login shares the limit.
    let r = client()
        .post(format!("{}/ui/login", gw.url))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Client traffic is not affected.
    assert_eq!(
        gw.chat(common::hello("gpt-4o")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_need_the_metrics_or_admin_token_except_on_the_internal_listener() {
    let gw = start_with(Options {
        adjust: Some(|c| {
            c.server.metrics_token = Some(secrecy::SecretString::from("metrics-token-0123456789"))
        }),
        ..Options::default()
    })
    .await;
    assert_eq!(
        gw.chat(common::hello("gpt-4o")).await.status(),
        StatusCode::OK
    );
    let metrics = |token: Option<String>| {
        let mut rb = client().get(format!("{}/metrics", gw.url));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send()
    };
    for refused in [
        None,
        Some(gw.key.clone()),
        Some("metrics-token-012345678".into()),
    ] {
        let r = metrics(refused.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{refused:?}");
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("tenant=\"team\""),
            "no tenant data in a refusal"
        );
    }
    for ok in ["metrics-token-0123456789", ADMIN_TOKEN] {
        let r = metrics(Some(ok.into())).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("anycloud_requests_total"));
    }
    // The internal listener (`server.metrics_listen`) serves it without a token, and
    // nothing else.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let internal = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(anycloud_server::serve_metrics(
        listener,
        gw.state.clone(),
        async move {
            let _ = rx.await;
        },
    ));
    let r = client()
        .get(format!("{internal}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("anycloud_requests_total"));
    let r = client()
        .get(format!("{internal}/admin/v1/tenants"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    drop(tx);
}

#[tokio::test]
async fn metrics_without_any_token_configured_are_refused_on_the_main_listener() {
    let gw = start_with(Options {
        adjust: Some(|c| c.server.admin_token = None),
        ..Options::default()
    })
    .await;
    let r = client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "metrics_disabled");
}
