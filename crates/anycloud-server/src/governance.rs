//! Governance on the server's side. Everything else — admission, budgets, rate limits,
//! key policies, the audit writer, capture sealing, the bookkeeping queues — is the
//! `anycloud-governance` crate, which knows nothing of HTTP or `AppState`
//! (ARCHITECTURE.md "Crates"); its refusals become API errors in `error.rs`, once. Here:
//! the two outcome sinks (ARCHITECTURE.md "The request path", step 12) that put every
//! finished AI request on the audit trail and settle what admission reserved.

// The crate's modules under their old paths, for the server's users and the binary.
pub use anycloud_governance::{
    audit, bookkeeping, budget, capture, limits, policy, ratelimit, redis_budget, redis_ratelimit,
};

use crate::outcome::{OutcomeSink, RequestOutcome};
use anycloud_governance::audit::{route_json, AuditLog};
use anycloud_governance::Settler;
use anycloud_store::AuditEntry;
use serde_json::{json, Value};

impl OutcomeSink for AuditLog {
    fn record(&self, o: &RequestOutcome) {
        let usage = o.usage();
        let attempts: Vec<Value> = o
            .attempts
            .iter()
            .map(|a| {
                let mut v = json!({"cloud": a.cloud, "deployment": a.deployment, "outcome": a.outcome,
                       "upstream_status": a.upstream_status, "latency_ms": a.latency_ms,
                       "usage_estimated": a.usage_estimated});
                // Clamped for billing: what the cloud said stays on the record.
                if let Some(r) = &a.reported_usage {
                    v["usage_reported"] = json!({"input_tokens": r.input_tokens,
                        "output_tokens": r.output_tokens, "cached_input_tokens": r.cached_input_tokens});
                }
                v
            })
            .collect();
        self.push(AuditEntry {
            at: o.at,
            actor: format!("key:{}", o.key_id),
            tenant: Some(o.tenant.clone()),
            action: format!("ai.{}", o.api),
            model: Some(o.model.clone()),
            cloud: o.cloud().map(str::to_string),
            request_id: Some(o.request_id.clone()),
            status: Some(i64::from(o.status)),
            latency_ms: Some(o.latency_ms as i64),
            input_tokens: Some(i64::try_from(usage.input_tokens).unwrap_or(i64::MAX)),
            output_tokens: Some(i64::try_from(usage.output_tokens).unwrap_or(i64::MAX)),
            cost_usd: Some(o.cost_usd()),
            route: Some(route_json(&o.route)),
            detail: Some(json!({"attempts": attempts})),
        });
    }
}

/// Settles the budget reservation to the real cost and corrects tokens-per-minute to
/// the tokens really used.
impl OutcomeSink for Settler {
    fn record(&self, o: &RequestOutcome) {
        let u = o.usage();
        self.settle(
            &o.request_id,
            o.cost_usd(),
            u.input_tokens + u.output_tokens,
        );
    }
}
