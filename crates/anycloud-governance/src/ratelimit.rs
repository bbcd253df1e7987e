//! Requests and tokens per minute, per tenant and per key: GCRA (the generic cell rate
//! algorithm).
//!
//! Hand-written rather than `governor` because (1) the limits differ per tenant and per key
//! and change at run time through the admin API, while a `governor` limiter fixes its
//! quota at construction; (2) OpenAI-style `x-ratelimit-remaining-*` / `-reset-*` headers
//! need the remaining capacity after every decision, which GCRA gives directly from the
//! theoretical arrival time; (3) it runs on `tokio::time::Instant`, so tests use tokio's
//! paused clock instead of sleeping. The algorithm is a dozen lines.
//!
//! GCRA with limit `L` per period `P`: the emission interval is `T = P / L`; each scope
//! keeps its theoretical arrival time `tat`. A request of cost `n` at `now` is allowed iff
//! `max(tat, now) + n·T − now ≤ P`, which then becomes the new `tat`. This admits a burst
//! of `L` and then a steady `L` per `P`, with no window-edge double bursts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub const PERIOD: Duration = Duration::from_secs(60);
/// The most one request may move a scope's clock ahead.
const MAX_STEP: Duration = Duration::from_secs(86_400);

/// What one limit says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    pub limit: u64,
    pub remaining: u64,
    /// Until the scope is back to its full capacity.
    pub reset: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed(LimitState),
    /// Refused; retry after `retry_after`.
    Limited {
        state: LimitState,
        retry_after: Duration,
    },
}

#[derive(Debug, Default)]
pub struct Gcra {
    // std Mutex: held for a map lookup and a little arithmetic, never across an await.
    tats: Mutex<HashMap<String, Instant>>,
}

impl Gcra {
    /// Checks without spending: would `cost` be allowed for `scope` at `limit` per minute?
    pub fn peek(&self, scope: &str, limit: u64, cost: u64) -> Decision {
        self.decide(scope, limit, cost, false)
    }

    /// Spends `cost` if allowed.
    pub fn take(&self, scope: &str, limit: u64, cost: u64) -> Decision {
        self.decide(scope, limit, cost, true)
    }

    /// Moves `scope`'s theoretical arrival time by `delta` tokens (negative: a refund),
    /// once a request's real cost is known. A refund never goes below "full now".
    pub fn adjust(&self, scope: &str, limit: u64, delta: i64) {
        let t = PERIOD.as_secs_f64() / limit.max(1) as f64;
        let shift = Duration::from_secs_f64(t * delta.unsigned_abs() as f64);
        let now = Instant::now();
        let mut map = match self.tats.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let tat = map.get(scope).copied().unwrap_or(now).max(now);
        let new_tat = if delta >= 0 {
            tat + shift
        } else {
            tat.checked_sub(shift).unwrap_or(now).max(now)
        };
        if new_tat > now {
            map.insert(scope.to_string(), new_tat);
        } else {
            map.remove(scope);
        }
    }

    fn decide(&self, scope: &str, limit: u64, cost: u64, commit: bool) -> Decision {
        let limit = limit.max(1);
        let now = Instant::now();
        let t = PERIOD.as_secs_f64() / limit as f64;
        let mut map = match self.tats.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if map.len() > 100_000 {
            map.retain(|_, tat| *tat > now);
        }
        let tat = map.get(scope).copied().unwrap_or(now).max(now);
        // A cost of billions of tokens (a client's `max_tokens`) must not overflow the
        // duration or the instant: anything beyond a day is refused anyway.
        let step = Duration::try_from_secs_f64(t * cost as f64)
            .unwrap_or(MAX_STEP)
            .min(MAX_STEP);
        let new_tat = tat + step;
        let ahead = new_tat - now;
        if ahead > PERIOD {
            let used = tat - now;
            let retry_after = ahead - PERIOD;
            return Decision::Limited {
                state: state(limit, t, used),
                retry_after,
            };
        }
        if commit {
            map.insert(scope.to_string(), new_tat);
        }
        Decision::Allowed(state(limit, t, ahead))
    }
}

/// What a scope with `limit` per minute has left when its `tat` is `used` ahead of now
/// (also for the shared limiter, which gets `used` from Redis).
pub fn state_after(limit: u64, used: Duration) -> LimitState {
    let limit = limit.max(1);
    state(limit, PERIOD.as_secs_f64() / limit as f64, used)
}

/// Remaining capacity when the scope's `tat` is `used` ahead of now.
fn state(limit: u64, t: f64, used: Duration) -> LimitState {
    let free = (PERIOD.as_secs_f64() - used.as_secs_f64()).max(0.0);
    LimitState {
        limit,
        remaining: ((free / t) + 1e-9).floor().min(limit as f64) as u64,
        reset: used,
    }
}

/// OpenAI's duration format for `x-ratelimit-reset-*`: `1s`, `6m0s`, `0.5s`, `20ms`.
pub fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        let s = format!("{:.3}", secs);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return format!("{s}s");
    }
    let whole = d.as_secs();
    format!("{}m{}s", whole / 60, whole % 60)
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_cost_of_u64_max_tokens_is_refused_not_a_panic() {
        let g = Gcra::default();
        assert!(matches!(g.take("t", 1, u64::MAX), Decision::Limited { .. }));
        // The whole minute's allowance at once: allowed, and that scope is then full.
        assert!(matches!(
            g.take("u", u64::MAX, u64::MAX),
            Decision::Allowed(_)
        ));
        assert!(matches!(g.take("v", 6, 1), Decision::Allowed(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let g = Gcra::default();
        // 6 per minute: a burst of 6, then one every 10 s.
        for i in 0..6 {
            match g.take("t", 6, 1) {
                Decision::Allowed(s) => assert_eq!(s.remaining, 5 - i),
                other => panic!("request {i}: {other:?}"),
            }
        }
        match g.take("t", 6, 1) {
            Decision::Limited { retry_after, state } => {
                assert_eq!(retry_after, Duration::from_secs(10));
                assert_eq!(state.remaining, 0);
                assert_eq!(state.reset, Duration::from_secs(60));
            }
            other => panic!("7th: {other:?}"),
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(matches!(g.take("t", 6, 1), Decision::Allowed(_)));
        assert!(matches!(g.take("t", 6, 1), Decision::Limited { .. }));
        // Other scopes are independent.
        assert!(matches!(g.take("u", 6, 1), Decision::Allowed(_)));
        // After a full period the scope is back to its full burst.
        tokio::time::advance(PERIOD).await;
        match g.peek("t", 6, 1) {
            Decision::Allowed(s) => assert_eq!(s.remaining, 5),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn token_costs_and_oversized_requests() {
        let g = Gcra::default();
        assert!(matches!(g.take("k", 1000, 600), Decision::Allowed(s) if s.remaining == 400));
        match g.take("k", 1000, 500) {
            Decision::Limited { retry_after, .. } => {
                assert_eq!(retry_after.as_millis(), 6000)
            }
            other => panic!("{other:?}"),
        }
        // A refused request spends nothing.
        assert!(matches!(g.take("k", 1000, 400), Decision::Allowed(s) if s.remaining == 0));
    }

    #[tokio::test(start_paused = true)]
    async fn adjusting_to_the_real_cost_refunds_or_charges_the_difference() {
        let g = Gcra::default();
        // Admitted at an estimate of 800 of 1000 tokens; the request used 200.
        assert!(matches!(g.take("k", 1000, 800), Decision::Allowed(s) if s.remaining == 200));
        g.adjust("k", 1000, -600);
        assert!(matches!(g.peek("k", 1000, 1), Decision::Allowed(s) if s.remaining == 799));
        // A request that used more than admitted is charged the rest.
        g.adjust("k", 1000, 500);
        assert!(matches!(g.peek("k", 1000, 1), Decision::Allowed(s) if s.remaining == 299));
        // A refund never makes room beyond the full limit.
        g.adjust("k", 1000, -5000);
        assert!(matches!(g.peek("k", 1000, 1), Decision::Allowed(s) if s.remaining == 999));
    }

    #[test]
    fn reset_format_matches_openai() {
        assert_eq!(format_reset(Duration::from_millis(20)), "20ms");
        assert_eq!(format_reset(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_reset(Duration::from_secs(1)), "1s");
        assert_eq!(format_reset(Duration::from_secs(360)), "6m0s");
    }
}
