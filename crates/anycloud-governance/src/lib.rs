//! Governance that knows nothing of HTTP or the server's `AppState` (ARCHITECTURE.md
//! "Crates"): admission, budgets and rate limits — each decided locally or shared by every
//! instance through Redis — key policies, the Redis link, the audit chain writer and
//! payload sealing. [`Governance`] holds them all; the server builds one at start, asks
//! [`Governance::admit`] about every request, and maps a [`Refusal`] to its API error in
//! one place (the server's `error.rs`).
//!
//! - [`admission`]: who asks ([`Principal`]), for what ([`Ask`]), the verdict
//!   ([`Admission`] or [`Refusal`]) and the [`Settler`] that settles it when the request ends.
//! - [`bookkeeping`]: every bookkeeping queue seen as one (back-pressure, `/readyz`).
//! - [`policy`]: a key's own budget, limits and MCP narrowing, and their cache.
//! - [`ratelimit`]: this instance's own GCRA; [`redis_ratelimit`]: the same algorithm in
//!   Redis; [`limits`]: picks one per check (`rate_limits_when_redis_down`).
//! - [`budget`]: reservations against tenant and key budgets, settled to the real cost;
//!   [`redis_budget`]: the same totals kept in Redis by Lua scripts.
//! - [`link`]: the Redis connection and whether it answers; [`redis_metrics`]: its series.
//! - [`audit`]: the audit trail's queue and chain keys; [`capture`]: payload sealing
//!   (AES-256-GCM, key rotation, redaction) and the capture queue.

pub mod admission;
pub mod audit;
pub mod bookkeeping;
pub mod budget;
pub mod capture;
pub mod limits;
pub mod link;
pub mod policy;
pub mod ratelimit;
pub mod redis_budget;
pub mod redis_metrics;
pub mod redis_ratelimit;

pub use admission::{Admission, Ask, Limited, Principal, Refusal, Settler};

use anycloud_config::Config;
use anycloud_store::spool::{Spool, SpoolConfig};
use anycloud_store::{CaptureRecord, Store};
use bookkeeping::{spool_config, Bookkeeping};
use link::RedisLink;
use policy::{KeyPolicies, KeyPolicy};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Budgets, rate limits, key policies, the audit trail, payload capture and the
/// bookkeeping queues, built once at start.
#[derive(Debug)]
pub struct Governance {
    pub budgets: Arc<budget::Budgets>,
    pub limits: Arc<limits::RateLimiter>,
    pub audit: Arc<audit::AuditLog>,
    pub sealer: capture::Sealer,
    /// Sealed captures on their way to the store (bounded, spilling like the audit log).
    pub captures: Spool<CaptureRecord>,
    /// Every bookkeeping queue (these and the ones registered later, like the ledger's).
    pub bookkeeping: Bookkeeping,
    key_policies: KeyPolicies,
    /// `server.default_max_output_tokens`: the output cap of a request without one.
    default_max_output_tokens: u64,
}

impl Governance {
    /// `link`: the shared Redis, when `store.redis_url` is set; budgets and rate limits
    /// then hold across every instance. From `config`: `[store]` (the queues' bounds and
    /// spill directory), `[capture]`, `[audit]` and the server's request timeout (how
    /// long a shared budget reservation is leased) and default output cap.
    pub fn new(
        store: Arc<dyn Store>,
        config: &Config,
        link: Option<Arc<RedisLink>>,
    ) -> Result<Governance, capture::CaptureError> {
        let queues = &config.store;
        let request_timeout = Duration::from_millis(config.server.request_timeout_ms);
        let shared_budgets = link.clone().map(|l| {
            let lease = request_timeout + redis_budget::LEASE_MARGIN;
            Arc::new(redis_budget::SharedBudgets::new(l, lease))
        });
        let g = Governance {
            budgets: Arc::new(budget::Budgets::new(
                store.clone(),
                shared_budgets,
                spool_config(queues, "budget_spend"),
                // Settles go to Redis, not the store: no spill file.
                SpoolConfig {
                    spill: None,
                    ..spool_config(queues, "budget_settle")
                },
            )),
            limits: Arc::new(limits::RateLimiter::new(
                link.map(redis_ratelimit::SharedGcra::new),
            )),
            audit: Arc::new(audit::AuditLog::new(
                store.clone(),
                spool_config(queues, "audit"),
                audit::chain_keys(&config.audit)?,
            )),
            sealer: capture::Sealer::from_config(&config.capture)?,
            captures: capture::writer(store.clone(), spool_config(queues, "capture")),
            bookkeeping: Bookkeeping::default(),
            key_policies: KeyPolicies::new(store),
            default_max_output_tokens: config.server.default_max_output_tokens,
        };
        g.bookkeeping.register(g.audit.gauge());
        g.bookkeeping.register(g.captures.gauge());
        for gauge in g.budgets.gauges() {
            g.bookkeeping.register(gauge);
        }
        Ok(g)
    }

    /// A key's policy (cached for one second; see [`policy`]).
    pub async fn key_policy(&self, key_id: &str) -> Result<KeyPolicy, Refusal> {
        self.key_policies.get(key_id).await
    }

    /// Drops a key's cached policy (changed here or on another instance).
    pub fn forget_key_policy(&self, key_id: &str) {
        self.key_policies.forget(key_id);
    }

    /// What settles admission's reservations when a request ends.
    pub fn settler(&self) -> Settler {
        Settler::new(self.budgets.clone(), self.limits.clone())
    }

    /// Whether this principal's tenant captures payloads (and a capture key is configured).
    pub fn captures(&self, p: &Principal) -> bool {
        p.tenant.capture && self.sealer.enabled()
    }

    /// Seals one request's bodies and queues them for the store (off the request path).
    pub fn capture<R: serde::Serialize>(
        &self,
        request_id: &str,
        p: &Principal,
        request: &impl serde::Serialize,
        response: Option<&R>,
    ) {
        let body = serde_json::json!({
            "request": serde_json::to_value(request).unwrap_or(Value::Null),
            "response": response.and_then(|r| serde_json::to_value(r).ok()),
        });
        match self.sealer.seal(request_id, &p.tenant.name, body) {
            Ok(record) => self.captures.push(record),
            Err(e) => tracing::error!(error = %e, "payload capture failed"),
        }
    }

    /// Drains every queued audit entry, spend record and capture (shutdown, tests).
    pub async fn flush(&self) {
        self.audit.flush().await;
        self.budgets.flush().await;
        self.captures.flush().await;
    }
}
