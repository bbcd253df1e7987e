//! `/admin/v1/mcp/servers`: each upstream's state, and the kill switch
//! (`POST /admin/v1/mcp/servers/{name}/drain` and `/restore`), used by the dashboard's
//! buttons too. A drained server's tools disappear from `tools/list` and its calls are
//! refused without reaching it. Drains apply to this instance (not shared through
//! Redis); each one is an audit entry. Also the key's MCP policy, read for a call.

use super::policy::Compiled;
use crate::admin::{require_admin, ErrorBody};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;

/// One upstream MCP server as the admin API and the dashboard show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServerView {
    pub name: String,
    /// `http` or `stdio`.
    #[schema(value_type = String, pattern = "^(http|stdio)$")]
    pub transport: &'static str,
    pub jurisdiction: Option<String>,
    pub drained: bool,
    /// `connected` or `disconnected`.
    #[schema(value_type = String, pattern = "^(connected|disconnected)$")]
    pub connection: &'static str,
}

/// `GET /admin/v1/mcp/servers`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServerList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<ServerView>,
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/mcp/servers", get(list))
        .route("/admin/v1/mcp/servers/{name}/drain", post(drain))
        .route("/admin/v1/mcp/servers/{name}/restore", post(restore))
}

pub fn views(state: &AppState) -> Vec<ServerView> {
    state
        .mcp
        .upstreams()
        .iter()
        .map(|u| ServerView {
            name: u.name().to_string(),
            transport: if u.config.url.is_some() {
                "http"
            } else {
                "stdio"
            },
            jurisdiction: u.config.jurisdiction.clone(),
            drained: u.is_drained(),
            connection: u.connection_state(),
        })
        .collect()
}

#[utoipa::path(get, path = "/admin/v1/mcp/servers", tag = "mcp",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every configured upstream MCP server", body = ServerList),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
    ))]
pub async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = require_admin(&state, &headers) {
        return e.into_response();
    }
    Json(ServerList {
        object: "list".into(),
        data: views(&state),
    })
    .into_response()
}

#[utoipa::path(post, path = "/admin/v1/mcp/servers/{name}/drain", tag = "mcp",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "The server's `name` in `[[mcp_servers]]`")),
    responses(
        (status = 200, description = "Drained: its tools leave `tools/list` and its calls are refused", body = ServerView),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
        (status = 404, description = "No MCP server of that name", body = ErrorBody),
    ))]
pub async fn drain(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    set(&state, &headers, &name, true)
}

#[utoipa::path(post, path = "/admin/v1/mcp/servers/{name}/restore", tag = "mcp",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "The server's `name` in `[[mcp_servers]]`")),
    responses(
        (status = 200, description = "Restored: its tools are listed and callable again", body = ServerView),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Not the admin token", body = ErrorBody),
        (status = 404, description = "No MCP server of that name", body = ErrorBody),
    ))]
pub async fn restore(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    set(&state, &headers, &name, false)
}

fn set(state: &AppState, headers: &HeaderMap, name: &str, drained: bool) -> Response {
    if let Err(e) = require_admin(state, headers) {
        return e.into_response();
    }
    match set_drained(state, name, drained) {
        Some(v) => Json(v).into_response(),
        None => ApiError::NotFound {
            message: format!("No MCP server named `{name}` is configured."),
            param: Some("name".into()),
            code: "mcp_server_not_found",
        }
        .into_response(),
    }
}

/// Drains or restores `name` and writes the audit entry: the one code path for the
/// admin API and the dashboard. `None` for an unknown server.
pub fn set_drained(state: &AppState, name: &str, drained: bool) -> Option<ServerView> {
    let u = state.mcp.upstream(name)?;
    let was = u.is_drained();
    u.set_drained(drained);
    tracing::warn!(mcp_server = %name, drained, "admin: MCP server drain state changed");
    state.governance.audit.admin(
        if drained {
            "admin.mcp.drain"
        } else {
            "admin.mcp.restore"
        },
        None,
        serde_json::json!({"mcp_server": name, "drained": was}),
        serde_json::json!({"mcp_server": name, "drained": drained}),
    );
    views(state).into_iter().find(|v| v.name == name)
}

/// The key's MCP policy (set through `PUT /admin/v1/keys/{id}/policy`), compiled.
/// The policy itself is cached for a second by governance, like keys.
/// An unreadable store is an error (the caller refuses), never "no key policy".
pub async fn key_policy(state: &AppState, key_id: &str) -> Result<Option<Arc<Compiled>>, ApiError> {
    let p = state.governance.key_policy(key_id).await?;
    Ok(p.mcp
        .map(|spec| Arc::new(Compiled::new(&anycloud_config::McpPolicy::from(spec)))))
}
