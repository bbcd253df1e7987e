//! The rate limiter the request path calls: shared through Redis when `store.redis_url`
//! is set and Redis answers ([`super::redis_ratelimit`]), else this instance's own GCRA
//! ([`super::ratelimit`]).
//!
//! While Redis is configured but unreachable, `store.redis_down.rate_limits` decides:
//! `local` (default) enforces every limit on this instance's own traffic, so N instances
//! admit up to N times the limit between them; `open` admits everything. Each such
//! decision is counted in `anycloud_redis_fallbacks_total{feature="rate_limits"}`.

use super::ratelimit::{Decision, Gcra, LimitState};
use super::redis_ratelimit::SharedGcra;
use crate::shared::link::Feature;
use anycloud_config::RateLimitsWhenDown;
use std::time::Duration;

/// One limit a request falls under.
#[derive(Debug, Clone)]
pub struct Check {
    /// `tenant:<name>:rpm`, `key:<id>:tpm`, …
    pub scope: String,
    /// Per minute.
    pub limit: u64,
    /// What this request spends (1 request, or its token estimate).
    pub cost: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every limit allowed it and was spent; one state per check (`None` when no limit
    /// was applied: the `open` fallback).
    Allowed(Vec<Option<LimitState>>),
    /// `checks[index]` refused it; nothing was spent.
    Limited {
        index: usize,
        state: LimitState,
        retry_after: Duration,
    },
}

#[derive(Debug, Default)]
pub struct RateLimiter {
    local: Gcra,
    shared: Option<SharedGcra>,
}

impl RateLimiter {
    pub fn new(shared: Option<SharedGcra>) -> RateLimiter {
        RateLimiter {
            local: Gcra::default(),
            shared,
        }
    }

    /// Checks every limit and spends them all, or none.
    pub async fn check(&self, checks: &[Check]) -> Verdict {
        let Some(shared) = &self.shared else {
            return self.local(checks);
        };
        if let Some(v) = shared.check(checks).await {
            return v;
        }
        let link = shared.link();
        match link.policy().rate_limits {
            RateLimitsWhenDown::Local => {
                link.count_fallback(Feature::RateLimits, "local");
                self.local(checks)
            }
            RateLimitsWhenDown::Open => {
                link.count_fallback(Feature::RateLimits, "open");
                Verdict::Allowed(vec![None; checks.len()])
            }
        }
    }

    /// This instance's GCRA: peek at every limit first, so a refusal spends nothing.
    fn local(&self, checks: &[Check]) -> Verdict {
        for (index, c) in checks.iter().enumerate() {
            if let Decision::Limited { state, retry_after } =
                self.local.peek(&c.scope, c.limit, c.cost)
            {
                return Verdict::Limited {
                    index,
                    state,
                    retry_after,
                };
            }
        }
        let mut states = Vec::with_capacity(checks.len());
        for (index, c) in checks.iter().enumerate() {
            match self.local.take(&c.scope, c.limit, c.cost) {
                Decision::Allowed(s) => states.push(Some(s)),
                Decision::Limited { state, retry_after } => {
                    return Verdict::Limited {
                        index,
                        state,
                        retry_after,
                    }
                }
            }
        }
        Verdict::Allowed(states)
    }
}
