//! The `azure_openai` provider against the Azure emulator: classic URLs,
//! api-key and Entra ID auth, filter chunks, the content-filter 400.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle, EntraConfig};
use anycloud_providers::{build_provider, CallCtx, Provider, ProviderErrorKind};
use anycloud_types::{EmbeddingInput, EmbeddingsRequest, FinishReason, ProviderKind, StreamEvent};
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const DEPLOYMENT: &str = "gpt4o-prod";
const KEY: &str = "azure-key-abc";
const API_VERSION: &str = "2024-10-21";

fn entra() -> EntraConfig {
    EntraConfig {
        tenant_id: "tenant-1".into(),
        client_id: "client-1".into(),
        client_secret: "s3cret".into(),
    }
}

async fn emulator() -> EmulatorHandle {
    let cfg = EmulatorConfig::azure("azure-eu", KEY, vec![DEPLOYMENT.into(), "embed".into()])
        .with_entra(entra());
    spawn_on_port(cfg, 0).await.unwrap()
}

fn with_key(h: &EmulatorHandle) -> Arc<dyn Provider> {
    build_provider(&cloud(json!({"name": "az", "provider": "azure_openai",
        "base_url": h.base_url(), "api_key": KEY, "api_version": API_VERSION})))
    .unwrap()
}

fn with_entra(h: &EmulatorHandle, secret: &str) -> Arc<dyn Provider> {
    build_provider(&cloud(json!({"name": "az", "provider": "azure_openai",
        "base_url": h.base_url(), "api_version": API_VERSION,
        "tenant_id": "tenant-1", "client_id": "client-1", "client_secret": secret,
        "authority_host": h.base_url()})))
    .unwrap()
}

fn ctx() -> CallCtx {
    CallCtx {
        request_id: "req-az".into(),
        traceparent: None,
    }
}

#[tokio::test]
async fn api_key_chat_uses_the_classic_url() {
    let h = emulator().await;
    let p = with_key(&h);
    assert_eq!(p.kind(), ProviderKind::AzureOpenai);
    let mut req = chat(vec![user("hello azure")]);
    req.params.max_tokens = Some(64);
    let r = p.chat(DEPLOYMENT, &req, &ctx()).await.unwrap();
    let text = r.text().unwrap();
    assert!(text.starts_with("Hello from azure-eu ("), "{text}");
    assert!(text.ends_with("You said: hello azure"), "{text}");
    assert_eq!(r.finish_reason, FinishReason::Stop);

    let rec = &h.requests()[0];
    assert_eq!(
        rec.path,
        format!("/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={API_VERSION}")
    );
    assert_eq!(rec.header("api-key"), Some(KEY));
    assert!(rec.header("authorization").is_none());
    assert_eq!(rec.header("x-client-request-id"), Some("req-az"));
    assert_eq!(rec.body["max_completion_tokens"], 64);
    assert!(rec.body.get("max_tokens").is_none());
}

#[tokio::test]
async fn stream_skips_the_filter_chunk_and_reports_usage() {
    let h = emulator().await;
    let p = with_key(&h);
    let (events, err) = drain(
        p.chat_stream(DEPLOYMENT, &chat(vec![user("s")]), &ctx())
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none(), "{err:?}");
    // Azure's first chunk has id "": Start must come from the first real chunk.
    let StreamEvent::Start { id, .. } = &events[0] else {
        panic!("{events:?}");
    };
    assert!(!id.is_empty());
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Start { .. }))
            .count(),
        1
    );
    assert!(streamed_text(&events).ends_with("You said: s"));
    assert!(events.contains(&StreamEvent::Finish {
        reason: FinishReason::Stop
    }));
    assert!(matches!(events.last(), Some(StreamEvent::Usage(u)) if u.input_tokens > 0));
    let body = &h.requests()[0].body;
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["model"], DEPLOYMENT);
}

#[tokio::test]
async fn entra_token_is_fetched_once_and_reused() {
    let h = emulator().await;
    let p = with_entra(&h, "s3cret");
    let r1 = p
        .chat(DEPLOYMENT, &chat(vec![user("one")]), &ctx())
        .await
        .unwrap();
    let r2 = p
        .chat(DEPLOYMENT, &chat(vec![user("two")]), &ctx())
        .await
        .unwrap();
    assert!(r1.text().unwrap().ends_with("one"));
    assert!(r2.text().unwrap().ends_with("two"));
    // Concurrent callers share the cached token too.
    let (req, cx) = (chat(vec![user("c")]), ctx());
    let calls = (0..4).map(|_| p.chat(DEPLOYMENT, &req, &cx));
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }

    let rec = h.requests();
    assert_eq!(
        rec.len(),
        6,
        "token requests are not recorded, model calls are"
    );
    let auth: Vec<&str> = rec
        .iter()
        .map(|r| r.header("authorization").unwrap())
        .collect();
    assert!(
        auth[0].starts_with("Bearer ") && auth[0].len() > 40,
        "{}",
        auth[0]
    );
    // The emulator mints a fresh random token per token request, so one token
    // across all calls means one token request.
    assert!(auth.iter().all(|a| *a == auth[0]), "{auth:?}");
    assert!(rec.iter().all(|r| r.header("api-key").is_none()));
    assert!(!auth[0].contains("s3cret"));
}

#[tokio::test]
async fn entra_with_a_wrong_secret_fails_over_without_leaking_it() {
    let h = emulator().await;
    let p = with_entra(&h, "wrong-secret");
    let e = p
        .chat(DEPLOYMENT, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Upstream, "{e:?}");
    assert!(e.is_retryable());
    assert!(
        e.message.starts_with("Entra ID token request failed"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("wrong-secret"));
    assert!(h.requests().is_empty(), "no model call without a token");
}

#[tokio::test]
async fn static_ad_token_is_sent_as_bearer() {
    let h = emulator().await;
    let p = build_provider(&cloud(json!({"name": "az", "provider": "azure_openai",
        "base_url": h.base_url(), "api_version": API_VERSION, "azure_ad_token": "not-issued"})))
    .unwrap();
    let e = p
        .chat(DEPLOYMENT, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(401));
    assert_eq!(
        h.requests()[0].header("authorization"),
        Some("Bearer not-issued")
    );
}

#[tokio::test]
async fn prompt_content_filter_is_an_invalid_request_with_the_cloud_error() {
    let h = emulator().await;
    let p = with_key(&h);
    let e = p
        .chat(
            DEPLOYMENT,
            &chat(vec![user("please trigger-content-filter now")]),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
    assert_eq!(e.status, Some(400));
    assert!(!e.is_retryable());
    let body = e.client_body.expect("the cloud's error for the client");
    assert_eq!(body["error"]["code"], "content_filter");
    assert_eq!(
        body["error"]["innererror"]["code"],
        "ResponsibleAIPolicyViolation"
    );
    assert!(body["error"]["innererror"]["content_filter_result"].is_object());

    // Streams are rejected before the first byte the same way.
    let e = p
        .chat_stream(
            DEPLOYMENT,
            &chat(vec![user("trigger-content-filter")]),
            &ctx(),
        )
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
    assert!(e.client_body.is_some());
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let h = emulator().await;
    let p = with_key(&h);
    h.faults().fail_next(1, 429, Some(6));
    let e = p
        .chat(DEPLOYMENT, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.status), (ProviderErrorKind::Upstream, Some(429)));
    assert_eq!(e.retry_after, Some(Duration::from_secs(6)));
    assert!(e.is_retryable());
}

#[tokio::test]
async fn unknown_deployment_is_404() {
    let h = emulator().await;
    let e = with_key(&h)
        .chat("nope", &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.status), (ProviderErrorKind::Upstream, Some(404)));
}

#[tokio::test]
async fn embeddings() {
    let h = emulator().await;
    let p = with_key(&h);
    let req = EmbeddingsRequest {
        model: "public".into(),
        inputs: vec![EmbeddingInput::Text("a".into())],
        dimensions: None,
        user: None,
    };
    let r = p.embed("embed", &req, &ctx()).await.unwrap();
    assert_eq!(r.vectors.len(), 1);
    assert!(!r.vectors[0].is_empty());
    assert!(r.vectors[0].iter().all(|x| x.is_finite()));
    let rec = &h.requests()[0];
    assert_eq!(
        rec.path,
        format!("/openai/deployments/embed/embeddings?api-version={API_VERSION}")
    );
    assert_eq!(rec.body["encoding_format"], "base64");
}
