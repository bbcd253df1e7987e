//! `[routing]` of `anycloud.toml` (README "Configuration"): the strategy, circuit
//! breakers and the retry budget.

use serde::Deserialize;

use crate::ModelConfig;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Config order.
    #[default]
    Priority,
    Weighted,
    Latency,
    Cost,
    Commitment,
}

/// `[routing]`: how candidates are ordered and how failures are handled.
/// Every key has a default, so the section may be left out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    /// Non-streaming requests only: after this long without an answer the
    /// next candidate is started in parallel and the first success wins.
    /// Absent = no hedging.
    pub hedge_after_ms: Option<u64>,
    /// Continue a stream interrupted after it sent text on another cloud that
    /// declares `prefill` (README "Streams that survive a cloud failing").
    /// Off by default; a model may override it.
    #[serde(default)]
    pub resume_streams: bool,
    /// Most continuations per request; absent = 1 (see [`RoutingConfig::resume_max`]).
    #[serde(rename = "resume_max")]
    pub resume_max_setting: Option<u32>,
}

impl RoutingConfig {
    /// Most continuations of one interrupted stream (default 1).
    pub fn resume_max(&self) -> u32 {
        self.resume_max_setting.unwrap_or(1)
    }

    /// Whether streams of `model` are resumed: the model's own setting, else the gateway's.
    pub fn resumes(&self, model: Option<&ModelConfig>) -> bool {
        model
            .and_then(|m| m.resume_streams)
            .unwrap_or(self.resume_streams)
    }

    /// How many continuations a stream of the model named `name` may have: `resume_max`
    /// when its streams are resumed, else 0. Admission reserves for them and the relay
    /// allows them: one answer for both.
    pub fn continuations(&self, models: &[ModelConfig], name: &str) -> u32 {
        if self.resumes(models.iter().find(|m| m.name == name)) {
            self.resume_max()
        } else {
            0
        }
    }
}

/// `[routing.breaker]`: per-cloud circuit breakers.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Open after this many consecutive failed attempts.
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// Open when the failure ratio over the last `window` attempts reaches
    /// this (0 < x <= 1), once at least `min_requests` were seen.
    #[serde(default = "default_error_rate")]
    pub error_rate: f64,
    #[serde(default = "default_window")]
    pub window: u32,
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// How long an opened breaker stays open before one probe is let through.
    #[serde(default = "default_cool_down")]
    pub cool_down_ms: u64,
    /// Upper bound on how long a cloud's `retry-after` may open its breaker.
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after_ms: u64,
}

fn default_consecutive_failures() -> u32 {
    5
}
fn default_error_rate() -> f64 {
    0.5
}
fn default_window() -> u32 {
    20
}
fn default_min_requests() -> u32 {
    10
}
fn default_cool_down() -> u64 {
    30_000
}
fn default_max_retry_after() -> u64 {
    300_000
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: default_consecutive_failures(),
            error_rate: default_error_rate(),
            window: default_window(),
            min_requests: default_min_requests(),
            cool_down_ms: default_cool_down(),
            max_retry_after_ms: default_max_retry_after(),
        }
    }
}

/// `[routing.retry]`: the retry budget and backoff.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Most upstream attempts one request may make (failover included).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Optional gateway-wide token bucket: each request earns this many
    /// retry tokens, each retry spends one (e.g. 0.2 = at most one retry
    /// per five requests in a sustained outage). Absent = unlimited.
    pub budget_ratio: Option<f64>,
    /// Backoff before retrying the same cloud (only when it is the last
    /// candidate): `base * 2^n` with full jitter, capped at `backoff_max_ms`.
    #[serde(default = "default_backoff_base")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
}

fn default_max_attempts() -> u32 {
    3
}
fn default_backoff_base() -> u64 {
    100
}
fn default_backoff_max() -> u64 {
    2_000
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_max_attempts(),
            budget_ratio: None,
            backoff_base_ms: default_backoff_base(),
            backoff_max_ms: default_backoff_max(),
        }
    }
}
