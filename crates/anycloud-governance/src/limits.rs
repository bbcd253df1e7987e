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
use crate::link::Feature;
use anycloud_config::RateLimitsWhenDown;
use std::collections::HashMap;
use std::sync::Mutex;
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
    /// Token limits spent at an estimate, by request id, until the request ends and
    /// [`RateLimiter::settle`] corrects them to its real usage. Bounded by the
    /// requests in flight (every admitted request ends in exactly one outcome).
    // std Mutex: an insert or a remove, never across an await.
    held: Mutex<HashMap<String, Vec<Check>>>,
}

impl RateLimiter {
    pub fn new(shared: Option<SharedGcra>) -> RateLimiter {
        RateLimiter {
            local: Gcra::default(),
            shared,
            held: Mutex::default(),
        }
    }

    /// Remembers the token limits `request_id` was charged at its estimate.
    pub fn hold(&self, request_id: &str, token_checks: Vec<Check>) {
        if token_checks.is_empty() {
            return;
        }
        if let Ok(mut m) = self.held.lock() {
            m.insert(request_id.to_string(), token_checks);
        }
    }

    /// The request ended having used `tokens`: charges or refunds each token limit the
    /// difference from its estimate. Called from an outcome sink: never blocks (the
    /// shared limiter's correction runs on its own task).
    pub fn settle(&self, request_id: &str, tokens: u64) {
        let Some(checks) = self.held.lock().ok().and_then(|mut m| m.remove(request_id)) else {
            return;
        };
        let shifts: Vec<(Check, i64)> = checks
            .into_iter()
            .map(|c| {
                let delta = tokens as i64 - c.cost as i64;
                (c, delta)
            })
            .filter(|(_, d)| *d != 0)
            .collect();
        if shifts.is_empty() {
            return;
        }
        let Some(shared) = self.shared.clone() else {
            for (c, d) in &shifts {
                self.local.adjust(&c.scope, c.limit, *d);
            }
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            // Redis down: left at the estimate (a fallback admission's local count
            // included), as every limit is while Redis is away.
            shared.adjust(&shifts).await;
        });
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
