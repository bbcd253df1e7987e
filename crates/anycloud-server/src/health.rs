//! Liveness, readiness and the Prometheus endpoint.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::sync::Arc;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the config is loaded (it is, or we would not be serving) and the gateway can
/// record what it serves. With Redis, `redis` says whether it answers and which mode each
/// feature is in; an unreachable Redis does not make the instance unready (it keeps
/// serving with its fallbacks, see `cluster::link`).
///
/// The store (README "Reliability"): when it does not answer, or bookkeeping writes fail,
/// or a spilled backlog waits to be replayed, the instance is `degraded` — still ready (200):
/// it serves, with keys from its cache and records held in memory or the spill file.
/// Only when a bookkeeping queue is full, and new AI requests are refused, is it
/// `not_ready` (503).
pub async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    use anycloud_governance::bookkeeping::Health;
    let redis = match &state.broadcast {
        Some(b) => b.link().status(),
        None => json!({"state": "not_configured"}),
    };
    let ping = tokio::time::timeout(std::time::Duration::from_secs(1), state.store.ping());
    let store = match ping.await {
        Ok(Ok(())) => state.store.backend().to_string(),
        Ok(Err(e)) => format!("unreachable: {}", e.kind()),
        Err(_) => "unreachable: timeout".to_string(),
    };
    let queues = state.governance.bookkeeping.status();
    let (code, status) = match state.governance.bookkeeping.health() {
        Health::Full => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        _ if store.starts_with("unreachable") => (StatusCode::OK, "degraded"),
        Health::Degraded => (StatusCode::OK, "degraded"),
        Health::Ok => (StatusCode::OK, "ready"),
    };
    (
        code,
        Json(
            json!({"status": status, "store": store, "config": "loaded", "redis": redis, "bookkeeping": queues}),
        ),
    )
}

/// `GET /metrics` on the main listener: it names every tenant with its spend and
/// remaining budget, so it needs `Authorization: Bearer` with `server.metrics_token` or
/// the admin token (401 otherwise; 403 when neither is configured, pointing at
/// `server.metrics_listen`).
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let server = &state.config.server;
    let tokens: Vec<_> = [&server.metrics_token, &server.admin_token]
        .into_iter()
        .flatten()
        .collect();
    if tokens.is_empty() {
        return crate::ApiError::Forbidden {
            message: "/metrics on this listener needs `server.metrics_token` (or the admin \
                      token); `server.metrics_listen` serves it on an internal listener."
                .into(),
            code: "metrics_disabled",
            route: vec![],
        }
        .into_response();
    }
    let presented = crate::auth::presented_key(&headers, false).unwrap_or("");
    if !tokens
        .iter()
        .any(|t| crate::admin_auth::token_matches(presented, t))
    {
        return crate::ApiError::Unauthorized {
            message: "/metrics needs `Authorization: Bearer <server.metrics_token>`.".into(),
        }
        .into_response();
    }
    open_metrics(State(state)).await.into_response()
}

/// `/metrics` without auth: only on `server.metrics_listen`, the internal listener.
pub async fn open_metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    state.metrics.observe_clouds(
        state.config.clouds.iter().map(|c| c.name.as_str()),
        &state.clouds,
    );
    state
        .metrics
        .observe_governance(&state.config.tenants, &state.governance);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
