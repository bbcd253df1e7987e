//! Live per-cloud state the router reads and the dispatcher writes: the
//! drain flag (kill switch), the circuit breaker, the EWMA of time to first
//! byte, spend per day (for the `commitment` strategy: loaded from the ledger
//! at start, then fed by every finished request) and the gateway-wide retry
//! token bucket.
//!
//! The map of clouds is fixed at start. Drain flags and the EWMA are
//! atomics; each breaker sits behind a std `Mutex` held only for a few
//! field updates, never across an await.
//!
//! Breaker states: *closed* (traffic flows); *open* after
//! `consecutive_failures` failures in a row, an error rate of at least
//! `error_rate` over the last `window` attempts (once `min_requests` were
//! seen), or a 429/503 carrying `retry-after` (open for that long, capped by
//! `max_retry_after_ms`); after `cool_down_ms` (or the retry-after) it is
//! *half-open*: exactly one request is let through as a probe — success
//! closes it, failure opens it again.

use anycloud_config::BreakerConfig;
use anycloud_router::{CloudState, SpendSource};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Weight of the newest sample in the latency EWMA.
const EWMA_ALPHA: f64 = 0.3;
/// Cap on stored retry tokens, so a long calm period cannot bank enough
/// retries to amplify the next outage.
const MAX_RETRY_TOKENS: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Breaker {
    /// `Some` while open or half-open: when the open period ends.
    open_until: Option<Instant>,
    /// Wall-clock twin of `open_until`, for the admin API.
    open_until_wall: Option<chrono::DateTime<chrono::Utc>>,
    /// A half-open probe is out. Every attempt ends in `record_success`,
    /// `record_failure` or `release_probe` (dispatch's `Flying` guard releases
    /// attempts that were dropped), so this cannot stick.
    probe_in_flight: bool,
    consecutive: u32,
    /// Recent outcomes, true = failure, newest last.
    recent: VecDeque<bool>,
}

impl Breaker {
    fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(t) if now < t => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    fn error_rate(&self) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        self.recent.iter().filter(|f| **f).count() as f64 / self.recent.len() as f64
    }

    fn open_for(&mut self, d: Duration) {
        let now = Instant::now();
        let until = now + d;
        // Never shorten an open period already in force.
        if self.open_until.is_some_and(|t| t > until) {
            return;
        }
        self.open_until = Some(until);
        self.open_until_wall = chrono::Duration::from_std(d)
            .ok()
            .map(|d| chrono::Utc::now() + d);
        self.probe_in_flight = false;
    }
}

#[derive(Debug)]
struct Cloud {
    drained: AtomicBool,
    /// f64 bits of the EWMA in ms; `u64::MAX` = unmeasured.
    ewma_bits: AtomicU64,
    breaker: Mutex<Breaker>,
    spend: Mutex<BTreeMap<NaiveDate, f64>>,
}

/// A cloud's state as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CloudSnapshot {
    /// Drained by the kill switch: no new request is sent to it.
    pub drained: bool,
    pub breaker: BreakerState,
    /// When an open breaker lets a probe through (RFC 3339), `null` when closed.
    pub opened_until: Option<String>,
    /// Failed share of the recent attempts (0 to 1).
    pub error_rate: f64,
    pub recent_attempts: usize,
    pub consecutive_failures: u32,
    /// Smoothed latency of successful attempts; `null` before the first.
    pub ewma_latency_ms: Option<f64>,
}

#[derive(Debug)]
pub struct CloudStates {
    clouds: HashMap<String, Cloud>,
    config: BreakerConfig,
    retry_tokens: Mutex<f64>,
}

impl Default for CloudStates {
    fn default() -> Self {
        CloudStates::new([])
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CloudStates {
    pub fn new<'a>(clouds: impl IntoIterator<Item = &'a str>) -> CloudStates {
        CloudStates::with_config(clouds, BreakerConfig::default())
    }

    pub fn with_config<'a>(
        clouds: impl IntoIterator<Item = &'a str>,
        config: BreakerConfig,
    ) -> CloudStates {
        CloudStates {
            clouds: clouds
                .into_iter()
                .map(|c| {
                    (
                        c.to_string(),
                        Cloud {
                            drained: AtomicBool::new(false),
                            ewma_bits: AtomicU64::new(u64::MAX),
                            breaker: Mutex::new(Breaker {
                                open_until: None,
                                open_until_wall: None,
                                probe_in_flight: false,
                                consecutive: 0,
                                recent: VecDeque::new(),
                            }),
                            spend: Mutex::new(BTreeMap::new()),
                        },
                    )
                })
                .collect(),
            config,
            retry_tokens: Mutex::new(MAX_RETRY_TOKENS),
        }
    }

    /// The drain flag (same as `CloudState::is_drained`, without the trait).
    pub fn is_drained_now(&self, cloud: &str) -> bool {
        CloudState::is_drained(self, cloud)
    }

    /// Every cloud's name (in no particular order).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.clouds.keys().map(String::as_str)
    }

    pub fn contains(&self, cloud: &str) -> bool {
        self.clouds.contains_key(cloud)
    }

    /// Sets the drain flag; false if the cloud is unknown.
    pub fn set_drained(&self, cloud: &str, drained: bool) -> bool {
        match self.clouds.get(cloud) {
            Some(c) => {
                c.drained.store(drained, Ordering::Release);
                true
            }
            None => false,
        }
    }

    pub fn breaker_state(&self, cloud: &str) -> BreakerState {
        self.clouds.get(cloud).map_or(BreakerState::Closed, |c| {
            lock(&c.breaker).state(Instant::now())
        })
    }

    /// Called right before an attempt: false when the cloud must not be
    /// tried now (drained, open, or half-open with its probe already out).
    /// In half-open state the caller that gets `true` is the probe.
    pub fn admit(&self, cloud: &str) -> bool {
        let Some(c) = self.clouds.get(cloud) else {
            return true;
        };
        if c.drained.load(Ordering::Acquire) {
            return false;
        }
        let mut b = lock(&c.breaker);
        match b.state(Instant::now()) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if b.probe_in_flight => false,
            BreakerState::HalfOpen => {
                b.probe_in_flight = true;
                true
            }
        }
    }

    /// An attempt succeeded after `ttfb` (time to first byte).
    pub fn record_success(&self, cloud: &str, ttfb: Duration) {
        let Some(c) = self.clouds.get(cloud) else {
            return;
        };
        let ms = ttfb.as_secs_f64() * 1000.0;
        let old = c.ewma_bits.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            ms
        } else {
            EWMA_ALPHA * ms + (1.0 - EWMA_ALPHA) * f64::from_bits(old)
        };
        // A lost race only drops one sample; no need for a CAS loop.
        c.ewma_bits.store(new.to_bits(), Ordering::Relaxed);
        let mut b = lock(&c.breaker);
        b.consecutive = 0;
        b.open_until = None;
        b.open_until_wall = None;
        b.probe_in_flight = false;
        self.push_outcome(&mut b, false);
    }

    /// An attempt failed in a way that counts against the cloud (not a
    /// client error). `retry_after` is set for a 429/503 that carried one.
    pub fn record_failure(&self, cloud: &str, retry_after: Option<Duration>) {
        let Some(c) = self.clouds.get(cloud) else {
            return;
        };
        let cfg = self.config;
        let mut b = lock(&c.breaker);
        b.consecutive = b.consecutive.saturating_add(1);
        let half_open_probe = b.probe_in_flight;
        self.push_outcome(&mut b, true);
        let rate_trips =
            b.recent.len() >= cfg.min_requests as usize && b.error_rate() >= cfg.error_rate;
        let cool_down = Duration::from_millis(cfg.cool_down_ms);
        if let Some(ra) = retry_after {
            b.open_for(ra.min(Duration::from_millis(cfg.max_retry_after_ms)));
        } else if half_open_probe || b.consecutive >= cfg.consecutive_failures || rate_trips {
            b.open_for(cool_down);
        }
    }

    fn push_outcome(&self, b: &mut Breaker, failed: bool) {
        b.recent.push_back(failed);
        while b.recent.len() > self.config.window as usize {
            b.recent.pop_front();
        }
    }

    /// The attempt was abandoned (e.g. a hedge that lost): release a
    /// half-open probe slot without judging the cloud.
    pub fn release_probe(&self, cloud: &str) {
        if let Some(c) = self.clouds.get(cloud) {
            lock(&c.breaker).probe_in_flight = false;
        }
    }

    pub fn snapshot(&self, cloud: &str) -> Option<CloudSnapshot> {
        let c = self.clouds.get(cloud)?;
        let b = lock(&c.breaker);
        let state = b.state(Instant::now());
        Some(CloudSnapshot {
            drained: c.drained.load(Ordering::Acquire),
            breaker: state,
            opened_until: match state {
                BreakerState::Closed => None,
                _ => b.open_until_wall.map(|t| t.to_rfc3339()),
            },
            error_rate: b.error_rate(),
            recent_attempts: b.recent.len(),
            consecutive_failures: b.consecutive,
            ewma_latency_ms: self.latency_ms(cloud),
        })
    }

    /// Adds spend on `date` for the `commitment` strategy: the ledger's days
    /// at start, then each served attempt.
    pub fn record_spend(&self, cloud: &str, date: NaiveDate, usd: f64) {
        if let Some(c) = self.clouds.get(cloud) {
            if usd.is_finite() && usd > 0.0 {
                *lock(&c.spend).entry(date).or_insert(0.0) += usd;
            }
        }
    }

    /// Retry token bucket: every request deposits `ratio` tokens.
    pub fn deposit_retry_tokens(&self, ratio: f64) {
        let mut t = lock(&self.retry_tokens);
        *t = (*t + ratio).min(MAX_RETRY_TOKENS);
    }

    /// Takes one retry token; false when the budget is spent.
    pub fn take_retry_token(&self) -> bool {
        let mut t = lock(&self.retry_tokens);
        if *t >= 1.0 {
            *t -= 1.0;
            true
        } else {
            false
        }
    }
}

impl CloudState for CloudStates {
    fn is_drained(&self, cloud: &str) -> bool {
        self.clouds
            .get(cloud)
            .is_some_and(|c| c.drained.load(Ordering::Acquire))
    }

    /// Open, or half-open with its one probe already in flight.
    fn is_breaker_open(&self, cloud: &str) -> bool {
        self.clouds.get(cloud).is_some_and(|c| {
            let b = lock(&c.breaker);
            match b.state(Instant::now()) {
                BreakerState::Closed => false,
                BreakerState::Open => true,
                BreakerState::HalfOpen => b.probe_in_flight,
            }
        })
    }

    fn latency_ms(&self, cloud: &str) -> Option<f64> {
        let bits = self.clouds.get(cloud)?.ewma_bits.load(Ordering::Relaxed);
        (bits != u64::MAX).then(|| f64::from_bits(bits))
    }
}

impl SpendSource for CloudStates {
    fn spent_usd(&self, cloud: &str, from: NaiveDate, to: NaiveDate) -> f64 {
        self.clouds.get(cloud).map_or(0.0, |c| {
            lock(&c.spend).range(from..to).map(|(_, v)| *v).sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states() -> CloudStates {
        CloudStates::with_config(
            ["a"],
            BreakerConfig {
                consecutive_failures: 3,
                error_rate: 0.9,
                window: 10,
                min_requests: 10,
                cool_down_ms: 50,
                max_retry_after_ms: 1_000,
            },
        )
    }

    #[test]
    fn opens_after_consecutive_failures_then_half_open_single_probe() {
        let s = states();
        s.record_failure("a", None);
        s.record_failure("a", None);
        assert!(!s.is_breaker_open("a"));
        s.record_failure("a", None);
        assert!(s.is_breaker_open("a"));
        assert!(!s.admit("a"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(s.breaker_state("a"), BreakerState::HalfOpen);
        assert!(s.admit("a"), "one probe");
        assert!(!s.admit("a"), "only one probe");
        s.record_failure("a", None);
        assert_eq!(
            s.breaker_state("a"),
            BreakerState::Open,
            "failed probe reopens"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.admit("a"));
        s.record_success("a", Duration::from_millis(5));
        assert_eq!(s.breaker_state("a"), BreakerState::Closed);
    }

    #[test]
    fn retry_after_opens_for_that_long_capped() {
        let s = states();
        s.record_failure("a", Some(Duration::from_secs(3600)));
        let snap = s.snapshot("a").unwrap_or_else(|| unreachable!());
        assert_eq!(snap.breaker, BreakerState::Open);
        assert!(snap.opened_until.is_some());
    }

    #[test]
    fn ewma_and_spend() {
        let s = states();
        assert_eq!(s.latency_ms("a"), None);
        s.record_success("a", Duration::from_millis(100));
        s.record_success("a", Duration::from_millis(200));
        let v = s.latency_ms("a").unwrap_or_default();
        assert!((v - 130.0).abs() < 1.0, "{v}");
        let d = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap_or_default();
        s.record_spend("a", d, 2.5);
        assert_eq!(s.spent_usd("a", d, d.succ_opt().unwrap_or(d)), 2.5);
        assert_eq!(
            s.spent_usd("a", d.succ_opt().unwrap_or(d), d.succ_opt().unwrap_or(d)),
            0.0
        );
    }
}

/// Feeds [`CloudStates::record_spend`] from finished requests: the cost of
/// every attempt that served, whatever the ingress API, streams included.
#[derive(Debug)]
pub struct SpendSink(pub std::sync::Arc<CloudStates>);

impl crate::outcome::OutcomeSink for SpendSink {
    fn record(&self, outcome: &crate::outcome::RequestOutcome) {
        for a in outcome.attempts.iter().filter(|a| a.usage.is_some()) {
            self.0
                .record_spend(&a.cloud, a.at.date_naive(), a.cost_usd());
        }
    }
}
