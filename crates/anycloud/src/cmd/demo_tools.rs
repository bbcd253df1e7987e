//! The demo's agents: one MCP client session per demo tenant on the gateway's `/mcp`
//! (rmcp's Streamable HTTP client, as an agent framework would hold one), calling the
//! emulated tool server's tools now and then — some allowed, some refused by policy, one
//! failing, one slow — so the dashboard, the metrics and the audit log show tool calls.
//!
//! Bounded: one call at a time per tenant, about one a second in all.

use anycloud_server::mcp::http_client::ReqwestHttp;
use rand::Rng;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};
use std::time::Duration;

/// (tenant index, tool, arguments).
fn mix() -> Vec<(usize, &'static str, Value)> {
    vec![
        (
            0,
            "tools__echo",
            json!({"text": "hello from the demo agent"}),
        ),
        (0, "tools__add", json!({"a": 2, "b": 40})),
        (1, "tools__lookup_order", json!({"order_id": "A-1001"})),
        (1, "tools__lookup_order", json!({"order_id": "B-2002"})),
        (0, "tools__slow", json!({"ms": 600, "steps": 3})),
        (2, "tools__echo", json!({"text": "research note"})),
        (0, "tools__fail", json!({})),
        // Denied by the payments tenant's policy: refused without reaching the server.
        (1, "tools__fail", json!({})),
        // The research tenant has no access to `add`.
        (2, "tools__add", json!({"a": 1, "b": 1})),
    ]
}

async fn connect(base: &str, key: &str) -> Option<RunningService<RoleClient, ()>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .ok()?;
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"));
    cfg.auth_header = Some(key.to_string());
    let transport = StreamableHttpClientTransport::with_client(ReqwestHttp(http), cfg);
    ().serve(transport).await.ok()
}

/// Runs until aborted.
pub async fn run(base: String, keys: Vec<String>) {
    let mut sessions: Vec<Option<RunningService<RoleClient, ()>>> =
        keys.iter().map(|_| None).collect();
    let mix = mix();
    loop {
        let (tenant, tool, args) = mix[rand::thread_rng().gen_range(0..mix.len())].clone();
        if let (Some(key), Some(slot)) = (keys.get(tenant), sessions.get_mut(tenant)) {
            if slot.as_ref().is_none_or(|s| s.is_closed()) {
                *slot = connect(&base, key).await;
            }
            if let Some(s) = slot {
                let mut params = CallToolRequestParams::new(tool);
                params.arguments = args.as_object().cloned();
                // Refusals and tool errors are part of the show; only a broken session
                // matters (it is reopened next time).
                if let Err(e) = s.peer().call_tool(params).await {
                    tracing::debug!(error = %e, "demo agent: tool call failed");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
}
