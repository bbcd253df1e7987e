//! One `tools/call`, in order: name → server, policy (tenant, key, jurisdiction), drain
//! switch, the tool must be one the server lists, calls-per-minute limits, then the
//! upstream call (progress and cancellation passed through), then the record. Every
//! path — refused, failed or served — ends in exactly one [`record::record`].

use super::policy::{self, Caller, Refusal};
use super::record::{self, ToolCall};
use super::upstream::CallError;
use crate::auth::Principal;
use crate::state::AppState;
use anycloud_governance::limits::{Check, Verdict};
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode, ProgressToken};
use rmcp::service::{Peer, RoleServer};
use rmcp::ErrorData;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// JSON-RPC error codes of the gateway's own refusals (implementation-defined server
/// error range; README "MCP gateway").
pub const CODE_DENIED: i32 = -32010;
pub const CODE_RATE_LIMITED: i32 = -32011;
pub const CODE_UNAVAILABLE: i32 = -32012;
pub const CODE_TIMEOUT: i32 = -32013;

fn refusal_error(code: i32, message: String, reason: &str) -> ErrorData {
    ErrorData::new(ErrorCode(code), message, Some(json!({"reason": reason})))
}

/// What the handler hands over for one call.
pub struct Incoming<'a> {
    pub request_id: &'a str,
    pub principal: &'a Principal,
    pub params: CallToolRequestParams,
    pub progress: Option<(Peer<RoleServer>, ProgressToken)>,
    pub ct: CancellationToken,
}

/// One call's bookkeeping: what every ending records.
struct Ending<'a> {
    state: &'a Arc<AppState>,
    request_id: &'a str,
    principal: &'a Principal,
    full: &'a str,
    args: Option<&'a rmcp::model::JsonObject>,
    start: Instant,
    span: tracing::Span,
}

impl Ending<'_> {
    /// Records the call (audit, metrics, access log, capture) and ends its span.
    fn record(
        &self,
        server: &str,
        known_tool: bool,
        outcome: &str,
        error: Option<&str>,
        result: Option<&CallToolResult>,
    ) {
        record::record(
            self.state,
            &ToolCall {
                request_id: self.request_id,
                principal: self.principal,
                server,
                tool: self.full,
                known_tool,
                arguments: self.args,
                outcome,
                error,
                latency_ms: self.start.elapsed().as_millis() as u64,
                result,
            },
        );
        record::end_span(&self.span, outcome);
    }

    /// Records a refusal and returns its error.
    fn refuse(&self, server: &str, known: bool, outcome: &str, e: ErrorData) -> ErrorData {
        self.record(server, known, outcome, Some(&e.message), None);
        e
    }

    /// Records a failed upstream call and returns the client's error.
    fn failed(&self, server: &str, known: bool, e: CallError) -> ErrorData {
        let outcome = e.outcome();
        let msg = e.to_string();
        self.record(server, known, outcome, Some(&msg), None);
        match e {
            CallError::Upstream(data) => data,
            CallError::Timeout(..) => refusal_error(CODE_TIMEOUT, msg, outcome),
            CallError::Cancelled | CallError::Unavailable(..) => {
                refusal_error(CODE_UNAVAILABLE, msg, outcome)
            }
        }
    }
}

pub async fn tools_call(
    state: &Arc<AppState>,
    inc: Incoming<'_>,
) -> Result<CallToolResult, ErrorData> {
    let full = inc.params.name.to_string();
    let args = inc.params.arguments.clone();
    let gw = &state.mcp;
    let upstream = policy::split(&full).and_then(|(s, t)| gw.upstream(s).map(|u| (u, t)));
    let mut end = Ending {
        state,
        request_id: inc.request_id,
        principal: inc.principal,
        full: &full,
        args: args.as_ref(),
        start: Instant::now(),
        span: tracing::Span::none(),
    };
    let Some((upstream, tool)) = upstream else {
        let msg =
            format!("Unknown tool: `{full}`. Tools are named `<server>__<tool>`; see tools/list.");
        return Err(end.refuse(
            "unknown",
            false,
            "unknown_tool",
            ErrorData::invalid_params(msg, None),
        ));
    };
    let server = upstream.name().to_string();
    end.span = record::span(state, &server, &full);

    // Policy first: a refused call learns nothing about the server's tools.
    let Ok(key_policy) = super::admin::key_policy(state, &inc.principal.key_id).await else {
        let e = refusal_error(
            CODE_UNAVAILABLE,
            "The gateway's key store is unavailable.".into(),
            "unavailable",
        );
        return Err(end.refuse(&server, false, "unavailable", e));
    };
    let tenant_policy = gw.tenant_policy(&inc.principal.tenant);
    let caller = Caller {
        tenant: &inc.principal.tenant,
        tenant_policy: tenant_policy.as_deref(),
        key_policy: key_policy.as_deref(),
    };
    let refusal = policy::tool_allowed(caller, &upstream.config, &full)
        .err()
        .or_else(|| {
            upstream.is_drained().then(|| Refusal::Drained {
                server: server.clone(),
            })
        });
    if let Some(r) = refusal {
        let code = if matches!(r, Refusal::Drained { .. }) {
            CODE_UNAVAILABLE
        } else {
            CODE_DENIED
        };
        return Err(end.refuse(
            &server,
            false,
            r.code(),
            refusal_error(code, r.message(), r.code()),
        ));
    }

    let listed = upstream
        .tools()
        .await
        .map_err(|e| end.failed(&server, false, e))?;
    if !listed.iter().any(|t| t.name == tool) {
        let msg = format!("Unknown tool: `{full}` (server `{server}` does not list `{tool}`).");
        return Err(end.refuse(
            &server,
            false,
            "unknown_tool",
            ErrorData::invalid_params(msg, None),
        ));
    }
    if let Some(e) = rate_limit(state, inc.principal, caller).await {
        return Err(end.refuse(&server, true, "rate_limited", e));
    }

    let upstream_call = upstream.call(tool, args.clone(), inc.progress.clone(), inc.ct.clone());
    match tracing::Instrument::instrument(upstream_call, end.span.clone()).await {
        Ok(mut result) => {
            // A result from a server on an older revision has no `resultType`; the client
            // may be on 2026-07-28, where it is required (rmcp drops it again for older
            // clients).
            result
                .result_type
                .get_or_insert(rmcp::model::ResultType::COMPLETE);
            let outcome = if result.is_error == Some(true) {
                "tool_error"
            } else {
                "ok"
            };
            end.record(&server, true, outcome, None, Some(&result));
            Ok(result)
        }
        Err(e) => Err(end.failed(&server, true, e)),
    }
}

/// The tenant's and the key's `calls_per_minute`, through the gateway's rate limiter
/// (shared through Redis like the request limits).
async fn rate_limit(state: &AppState, p: &Principal, c: Caller<'_>) -> Option<ErrorData> {
    let mut checks = Vec::new();
    let mut labels = Vec::new();
    if let Some(n) = c.tenant_policy.and_then(|t| t.calls_per_minute) {
        checks.push(Check {
            scope: format!("tenant:{}:mcp_cpm", p.tenant.name),
            limit: n,
            cost: 1,
        });
        labels.push(format!("tenant `{}`", p.tenant.name));
    }
    if let Some(n) = c.key_policy.and_then(|k| k.calls_per_minute) {
        checks.push(Check {
            scope: format!("key:{}:mcp_cpm", p.key_id),
            limit: n,
            cost: 1,
        });
        labels.push(format!("key `{}`", p.key_id));
    }
    if checks.is_empty() {
        return None;
    }
    match state.governance.limits.check(&checks).await {
        Verdict::Allowed(_) => None,
        Verdict::Limited {
            index, retry_after, ..
        } => {
            let limit = checks.get(index).map_or(0, |c| c.limit);
            let who = labels.get(index).map_or("this key", String::as_str);
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            Some(ErrorData::new(
                ErrorCode(CODE_RATE_LIMITED),
                format!("Rate limit reached for {who}: {limit} MCP tool calls per minute. Please try again in {secs}s."),
                Some(json!({"reason": "rate_limited", "retry_after": secs})),
            ))
        }
    }
}
