//! The Redis link's Prometheus series (`anycloud_redis_up`, `anycloud_redis_fallbacks`),
//! registered by the server's metrics registry only when `store.redis_url` is set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    pub feature: &'static str,
    pub action: &'static str,
}

/// The Redis link's health, shared with [`crate::link::RedisLink`].
#[derive(Clone, Debug, Default)]
pub struct RedisMetrics {
    /// 1 while Redis answers, 0 while it does not; absent without `store.redis_url`.
    pub up: Gauge,
    /// Decisions taken without Redis, by feature and what was done.
    pub fallbacks: Family<FallbackLabels, Counter>,
}

impl RedisMetrics {
    /// Registers both series in `registry`.
    pub fn register(registry: &mut Registry) -> RedisMetrics {
        let m = RedisMetrics::default();
        registry.register(
            "redis_up",
            "1 while the shared Redis answers, 0 while it does not (only with store.redis_url)",
            m.up.clone(),
        );
        registry.register(
            "redis_fallbacks",
            "Requests decided without Redis, by feature (budgets, rate_limits) and action (local, open, refused)",
            m.fallbacks.clone(),
        );
        m
    }

    pub fn fallback(&self, feature: &'static str, action: &'static str) {
        self.fallbacks
            .get_or_create(&FallbackLabels { feature, action })
            .inc();
    }
}
