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

/// Ready when the config is loaded (it is, or we would not be serving) and
/// the store answers. With Redis, `redis` says whether it answers and which
/// mode each feature is in; an unreachable Redis does not make the instance
/// unready (it keeps serving with its fallbacks, see `shared::link`).
pub async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let redis = match &state.broadcast {
        Some(b) => b.link().status(),
        None => json!({"state": "not_configured"}),
    };
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(
                json!({"status": "ready", "store": state.store.backend(), "config": "loaded", "redis": redis}),
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"status": "not_ready", "store": format!("unreachable: {}", e.kind()), "config": "loaded", "redis": redis}),
            ),
        ),
    }
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
    state.metrics.observe_state(&state);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
