//! `[store]` of `anycloud.toml` (README "Configuration"): the database, Redis and what
//! happens while it is down, the bookkeeping queues and their spill files.

use secrecy::SecretString;
use serde::Deserialize;

/// `Debug` is written by hand: `url` may carry a PostgreSQL password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_store_url")]
    pub url: String,
    /// Shared rate limits, budget counters, drain state and revocations for several
    /// instances (`redis://` or `rediss://`). A secret: it may carry a password.
    pub redis_url: Option<SecretString>,
    /// Start of every Redis key and channel the gateway uses, so several deployments can
    /// share one Redis.
    #[serde(default = "default_redis_prefix")]
    pub redis_prefix: String,
    /// What each feature does while Redis is unreachable.
    #[serde(default)]
    pub redis_down: RedisDownPolicy,
    /// Apply pending schema migrations when the gateway starts (the default). With `false`,
    /// `serve` refuses to start while migrations are pending: run `anycloud migrate`.
    #[serde(default = "default_true")]
    pub auto_migrate: bool,
    /// `[store.content]`: where tenants' content (stored Responses, captured payloads)
    /// lives, one store URL per jurisdiction (README "Data residency at rest"). Empty: all
    /// content stays in the main store.
    #[serde(default)]
    pub content: std::collections::BTreeMap<String, String>,
    /// Where ledger, audit, budget-spend and capture records go while the store cannot
    /// take them (one append-only file per queue, replayed when it answers again). One
    /// directory per instance. Unset: records wait in memory only, up to `queue_bound`.
    #[serde(default)]
    pub spill_dir: Option<std::path::PathBuf>,
    /// Bytes each queue's spill file may hold before new requests are refused (503).
    #[serde(default = "default_spill_max_bytes")]
    pub spill_max_bytes: u64,
    /// Records each bookkeeping queue holds in memory before admission waits, then
    /// answers 503 with `retry-after`.
    #[serde(default = "default_queue_bound")]
    pub queue_bound: usize,
    /// How long a budget reservation held in Redis keeps its headroom when its request is
    /// never settled (its instance died): after this many ms the next reservation on that
    /// budget frees it (README "Shared state in Redis"). Unset: `server.request_timeout_ms`
    /// + 60 s, so a live request's reservation never expires under it.
    #[serde(default)]
    pub reservation_lease_ms: Option<u64>,
}

fn default_spill_max_bytes() -> u64 {
    1 << 30
}

fn default_queue_bound() -> usize {
    50_000
}

fn default_true() -> bool {
    true
}

fn default_redis_prefix() -> String {
    "anycloud:".into()
}

/// `[store.redis_down]`: per feature, the behaviour while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisDownPolicy {
    #[serde(default)]
    pub budgets: BudgetsWhenDown,
    #[serde(default)]
    pub rate_limits: RateLimitsWhenDown,
}

/// Budgets while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetsWhenDown {
    /// Fail closed: a request that falls under any budget gets 503 `budget_unavailable`;
    /// requests without a budget are served.
    #[default]
    Refuse,
    /// This instance's own counters, reloaded from the store's settled spend: every
    /// instance may spend what is left, so N instances can overshoot up to N times.
    Local,
}

/// Rate limits while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitsWhenDown {
    /// Each instance enforces the full limit on its own traffic (N instances: up to N×).
    #[default]
    Local,
    /// No rate limit at all until Redis is back.
    Open,
}

impl BudgetsWhenDown {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetsWhenDown::Refuse => "refuse",
            BudgetsWhenDown::Local => "local",
        }
    }
}

impl RateLimitsWhenDown {
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitsWhenDown::Local => "local",
            RateLimitsWhenDown::Open => "open",
        }
    }
}

fn default_store_url() -> String {
    "sqlite://anycloud.db".into()
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
            redis_url: None,
            redis_prefix: default_redis_prefix(),
            redis_down: RedisDownPolicy::default(),
            auto_migrate: true,
            content: Default::default(),
            spill_dir: None,
            spill_max_bytes: default_spill_max_bytes(),
            queue_bound: default_queue_bound(),
            reservation_lease_ms: None,
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("redis_url", &self.redis_url)
            .field("redis_prefix", &self.redis_prefix)
            .field("redis_down", &self.redis_down)
            .field("auto_migrate", &self.auto_migrate)
            .finish()
    }
}

/// A store URL fit for logs: its password (and any query, which may hold one too, as
/// `?password=`) replaced by `[REDACTED]`. Unparseable URLs are redacted whole.
pub fn redact_url(raw: &str) -> String {
    if raw.starts_with("sqlite:") {
        return raw.to_string();
    }
    let Ok(mut u) = url::Url::parse(raw) else {
        return "[REDACTED]".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("[REDACTED]"));
    }
    if u.query().is_some_and(|q| q.contains("password")) {
        u.set_query(Some("[REDACTED]"));
    }
    u.to_string()
}
