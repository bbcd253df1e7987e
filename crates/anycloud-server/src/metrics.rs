//! Prometheus metrics served at `/metrics` (every one is listed in README's
//! "Metrics" section).
//!
//! Label values come only from closed sets — API names, reason and error
//! codes, HTTP status codes, and names from the config (clouds, models,
//! tenants) through [`LabelSets`], which maps anything else to `unknown` /
//! `other` — so a client sending random model names cannot grow the series
//! count. Per-request series are fed by [`Metrics`] as an [`OutcomeSink`]
//! (one path for every ingress API, streams included); state gauges (breaker,
//! drain, budgets, queues) are refreshed right before each scrape.

use crate::outcome::{OutcomeSink, RequestOutcome};
use anycloud_config::{BudgetPeriod, Config, TenantConfig};
use anycloud_governance::bookkeeping::Health;
use anycloud_governance::{Governance, Refusal};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub api: &'static str,
    pub cloud: Label,
    pub model: Label,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub api: &'static str,
    pub cloud: Label,
    pub model: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub api: &'static str,
    /// The cloud that rejected the request (`upstream_rejected`), else `none`.
    pub cloud: Label,
    pub model: Label,
    pub kind: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub cloud: Label,
    pub outcome: String,
}

/// A stream interrupted with resuming on: where it continued (`none` when it did not)
/// and how (`resumed`, `no_cloud`, `exhausted`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResumeLabels {
    pub from_cloud: String,
    pub to_cloud: String,
    pub outcome: &'static str,
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub cloud: Label,
    pub model: Label,
    pub tenant: Label,
    /// `input`, `output` or `cached` (cached input, a part of `input`).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpendLabels {
    pub cloud: Label,
    pub model: Label,
    pub tenant: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub tenant: Label,
    pub period: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyBudgetLabels {
    /// `ok` or `exhausted`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    /// `tenant` or `key`.
    pub scope: &'static str,
    /// `requests` or `tokens`.
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// `ledger`, `audit`, `budget_spend`, `budget_settle` or `capture`.
    pub queue: &'static str,
}

type CounterF64 = Counter<f64, AtomicU64>;
type GaugeF64 = Gauge<f64, AtomicU64>;

/// A label value, shared: cloning it bumps a reference count instead of allocating. The
/// configured names are interned once in [`LabelSets`], so the ~10 label values a request's
/// series take cost no allocation (bench/README.md "Instruction counts").
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(Arc<str>);

impl Label {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Label {
    fn from(s: &str) -> Label {
        Label(Arc::from(s))
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// The configured names that may appear as label values, interned.
#[derive(Debug)]
pub struct LabelSets {
    clouds: HashMap<String, Label>,
    models: HashMap<String, Label>,
    tenants: HashMap<String, Label>,
    none: Label,
    other: Label,
    unknown: Label,
}

impl Default for LabelSets {
    fn default() -> LabelSets {
        LabelSets::of([], [], [])
    }
}

fn intern<'a>(names: impl IntoIterator<Item = &'a str>) -> HashMap<String, Label> {
    names
        .into_iter()
        .map(|n| (n.to_string(), Label::from(n)))
        .collect()
}

impl LabelSets {
    pub fn from_config(c: &Config) -> LabelSets {
        LabelSets::of(
            c.clouds.iter().map(|x| x.name.as_str()),
            c.models.iter().map(|x| x.name.as_str()),
            c.tenants.iter().map(|x| x.name.as_str()),
        )
    }

    fn of<'a>(
        clouds: impl IntoIterator<Item = &'a str>,
        models: impl IntoIterator<Item = &'a str>,
        tenants: impl IntoIterator<Item = &'a str>,
    ) -> LabelSets {
        LabelSets {
            clouds: intern(clouds),
            models: intern(models),
            tenants: intern(tenants),
            none: Label::from("none"),
            other: Label::from("other"),
            unknown: Label::from("unknown"),
        }
    }

    /// A configured cloud, `none` for no cloud, else `other`.
    pub fn cloud(&self, name: Option<&str>) -> Label {
        match name {
            None | Some("none") => self.none.clone(),
            Some(n) => self.clouds.get(n).unwrap_or(&self.other).clone(),
        }
    }

    /// A configured model, else `unknown`.
    pub fn model(&self, name: &str) -> Label {
        self.models.get(name).unwrap_or(&self.unknown).clone()
    }

    /// A tenant from the config, else `other` (tenants created through the
    /// admin API are unbounded in number, so they share one series).
    pub fn tenant(&self, name: &str) -> Label {
        self.tenants.get(name).unwrap_or(&self.other).clone()
    }
}

pub struct Metrics {
    pub registry: Registry,
    pub labels: LabelSets,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram>,
    pub ttft: Family<LatencyLabels, Histogram>,
    pub errors: Family<ErrorLabels, Counter>,
    pub attempts: Family<AttemptLabels, Counter>,
    pub stream_resumes: Family<ResumeLabels, Counter>,
    pub declines: Family<DeclineLabels, Counter>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost: Family<SpendLabels, CounterF64>,
    /// What prompt caching saved (README "Prompt caching"); a gauge because a cache write
    /// costs more than plain input until it is read.
    pub cache_saved: Family<SpendLabels, GaugeF64>,
    /// Attempts whose reported usage was beyond the request's bounds (`outcome::UsageBounds`).
    pub usage_clamped: Family<CloudLabels, Counter>,
    /// 1 while a cloud is drained.
    pub cloud_drained: Family<CloudLabels, Gauge>,
    /// 0 closed, 1 half-open, 2 open.
    pub cloud_breaker: Family<CloudLabels, Gauge>,
    pub budget_remaining: Family<BudgetLabels, GaugeF64>,
    pub budget_limit: Family<BudgetLabels, GaugeF64>,
    pub key_budgets: Family<KeyBudgetLabels, Gauge>,
    pub rate_limited: Family<RateLimitLabels, Counter>,
    pub queue_depth: Family<QueueLabels, Gauge>,
    pub queue_flush: Family<QueueLabels, Histogram>,
    pub queue_spilled: Family<QueueLabels, Gauge>,
    pub queue_write_errors: Family<QueueLabels, Gauge>,
    pub store_degraded: Gauge,
    /// Tasks alive in the gateway's runtime: flat when idle, or something leaks (the
    /// chaos harness's scenario 5 reads it before and after 1,000 dropped streams).
    pub tokio_tasks: Gauge,
    ledger: OnceLock<Arc<anycloud_ledger::LedgerWriter>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~65 s, doubling.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn flush_histogram() -> Histogram {
    // 0.1 ms … ~3.3 s: a batch commit is a single transaction.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    pub fn new(config: &Config) -> Metrics {
        let mut registry = Registry::with_prefix("anycloud");
        let m = Metrics {
            registry: Registry::default(),
            labels: LabelSets::from_config(config),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            ttft: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            errors: Family::default(),
            attempts: Family::default(),
            stream_resumes: Family::default(),
            declines: Family::default(),
            tokens: Family::default(),
            cost: Family::default(),
            cache_saved: Family::default(),
            usage_clamped: Family::default(),
            cloud_drained: Family::default(),
            cloud_breaker: Family::default(),
            budget_remaining: Family::default(),
            budget_limit: Family::default(),
            key_budgets: Family::default(),
            rate_limited: Family::default(),
            queue_depth: Family::default(),
            queue_flush: Family::new_with_constructor(flush_histogram as fn() -> Histogram),
            queue_spilled: Family::default(),
            queue_write_errors: Family::default(),
            store_degraded: Gauge::default(),
            tokio_tasks: Gauge::default(),
            ledger: OnceLock::new(),
        };
        let r = &mut registry;
        r.register(
            "requests",
            "Client requests by API, serving cloud, model and status",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time from request to its end (a stream's last event), by API, cloud and model",
            m.latency.clone(),
        );
        r.register(
            "time_to_first_token_seconds",
            "Streams: time from request to the first event, by API, cloud and model",
            m.ttft.clone(),
        );
        r.register(
            "errors",
            "Client-visible errors by API, cloud, model, kind and status",
            m.errors.clone(),
        );
        r.register(
            "upstream_attempts",
            "Upstream attempts by cloud and outcome (ok or a reason code)",
            m.attempts.clone(),
        );
        r.register(
            "stream_resumes",
            "Interrupted streams by the cloud that failed, the cloud that continued them and the outcome",
            m.stream_resumes.clone(),
        );
        r.register(
            "route_declines",
            "Clouds skipped by routing, by cloud and reason",
            m.declines.clone(),
        );
        r.register(
            "tokens",
            "Tokens by cloud, model, tenant and kind (input, output, cached (cache reads), cache_write, reasoning); cached / input is the cache hit ratio",
            m.tokens.clone(),
        );
        r.register(
            "cache_saved_usd",
            "What prompt caching saved in USD (the same tokens uncached, less their cost), by cloud, model and tenant",
            m.cache_saved.clone(),
        );
        r.register(
            "cost_usd",
            "Spend in USD at the deployments' prices, by cloud, model and tenant",
            m.cost.clone(),
        );
        r.register(
            "usage_clamped",
            "Attempts whose reported usage exceeded the request's bounds and was clamped for billing, by cloud",
            m.usage_clamped.clone(),
        );
        for c in &config.clouds {
            // Present at 0 from the start, so an alert can watch it before the first clamp.
            let _ = m.usage_clamped.get_or_create(&CloudLabels {
                cloud: c.name.clone(),
            });
        }
        r.register(
            "cloud_drained",
            "1 while the cloud is drained by the kill switch",
            m.cloud_drained.clone(),
        );
        r.register(
            "cloud_breaker_state",
            "Circuit breaker per cloud: 0 closed, 1 half-open, 2 open",
            m.cloud_breaker.clone(),
        );
        r.register(
            "budget_remaining_usd",
            "USD left in a configured tenant budget's current period (after in-flight reservations)",
            m.budget_remaining.clone(),
        );
        r.register(
            "budget_limit_usd",
            "A configured tenant budget per period",
            m.budget_limit.clone(),
        );
        r.register(
            "key_budgets",
            "Key budgets seen this period, by state (ok or exhausted)",
            m.key_budgets.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by a rate limit, by scope (tenant or key) and limit (requests or tokens)",
            m.rate_limited.clone(),
        );
        r.register(
            "queue_depth",
            "Records waiting in a background writer (ledger, audit, budget_spend)",
            m.queue_depth.clone(),
        );
        r.register(
            "queue_flush_seconds",
            "Time to write one batch of a background writer",
            m.queue_flush.clone(),
        );
        r.register(
            "queue_spilled",
            "Records of a background writer waiting in its spill file (store down)",
            m.queue_spilled.clone(),
        );
        r.register(
            "queue_write_errors",
            "Failed batch writes of a background writer since start (each retried)",
            m.queue_write_errors.clone(),
        );
        r.register(
            "store_degraded",
            "1 while store writes fail or a spilled backlog waits, else 0",
            m.store_degraded.clone(),
        );
        r.register(
            "tokio_alive_tasks",
            "Tasks alive in the gateway's async runtime (requests, streams, background writers)",
            m.tokio_tasks.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Exposes the ledger writer's queue depth and batch commit times.
    pub fn watch_ledger(&self, writer: Arc<anycloud_ledger::LedgerWriter>) {
        let hist = self
            .queue_flush
            .get_or_create(&QueueLabels { queue: "ledger" })
            .clone();
        writer.on_flush(Arc::new(move |took: Duration| {
            hist.observe(took.as_secs_f64())
        }));
        let _ = self.ledger.set(writer);
    }

    /// A hook for a batch writer's commit times (the governance crate's queues).
    pub fn flush_observer(&self, queue: &'static str) -> anycloud_store::spool::FlushHook {
        let hist = self
            .queue_flush
            .get_or_create(&QueueLabels { queue })
            .clone();
        Arc::new(move |took: Duration| hist.observe(took.as_secs_f64()))
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

    /// Refreshes budget and queue gauges right before a scrape (`tenants`: the
    /// configured ones, whose budgets have series).
    pub fn observe_governance(&self, tenants: &[TenantConfig], g: &Governance) {
        let budgets = &g.budgets;
        for t in tenants {
            let Some(b) = t.budget else { continue };
            let (spent, reserved) = budgets.usage(&format!("tenant:{}", t.name), b.period);
            let labels = BudgetLabels {
                tenant: self.labels.tenant(&t.name),
                period: period_label(b.period),
            };
            self.budget_limit.get_or_create(&labels).set(b.usd);
            self.budget_remaining
                .get_or_create(&labels)
                .set(b.usd - spent - reserved);
        }
        let (ok, exhausted) = budgets.key_budget_counts();
        self.key_budgets
            .get_or_create(&KeyBudgetLabels { state: "ok" })
            .set(ok as i64);
        self.key_budgets
            .get_or_create(&KeyBudgetLabels { state: "exhausted" })
            .set(exhausted as i64);
        for q in g.bookkeeping.gauges() {
            let st = q.stats();
            let queue = q.name();
            let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.queue_depth
                .get_or_create(&QueueLabels { queue })
                .set(gauge(st.pending));
            self.queue_spilled
                .get_or_create(&QueueLabels { queue })
                .set(gauge(st.on_disk));
            self.queue_write_errors
                .get_or_create(&QueueLabels { queue })
                .set(gauge(st.write_errors));
        }
        self.store_degraded
            .set(i64::from(g.bookkeeping.health() != Health::Ok));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            self.tokio_tasks
                .set(i64::try_from(rt.metrics().num_alive_tasks()).unwrap_or(i64::MAX));
        }
    }

    /// Counts admission's refusals by a rate limit (`anycloud_rate_limited`).
    pub fn refused(&self, r: &Refusal) {
        if let Refusal::RateLimited(l) = r {
            self.rate_limited
                .get_or_create(&RateLimitLabels {
                    scope: l.scope,
                    limit: l.kind,
                })
                .inc();
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

fn period_label(p: BudgetPeriod) -> &'static str {
    match p {
        BudgetPeriod::Day => "day",
        BudgetPeriod::Month => "month",
        BudgetPeriod::Total => "total",
    }
}

/// Per-request series, from the one place every request ends.
impl OutcomeSink for Metrics {
    fn record(&self, o: &RequestOutcome) {
        for a in o.attempts.iter().filter(|a| a.reported_usage.is_some()) {
            self.usage_clamped
                .get_or_create(&CloudLabels {
                    cloud: a.cloud.clone(),
                })
                .inc();
        }
        let model = self.labels.model(&o.model);
        let cloud = self.labels.cloud(o.cloud());
        let tenant = self.labels.tenant(&o.tenant);
        self.requests
            .get_or_create(&RequestLabels {
                api: o.api,
                cloud: cloud.clone(),
                model: model.clone(),
                status: o.status,
            })
            .inc();
        let latency = LatencyLabels {
            api: o.api,
            cloud,
            model: model.clone(),
        };
        self.latency
            .get_or_create(&latency)
            .observe(o.latency_ms as f64 / 1000.0);
        if let Some(ttft) = o
            .attempts
            .iter()
            .rev()
            .find(|a| a.outcome == "ok")
            .and_then(|a| a.ttft_ms)
        {
            self.ttft
                .get_or_create(&latency)
                .observe(ttft as f64 / 1000.0);
        }
        for a in &o.attempts {
            let Some(u) = a.usage else { continue };
            let cloud = self.labels.cloud(Some(&a.cloud));
            for (kind, n) in [
                ("input", u.input_tokens),
                ("output", u.output_tokens),
                ("cached", u.cached_input_tokens),
                ("cache_write", u.cache_write_tokens),
                ("reasoning", u.reasoning_tokens),
            ] {
                if n > 0 {
                    self.tokens
                        .get_or_create(&TokenLabels {
                            cloud: cloud.clone(),
                            model: model.clone(),
                            tenant: tenant.clone(),
                            kind,
                        })
                        .inc_by(n);
                }
            }
            let spend = SpendLabels {
                cloud,
                model: model.clone(),
                tenant: tenant.clone(),
            };
            // A series for every deployment that prices caching, from its first request
            // (0 until something is cached); none for the others.
            if a.price != a.price.uncached() {
                let saved = a.price.uncached().cost(&u) - a.price.cost(&u);
                self.cache_saved.get_or_create(&spend).inc_by(saved);
            }
            let cost = a.cost_usd();
            if cost > 0.0 {
                self.cost.get_or_create(&spend).inc_by(cost);
            }
        }
    }
}

// --- Redis (shared state across instances) -------------------------------------------

pub use anycloud_governance::redis_metrics::{FallbackLabels, RedisMetrics};

impl Metrics {
    /// Registers the Redis series (only when `store.redis_url` is set, so a deployment
    /// without Redis shows no `anycloud_redis_up 0`).
    pub fn register_redis(&mut self) -> RedisMetrics {
        RedisMetrics::register(&mut self.registry)
    }

    /// Only with `[store.content]`: content writes by the jurisdiction they went to.
    pub fn register_content(&mut self) -> Family<ContentLabels, Counter> {
        let writes = Family::<ContentLabels, Counter>::default();
        self.registry.register(
            "content_writes",
            "Stored responses and captures written, by the jurisdiction of their content store (only with [store.content])",
            writes.clone(),
        );
        writes
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContentLabels {
    /// A jurisdiction of `[store.content]`.
    pub jurisdiction: String,
    /// `response` or `capture`.
    pub kind: &'static str,
}
