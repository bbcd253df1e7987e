//! The gateway as an MCP server for one client session (rmcp `ServerHandler`):
//! `initialize` (rmcp negotiates the protocol revision), `tools/list` (the union of the
//! tools the caller may use, namespaced `server__tool`, schemas as each server gave
//! them) and `tools/call` ([`super::call`]).
//!
//! The caller is read from each request's HTTP parts (put there by `/mcp`'s
//! authentication), not from the session: a session id alone grants nothing, and a key
//! revoked mid-session is refused on its next request.

use super::call::{self, Incoming};
use super::policy::{self, Caller};
use crate::auth::Principal;
use crate::request_id::RequestId;
use crate::state::AppState;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};
use std::sync::Arc;

pub struct GatewayHandler {
    state: Arc<AppState>,
}

impl GatewayHandler {
    pub fn new(state: Arc<AppState>) -> GatewayHandler {
        GatewayHandler { state }
    }
}

/// The caller and request id from the request's HTTP parts.
fn caller(ctx: &RequestContext<RoleServer>) -> Result<(Principal, String), ErrorData> {
    let parts = ctx.extensions.get::<http::request::Parts>();
    let principal = parts
        .and_then(|p| p.extensions.get::<Principal>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("request is not authenticated", None))?;
    let request_id = parts
        .and_then(|p| p.extensions.get::<RequestId>())
        .map_or_else(crate::request_id::new_request_id, |r| r.0.clone());
    Ok((principal, request_id))
}

impl ServerHandler for GatewayHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("anycloud", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools of every MCP server your key may use, named <server>__<tool>. Calls are governed and audited by the anycloud gateway.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (principal, _) = caller(&ctx)?;
        Ok(ListToolsResult::with_all_items(
            tools_for(&self.state, &principal).await,
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (principal, request_id) = caller(&ctx)?;
        let progress = ctx.meta.get_progress_token().map(|t| (ctx.peer.clone(), t));
        let incoming = Incoming {
            request_id: &request_id,
            principal: &principal,
            params: request,
            progress,
            ct: ctx.ct.clone(),
        };
        call::tools_call(&self.state, incoming)
            .await
            .map(CallToolResponse::Complete)
    }
}

/// Every tool the caller may use, from every server it may reach that is not drained.
/// A server that cannot be reached right now is left out (and logged), not an error.
pub async fn tools_for(state: &Arc<AppState>, p: &Principal) -> Vec<Tool> {
    let gw = &state.mcp;
    let Some(tenant_policy) = gw.tenant_policy(&p.tenant) else {
        return Vec::new();
    };
    let Ok(key_policy) = super::admin::key_policy(state, &p.key_id).await else {
        return Vec::new();
    };
    let caller = Caller {
        tenant: &p.tenant,
        tenant_policy: Some(&tenant_policy),
        key_policy: key_policy.as_deref(),
    };
    let reachable: Vec<_> = gw
        .upstreams()
        .iter()
        .filter(|u| !u.is_drained() && policy::server_allowed(caller, &u.config).is_ok())
        .collect();
    let lists = futures::future::join_all(reachable.iter().map(|u| u.tools())).await;
    let mut out = Vec::new();
    for (u, tools) in reachable.iter().zip(lists) {
        let tools = match tools {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(server = %u.name(), error = %e, "MCP server left out of tools/list");
                continue;
            }
        };
        for t in tools.iter() {
            let full = policy::namespaced(u.name(), &t.name);
            if policy::tool_allowed(caller, &u.config, &full).is_ok() {
                let mut t = t.clone();
                t.name = full.into();
                out.push(t);
            }
        }
    }
    out
}
