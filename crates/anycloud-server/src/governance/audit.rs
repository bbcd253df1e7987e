//! The audit trail's write side: every finished AI request (as an [`OutcomeSink`]) and
//! every admin action becomes one [`AuditEntry`], queued and appended to the hash chain
//! in batches off the request path (see `anycloud_store::governance` for the chain).
//!
//! Entries carry names, ids, counts and the route — never a key, a cloud secret or the
//! admin token: admin actions record who (`admin`) and what changed, and key creation
//! records the key's id and prefix only.

use crate::outcome::{OutcomeSink, RequestOutcome};
use anycloud_router::Decision;
use anycloud_store::spool::{FlushHook, Spool, SpoolConfig, SpoolGauge};
use anycloud_store::{AuditEntry, Store};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Debug)]
pub struct AuditLog {
    writer: Spool<AuditEntry>,
}

impl AuditLog {
    /// `config`: the queue's bound and spill file (see `crate::bookkeeping`). Each batch is
    /// one append: the chain is hashed in memory and written with one multi-row insert.
    pub fn new(store: Arc<dyn Store>, config: SpoolConfig) -> AuditLog {
        let writer = Spool::start(
            config,
            Arc::new(move |batch: Arc<Vec<AuditEntry>>| {
                let store = store.clone();
                Box::pin(async move { store.append_audit(&batch).await.map(|_| ()) })
            }),
        );
        AuditLog { writer }
    }

    pub fn gauge(&self) -> SpoolGauge {
        self.writer.gauge()
    }

    pub fn push(&self, entry: AuditEntry) {
        self.writer.push(entry);
    }

    /// Records an admin action with what it changed.
    pub fn admin(&self, action: &str, tenant: Option<&str>, before: Value, after: Value) {
        self.push(AuditEntry {
            at: chrono::Utc::now(),
            actor: "admin".into(),
            tenant: tenant.map(str::to_string),
            action: action.to_string(),
            detail: Some(json!({"before": before, "after": after})),
            ..Default::default()
        });
    }

    /// Entries waiting to be appended.
    pub fn pending(&self) -> u64 {
        self.writer.stats().pending
    }

    pub fn on_flush(&self, hook: FlushHook) {
        self.writer.on_flush(hook);
    }

    /// Waits until everything queued so far is in the store.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }
}

/// The route as stored: one object per decision, in order.
pub fn route_json(route: &[Decision]) -> Value {
    Value::Array(
        route
            .iter()
            .map(|d| {
                let (outcome, reason) = match &d.outcome {
                    anycloud_router::Outcome::Ok => ("ok".to_string(), None),
                    anycloud_router::Outcome::Declined(r) => {
                        ("declined".to_string(), Some(r.to_string()))
                    }
                    anycloud_router::Outcome::Failed(r) => ("failed".to_string(), Some(r.clone())),
                };
                json!({"cloud": d.cloud, "outcome": outcome, "reason": reason})
            })
            .collect(),
    )
}

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
