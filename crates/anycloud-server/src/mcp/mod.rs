//! The MCP gateway: `/mcp` (Streamable HTTP, rmcp's server transport) in front of the
//! `[[mcp_servers]]` (rmcp clients), under the same keys, tenant policy, rate limits,
//! audit chain, capture, metrics and access log as the model traffic (README "MCP
//! gateway").
//!
//! Neighbours: [`handler`] answers MCP requests for one client session; [`call`] runs
//! one `tools/call` from policy to record; [`policy`] decides who may use which tool;
//! [`upstream`] holds each server's connection; [`record`] writes the audit entry,
//! metrics, span, access-log line and capture; [`admin`] is the drain switch.

pub mod admin;
pub mod call;
pub mod handler;
pub mod http_client;
pub mod policy;
pub mod record;
pub mod ui;
pub mod upstream;

use crate::auth::Principal;
use crate::state::AppState;
use anycloud_config::{Config, TenantConfig};
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio_util::sync::CancellationToken;
use upstream::Upstream;

pub use record::McpMetrics;

/// A tenant as last seen, and its compiled policy.
type CompiledFor = (Arc<TenantConfig>, Option<Arc<policy::Compiled>>);

/// Every upstream server, and the compiled tenant policies.
pub struct McpGateway {
    upstreams: Vec<Arc<Upstream>>,
    pub metrics: McpMetrics,
    /// Recent calls and counts per server, for the dashboard.
    pub recent: ui::Recent,
    /// Ends every client session (SSE streams included) when the gateway shuts down.
    shutdown: CancellationToken,
    // std RwLock: a map read or insert, never held across an await. Keyed by tenant
    // name; the stored tenant `Arc` tells a policy changed through the admin API.
    compiled: RwLock<HashMap<String, CompiledFor>>,
}

impl std::fmt::Debug for McpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpGateway")
            .field("upstreams", &self.upstreams)
            .finish()
    }
}

impl McpGateway {
    pub fn new(config: &Config, metrics: McpMetrics) -> McpGateway {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        McpGateway {
            upstreams: config
                .mcp_servers
                .iter()
                .map(|s| Arc::new(Upstream::new(s.clone(), http.clone())))
                .collect(),
            metrics,
            recent: ui::Recent::default(),
            shutdown: CancellationToken::new(),
            compiled: RwLock::default(),
        }
    }

    /// Connects every server in the background (a slow or broken one delays nothing).
    pub fn start(&self) {
        for u in &self.upstreams {
            let u = u.clone();
            tokio::spawn(async move {
                if let Err(e) = u.tools().await {
                    tracing::warn!(server = %u.name(), error = %e, "MCP server not connected at start; will retry on use");
                }
            });
        }
    }

    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name() == name)
    }

    /// The tenant's compiled policy (`None`: the tenant has no `mcp` policy).
    pub fn tenant_policy(&self, tenant: &Arc<TenantConfig>) -> Option<Arc<policy::Compiled>> {
        if let Some((t, p)) = self
            .compiled
            .read()
            .ok()
            .and_then(|m| m.get(&tenant.name).cloned())
        {
            if Arc::ptr_eq(&t, tenant) {
                return p;
            }
        }
        let p = tenant
            .mcp
            .as_ref()
            .map(|p| Arc::new(policy::Compiled::new(p)));
        if let Ok(mut m) = self.compiled.write() {
            m.insert(tenant.name.clone(), (tenant.clone(), p.clone()));
        }
        p
    }

    /// Closes client sessions and stops every upstream (stdio processes end).
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        for u in &self.upstreams {
            u.shutdown().await;
        }
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// `/mcp`: authentication (the same virtual keys as `/v1`), then rmcp's Streamable HTTP
/// service with sessions, handled by [`handler::GatewayHandler`].
pub fn routes(state: Arc<AppState>) -> axum::Router<Arc<AppState>> {
    let handler_state = state.clone();
    let config = StreamableHttpServerConfig::default()
        // The gateway is reached under any host name; every request carries a key.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(state.config.server.max_body_bytes)
        .with_cancellation_token(state.mcp.shutdown_token().child_token());
    let service = StreamableHttpService::new(
        move || Ok(handler::GatewayHandler::new(handler_state.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(state, authenticate))
}

/// Puts the caller's [`Principal`] on the request (rmcp hands the request parts to the
/// handler); a missing or bad key is a 401 with a JSON-RPC error body.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    match crate::auth::authenticate(&state.directory, req.headers()).await {
        Ok(p) => {
            req.extensions_mut().insert::<Principal>(p);
            next.run(req).await
        }
        Err(e) => {
            let message = e.openai_object()["error"]["message"].clone();
            let body = serde_json::json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {"code": -32001, "message": message},
            });
            let status = e.status();
            let mut resp = (status, axum::Json(body)).into_response();
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"anycloud\""),
            );
            resp
        }
    }
}
