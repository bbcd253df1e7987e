//! Every `tools/call` on the record, through the same sinks as the model traffic: one
//! audit entry in the hash chain (action `mcp.tools_call`), `anycloud_mcp_calls_total`
//! and `anycloud_mcp_call_duration_seconds`, a span, an access-log line and, for tenants
//! with `capture = true`, the sealed arguments and result.
//!
//! The audit entry and the log line carry a SHA-256 of the arguments (canonical JSON),
//! never the arguments themselves: they may hold anything an agent was given.

use crate::auth::Principal;
use crate::state::AppState;
use anycloud_store::AuditEntry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub server: String,
    pub tool: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub server: String,
    pub tool: String,
}

#[derive(Clone, Debug)]
pub struct McpMetrics {
    pub calls: Family<CallLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram>,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~65 s, doubling (as the request histogram).
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl McpMetrics {
    /// The series, registered only when `[[mcp_servers]]` is configured (a gateway without
    /// MCP shows none, as one without Redis shows no Redis series).
    pub fn register(registry: &mut Registry, configured: bool) -> McpMetrics {
        let m = McpMetrics {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        };
        if !configured {
            return m;
        }
        registry.register(
            "mcp_calls",
            "MCP tools/call requests by server, tool (server__tool, or unknown) and outcome",
            m.calls.clone(),
        );
        registry.register(
            "mcp_call_duration_seconds",
            "Time from a tools/call to its result, by server and tool",
            m.latency.clone(),
        );
        m
    }
}

/// One finished (or refused) tool call.
#[derive(Debug)]
pub struct ToolCall<'a> {
    pub request_id: &'a str,
    pub principal: &'a Principal,
    /// The configured server, or `unknown` when the name matched none.
    pub server: &'a str,
    /// The namespaced tool as the client named it.
    pub tool: &'a str,
    /// Whether `tool` is one the server lists (bounds the metric label).
    pub known_tool: bool,
    pub arguments: Option<&'a rmcp::model::JsonObject>,
    /// `ok`, `tool_error`, `upstream_error`, `timeout`, `unavailable`, `cancelled`,
    /// `rate_limited`, `unknown_tool` or a policy refusal code.
    pub outcome: &'a str,
    /// The client-facing error message (refusals and failures).
    pub error: Option<&'a str>,
    pub latency_ms: u64,
    /// The tool's result, for capture.
    pub result: Option<&'a rmcp::model::CallToolResult>,
}

/// The metric label for an outcome (a closed set: refusals collapse into `denied`).
pub fn outcome_label(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "ok",
        "tool_error" => "tool_error",
        "upstream_error" => "upstream_error",
        "timeout" => "timeout",
        "unavailable" => "unavailable",
        "cancelled" => "cancelled",
        "rate_limited" => "rate_limited",
        "unknown_tool" => "unknown_tool",
        "server_drained" => "drained",
        _ => "denied",
    }
}

/// SHA-256 of the arguments' JSON (serde_json writes object keys in sorted order).
pub fn arguments_hash(args: Option<&rmcp::model::JsonObject>) -> String {
    let text = match args {
        Some(a) => Value::Object(a.clone()).to_string(),
        None => "{}".to_string(),
    };
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub fn record(state: &Arc<AppState>, c: &ToolCall<'_>) {
    let m = &state.mcp.metrics;
    let tool_label = if c.known_tool { c.tool } else { "unknown" };
    let outcome = outcome_label(c.outcome);
    m.calls
        .get_or_create(&CallLabels {
            server: c.server.to_string(),
            tool: tool_label.to_string(),
            outcome,
        })
        .inc();
    m.latency
        .get_or_create(&LatencyLabels {
            server: c.server.to_string(),
            tool: tool_label.to_string(),
        })
        .observe(c.latency_ms as f64 / 1000.0);
    let args_sha256 = arguments_hash(c.arguments);
    let p = c.principal;
    state
        .mcp
        .recent
        .push(&p.tenant.name, c.server, c.tool, c.outcome, c.latency_ms);
    state.governance.audit.push(AuditEntry {
        at: chrono::Utc::now(),
        actor: format!("key:{}", p.key_id),
        tenant: Some(p.tenant.name.clone()),
        action: "mcp.tools_call".into(),
        request_id: Some(c.request_id.to_string()),
        latency_ms: Some(c.latency_ms as i64),
        detail: Some(json!({
            "server": c.server,
            "tool": c.tool,
            "arguments_sha256": args_sha256,
            "outcome": c.outcome,
            "error": c.error,
        })),
        ..Default::default()
    });
    if tracing::enabled!(target: crate::access_log::TARGET, tracing::Level::INFO) {
        tracing::info!(
            target: crate::access_log::TARGET,
            request_id = %c.request_id,
            api = "mcp.tools_call",
            tenant = %p.tenant.name,
            key_id = %p.key_id,
            server = %c.server,
            tool = %tool_label,
            outcome = %c.outcome,
            arguments_sha256 = %args_sha256,
            latency_ms = c.latency_ms,
            "access"
        );
    }
    if state.governance.captures(p) {
        let request = json!({"server": c.server, "tool": c.tool, "arguments": c.arguments});
        state
            .governance
            .capture(c.request_id, p, &request, c.result);
    }
}

/// The call's span (when `[telemetry]` exports traces), ended by the caller.
pub fn span(state: &AppState, server: &str, tool: &str) -> tracing::Span {
    if !state.tracing.enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        target: crate::telemetry::TARGET,
        "mcp.tools_call",
        otel.name = %format!("tools/call {tool}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = %tool,
        mcp.server = %server,
        error.type = tracing::field::Empty,
    )
}

/// Ends the span with its outcome.
pub fn end_span(span: &tracing::Span, outcome: &str) {
    if span.is_none() || outcome == "ok" {
        return;
    }
    span.record("error.type", outcome);
    span.record("otel.status_code", "error");
}
