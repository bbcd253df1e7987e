//! `GET /admin/v1/clouds`, `POST /admin/v1/clouds/{name}/drain` and
//! `/restore`: the kill switch. A drain flips an atomic the router and the
//! dispatcher read on every request, so it is effective at once on this
//! instance; with Redis it is also written to the shared drain hash and
//! published, so every other instance applies it within a second
//! (`cluster::events`). The answer's `applies_to` says which happened.

use super::require_admin;
use crate::cloud_state::CloudSnapshot;
use crate::cluster::events::Reach;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::Arc;

/// A configured cloud and its live state on this instance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CloudView {
    pub name: String,
    /// `openai`, `openai_compatible`, `azure_openai`, `bedrock`, `vertex`, `anthropic` or `oci`.
    pub provider: String,
    pub region: Option<String>,
    pub jurisdiction: Option<String>,
    #[serde(flatten)]
    pub state: CloudSnapshot,
}

/// A drain or restore's answer: the cloud's new state and where it took effect.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Changed {
    #[serde(flatten)]
    pub cloud: CloudView,
    /// `all_instances` (shared through Redis) or `this_instance`.
    pub applies_to: Reach,
}

fn view(state: &AppState, name: &str) -> Option<CloudView> {
    let c = state.config.clouds.iter().find(|c| c.name == name)?;
    Some(CloudView {
        name: c.name.clone(),
        provider: c.provider.to_string(),
        region: c.region.clone(),
        jurisdiction: c.jurisdiction.clone(),
        state: state.clouds.snapshot(name)?,
    })
}

/// `GET /admin/v1/clouds`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CloudList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<CloudView>,
}

#[utoipa::path(get, path = "/admin/v1/clouds", tag = "clouds",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every configured cloud: drain, breaker, error rate, latency", body = CloudList),
        (status = 401, description = "No or wrong admin token", body = super::ErrorBody),
        (status = 403, description = "Not the admin token", body = super::ErrorBody),
    ))]
pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = require_admin(&state, &headers) {
        return e.into_response();
    }
    let data: Vec<CloudView> = state
        .config
        .clouds
        .iter()
        .filter_map(|c| view(&state, &c.name))
        .collect();
    Json(CloudList {
        object: "list",
        data,
    })
    .into_response()
}

#[utoipa::path(post, path = "/admin/v1/clouds/{name}/drain", tag = "clouds",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "A configured cloud's name")),
    responses(
        (status = 200, description = "Drained (the kill switch): no new request goes to it; idempotent", body = Changed),
        (status = 401, description = "No or wrong admin token", body = super::ErrorBody),
        (status = 403, description = "Not the admin token", body = super::ErrorBody),
        (status = 404, description = "No cloud of that name is configured", body = super::ErrorBody),
    ))]
pub async fn drain(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    set(&state, &headers, &name, true).await
}

#[utoipa::path(post, path = "/admin/v1/clouds/{name}/restore", tag = "clouds",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "A configured cloud's name")),
    responses(
        (status = 200, description = "Restored: the router may send it requests again; idempotent", body = Changed),
        (status = 401, description = "No or wrong admin token", body = super::ErrorBody),
        (status = 403, description = "Not the admin token", body = super::ErrorBody),
        (status = 404, description = "No cloud of that name is configured", body = super::ErrorBody),
    ))]
pub async fn restore(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    set(&state, &headers, &name, false).await
}

async fn set(state: &AppState, headers: &HeaderMap, name: &str, drained: bool) -> Response {
    if let Err(e) = require_admin(state, headers) {
        return e.into_response();
    }
    match set_drained(state, name, drained).await {
        Some(v) => Json(v).into_response(),
        None => ApiError::NotFound {
            message: format!("No cloud named `{name}` is configured."),
            param: Some("name".into()),
            code: "cloud_not_found",
        }
        .into_response(),
    }
}

/// Drains or restores `name`, shares it through Redis when configured and writes the
/// audit entry: the one code path for the admin API and the dashboard's buttons. `None`
/// for an unknown cloud.
pub async fn set_drained(state: &AppState, name: &str, drained: bool) -> Option<Changed> {
    let was_drained = anycloud_router::CloudState::is_drained(&*state.clouds, name);
    if !state.clouds.set_drained(name, drained) {
        return None;
    }
    tracing::warn!(cloud = %name, drained, "admin: cloud drain state changed");
    let reach = match &state.broadcast {
        Some(b) => b.drain(name, drained).await,
        None => Reach::ThisInstance,
    };
    // Every admin action goes into the hash-chained audit log.
    state.governance.audit.admin(
        if drained {
            "admin.cloud.drain"
        } else {
            "admin.cloud.restore"
        },
        None,
        serde_json::json!({"cloud": name, "drained": was_drained}),
        serde_json::json!({"cloud": name, "drained": drained}),
    );
    let cloud = view(state, name)?;
    Some(Changed {
        cloud,
        applies_to: reach,
    })
}
