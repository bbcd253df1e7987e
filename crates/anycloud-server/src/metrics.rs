//! Prometheus metrics. Label values come only from closed sets — API names,
//! configured cloud and model names (or `none`/`unknown`), HTTP status codes,
//! reason codes — so a client sending random model names cannot grow the
//! series count.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub api: &'static str,
    pub cloud: String,
    pub model: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub api: &'static str,
    pub cloud: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub api: &'static str,
    pub kind: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub cloud: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeclineLabels {
    pub cloud: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudLabels {
    pub cloud: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram>,
    pub errors: Family<ErrorLabels, Counter>,
    pub attempts: Family<AttemptLabels, Counter>,
    pub declines: Family<DeclineLabels, Counter>,
    /// 1 while a cloud is drained.
    pub cloud_drained: Family<CloudLabels, Gauge>,
    /// 0 closed, 1 half-open, 2 open.
    pub cloud_breaker: Family<CloudLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~65 s, doubling.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 17,
    ))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("anycloud");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        let attempts = Family::<AttemptLabels, Counter>::default();
        let declines = Family::<DeclineLabels, Counter>::default();
        registry.register(
            "requests",
            "Client requests by API, serving cloud, model and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to response headers, by API, cloud and model",
            latency.clone(),
        );
        registry.register(
            "errors",
            "Client-visible errors by API, kind and status",
            errors.clone(),
        );
        registry.register(
            "upstream_attempts",
            "Upstream attempts by cloud and outcome (ok or a reason code)",
            attempts.clone(),
        );
        registry.register(
            "route_declines",
            "Clouds skipped by routing, by cloud and reason",
            declines.clone(),
        );
        let cloud_drained = Family::<CloudLabels, Gauge>::default();
        let cloud_breaker = Family::<CloudLabels, Gauge>::default();
        registry.register(
            "cloud_drained",
            "1 while the cloud is drained by the kill switch",
            cloud_drained.clone(),
        );
        registry.register(
            "cloud_breaker_state",
            "Circuit breaker per cloud: 0 closed, 1 half-open, 2 open",
            cloud_breaker.clone(),
        );
        Metrics {
            registry,
            cloud_drained,
            cloud_breaker,
            requests,
            latency,
            errors,
            attempts,
            declines,
        }
    }

    /// Refreshes the per-cloud state gauges; called right before a scrape
    /// because breakers move from open to half-open with time alone.
    pub fn observe_clouds<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        clouds: &crate::cloud_state::CloudStates,
    ) {
        use crate::cloud_state::BreakerState;
        use anycloud_router::CloudState;
        for name in names {
            let labels = CloudLabels {
                cloud: name.to_string(),
            };
            self.cloud_drained
                .get_or_create(&labels)
                .set(i64::from(clouds.is_drained(name)));
            let b = match clouds.breaker_state(name) {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open => 2,
            };
            self.cloud_breaker.get_or_create(&labels).set(b);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

// --- Redis (shared state across instances) -------------------------------------------

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    pub feature: &'static str,
    pub action: &'static str,
}

/// The Redis link's health, shared with [`crate::shared::link::RedisLink`].
#[derive(Clone, Debug, Default)]
pub struct RedisMetrics {
    /// 1 while Redis answers, 0 while it does not; absent without `store.redis_url`.
    pub up: Gauge,
    /// Decisions taken without Redis, by feature and what was done.
    pub fallbacks: Family<FallbackLabels, Counter>,
}

impl Metrics {
    /// Registers the Redis series (only when `store.redis_url` is set, so a deployment
    /// without Redis shows no `anycloud_redis_up 0`).
    pub fn register_redis(&mut self) -> RedisMetrics {
        RedisMetrics::register(&mut self.registry)
    }
}

impl RedisMetrics {
    fn register(registry: &mut Registry) -> RedisMetrics {
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
