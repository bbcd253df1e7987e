//! The dashboard's own in-memory view of recent traffic, fed by an
//! [`OutcomeSink`] so every ingress API counts: per cloud, a ring of
//! 5-second buckets over the last 15 minutes (attempts, failed attempts and
//! a small latency histogram for p50/p99), and the last N route decisions.
//!
//! Independent of `/metrics` on purpose: Prometheus counters cannot answer
//! "what happened in the last 15 minutes" without a Prometheus server.
//! Recording takes one std `Mutex` per request for a few array increments,
//! never across an await; reads copy out what a panel needs.

use crate::outcome::{OutcomeSink, RequestOutcome};
use anycloud_router::reason::header_value;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Width of one time bucket.
pub const BUCKET_SECS: i64 = 5;
/// Buckets kept: 15 minutes.
pub const BUCKETS: usize = 180;
/// Route decisions kept.
pub const DECISIONS: usize = 50;

/// Upper bounds (ms) of the latency histogram's buckets; the last one is
/// open-ended. Roughly ×1.5 apart, so a percentile is within ~25%.
const LATENCY_BOUNDS_MS: [u64; 30] = [
    1,
    2,
    3,
    5,
    7,
    10,
    15,
    20,
    30,
    45,
    70,
    100,
    150,
    220,
    330,
    500,
    750,
    1_000,
    1_500,
    2_200,
    3_300,
    5_000,
    7_500,
    11_000,
    16_000,
    25_000,
    40_000,
    60_000,
    120_000,
    u64::MAX,
];

#[derive(Debug, Clone, Copy, Default)]
struct CloudBucket {
    attempts: u32,
    errors: u32,
    latency: [u32; LATENCY_BOUNDS_MS.len()],
}

#[derive(Debug, Clone)]
struct Slot {
    /// Bucket number (`unix seconds / BUCKET_SECS`) this slot holds.
    epoch: i64,
    clouds: Vec<CloudBucket>,
}

/// One finished request as the decisions panel shows it.
#[derive(Debug, Clone)]
pub struct DecisionRow {
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub api: &'static str,
    pub tenant: String,
    pub model: String,
    /// `x-anycloud-route` as the client saw it.
    pub route: String,
    pub cloud: Option<String>,
    pub status: u16,
    pub latency_ms: u64,
}

/// One cloud's series over the window, oldest bucket first.
#[derive(Debug, Clone)]
pub struct CloudSeries {
    pub cloud: String,
    pub attempts: Vec<u32>,
    pub errors: Vec<u32>,
    /// Per bucket; `None` where the bucket saw no successful attempt.
    pub p50_ms: Vec<Option<u64>>,
    pub p99_ms: Vec<Option<u64>>,
}

/// Totals over the whole window for one cloud (the scorecard).
#[derive(Debug, Clone, Default)]
pub struct CloudWindow {
    pub attempts: u64,
    pub errors: u64,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

impl CloudWindow {
    pub fn error_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.errors as f64 / self.attempts as f64)
    }
}

#[derive(Debug)]
struct Ring {
    slots: Vec<Slot>,
}

/// The recorder. Build it with the configured cloud names; attempts on
/// anything else are ignored (bounded memory whatever the traffic).
#[derive(Debug)]
pub struct Recorder {
    index: HashMap<String, usize>,
    names: Vec<String>,
    ring: Mutex<Ring>,
    /// Bucket number at start: charts of a young gateway span only its life.
    started: i64,
    decisions: Mutex<VecDeque<DecisionRow>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn epoch_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(BUCKET_SECS)
}

fn slot_of(epoch: i64) -> usize {
    epoch.rem_euclid(BUCKETS as i64) as usize
}

fn latency_bucket(ms: u64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(LATENCY_BOUNDS_MS.len() - 1)
}

/// The `q` quantile (0..1) of a histogram, as its bucket's upper bound
/// (the open last bucket reports the bound below it).
fn quantile(hist: &[u32; LATENCY_BOUNDS_MS.len()], q: f64) -> Option<u64> {
    let total: u64 = hist.iter().map(|c| u64::from(*c)).sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (i, c) in hist.iter().enumerate() {
        seen += u64::from(*c);
        if seen >= rank {
            let last = LATENCY_BOUNDS_MS.len() - 1;
            return Some(LATENCY_BOUNDS_MS[if i == last { last - 1 } else { i }]);
        }
    }
    None
}

impl Recorder {
    pub fn new<'a>(clouds: impl IntoIterator<Item = &'a str>) -> Recorder {
        let names: Vec<String> = clouds.into_iter().map(str::to_string).collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let empty = Slot {
            epoch: i64::MIN,
            clouds: vec![CloudBucket::default(); names.len()],
        };
        Recorder {
            started: epoch_of(Utc::now()),
            index,
            ring: Mutex::new(Ring {
                slots: vec![empty; BUCKETS],
            }),
            decisions: Mutex::new(VecDeque::with_capacity(DECISIONS)),
            names,
        }
    }

    pub fn clouds(&self) -> &[String] {
        &self.names
    }

    /// Counts one outcome at time `at` (split out so tests can pick the time).
    pub fn record_at(&self, outcome: &RequestOutcome, at: DateTime<Utc>) {
        let epoch = epoch_of(at);
        {
            let mut ring = lock(&self.ring);
            let slot = &mut ring.slots[slot_of(epoch)];
            if slot.epoch != epoch {
                slot.epoch = epoch;
                slot.clouds
                    .iter_mut()
                    .for_each(|c| *c = CloudBucket::default());
            }
            for a in &outcome.attempts {
                let Some(&i) = self.index.get(&a.cloud) else {
                    continue;
                };
                let b = &mut slot.clouds[i];
                b.attempts += 1;
                if a.outcome == "ok" {
                    b.latency[latency_bucket(a.latency_ms)] += 1;
                } else {
                    b.errors += 1;
                }
            }
        }
        let row = DecisionRow {
            at,
            request_id: outcome.request_id.clone(),
            api: outcome.api,
            tenant: outcome.tenant.clone(),
            model: outcome.model.clone(),
            route: header_value(&outcome.route),
            cloud: outcome.cloud().map(str::to_string),
            status: outcome.status,
            latency_ms: outcome.latency_ms,
        };
        let mut d = lock(&self.decisions);
        if d.len() == DECISIONS {
            d.pop_front();
        }
        d.push_back(row);
    }

    /// Copies out the live buckets of the window ending at `now`, oldest first
    /// (stale slots read as empty).
    fn window(&self, now: DateTime<Utc>, span: usize) -> Vec<Slot> {
        let end = epoch_of(now);
        let span = span.min(BUCKETS) as i64;
        let ring = lock(&self.ring);
        (0..span)
            .map(|k| {
                let epoch = end - (span - 1) + k;
                let s = &ring.slots[slot_of(epoch)];
                if s.epoch == epoch {
                    s.clone()
                } else {
                    Slot {
                        epoch,
                        clouds: vec![CloudBucket::default(); self.names.len()],
                    }
                }
            })
            .collect()
    }

    /// Buckets the charts span at `now`: the last 15 minutes, or the
    /// recorder's life so far (at least two minutes) when that is shorter,
    /// rounded up to a whole number of 30-second points.
    pub fn span(&self, now: DateTime<Utc>) -> usize {
        let lived = usize::try_from(epoch_of(now) - self.started + 1).unwrap_or(0);
        lived.clamp(24, BUCKETS).div_ceil(6) * 6
    }

    /// Per-cloud series over [`Recorder::span`] buckets, oldest first, with
    /// every `group` consecutive buckets merged into one point (`group`
    /// divides 6 for whole points; 1 = full resolution).
    pub fn series(&self, now: DateTime<Utc>, group: usize) -> Vec<CloudSeries> {
        let window = self.window(now, self.span(now));
        let group = group.max(1);
        self.names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut out = CloudSeries {
                    cloud: name.clone(),
                    attempts: Vec::new(),
                    errors: Vec::new(),
                    p50_ms: Vec::new(),
                    p99_ms: Vec::new(),
                };
                for chunk in window.chunks(group) {
                    let mut merged = CloudBucket::default();
                    for s in chunk {
                        let b = &s.clouds[i];
                        merged.attempts += b.attempts;
                        merged.errors += b.errors;
                        for (h, c) in merged.latency.iter_mut().zip(b.latency.iter()) {
                            *h += c;
                        }
                    }
                    out.attempts.push(merged.attempts);
                    out.errors.push(merged.errors);
                    out.p50_ms.push(quantile(&merged.latency, 0.5));
                    out.p99_ms.push(quantile(&merged.latency, 0.99));
                }
                out
            })
            .collect()
    }

    /// Totals per cloud over the whole window, in configured order.
    pub fn totals(&self, now: DateTime<Utc>) -> Vec<(String, CloudWindow)> {
        let window = self.window(now, BUCKETS);
        self.names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut hist = [0u32; LATENCY_BOUNDS_MS.len()];
                let mut w = CloudWindow::default();
                for s in &window {
                    let b = &s.clouds[i];
                    w.attempts += u64::from(b.attempts);
                    w.errors += u64::from(b.errors);
                    for (h, c) in hist.iter_mut().zip(b.latency.iter()) {
                        *h += c;
                    }
                }
                w.p50_ms = quantile(&hist, 0.5);
                w.p99_ms = quantile(&hist, 0.99);
                (name.clone(), w)
            })
            .collect()
    }

    /// The most recent route decisions, newest first.
    pub fn decisions(&self) -> Vec<DecisionRow> {
        lock(&self.decisions).iter().rev().cloned().collect()
    }
}

impl OutcomeSink for Recorder {
    fn record(&self, outcome: &RequestOutcome) {
        self.record_at(outcome, Utc::now());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::outcome::AttemptRecord;
    use anycloud_config::Price;
    use chrono::TimeZone;

    fn attempt(cloud: &str, outcome: &str, latency_ms: u64) -> AttemptRecord {
        AttemptRecord {
            at: Utc::now(),
            cloud: cloud.into(),
            deployment: "d".into(),
            price: Price::default(),
            outcome: outcome.into(),
            upstream_status: None,
            latency_ms,
            ttft_ms: None,
            usage: None,
            reported_usage: None,
            context_window: None,
            usage_estimated: false,
            reached_cloud: true,
        }
    }

    fn outcome(attempts: Vec<AttemptRecord>) -> RequestOutcome {
        RequestOutcome {
            request_id: "req_1".into(),
            at: Utc::now(),
            api: "chat_completions",
            tenant: "t".into(),
            key_id: "k".into(),
            model: "m".into(),
            route: vec![],
            needs: None,
            attempts,
            status: 200,
            latency_ms: 10,
            span: tracing::Span::none(),
        }
    }

    #[test]
    fn counts_attempts_errors_and_percentiles_per_cloud() {
        let mut r = Recorder::new(["a", "b"]);
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0).unwrap();
        r.started = epoch_of(t) - 1000;
        for ms in 1..=100 {
            r.record_at(&outcome(vec![attempt("a", "ok", ms)]), t);
        }
        r.record_at(
            &outcome(vec![
                attempt("a", "upstream_503", 5),
                attempt("b", "ok", 40),
            ]),
            t,
        );
        r.record_at(&outcome(vec![attempt("elsewhere", "ok", 1)]), t);
        let totals = r.totals(t);
        let a = &totals[0].1;
        assert_eq!((a.attempts, a.errors), (101, 1));
        assert_eq!(
            a.p50_ms,
            Some(70),
            "50th of 1..=100 ms falls in the 45–70 bucket"
        );
        assert_eq!(a.p99_ms, Some(100));
        assert_eq!(totals[1].1.attempts, 1);
        let series = r.series(t, 1);
        assert_eq!(series[0].attempts.len(), BUCKETS);
        assert_eq!(series[0].attempts[BUCKETS - 1], 101);
        let coarse = r.series(t, 6);
        assert_eq!(coarse[0].attempts.len(), BUCKETS / 6);
        assert_eq!(coarse[0].attempts[BUCKETS / 6 - 1], 101);
        assert_eq!(coarse[0].p99_ms[BUCKETS / 6 - 1], Some(100));
        assert_eq!(series[1].errors.iter().sum::<u32>(), 0);
    }

    #[test]
    fn a_young_recorder_charts_its_life_only() {
        let mut r = Recorder::new(["a"]);
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0).unwrap();
        r.started = epoch_of(t);
        assert_eq!(r.span(t), 24, "at least two minutes");
        assert_eq!(r.span(t + chrono::Duration::seconds(200)), 42);
        assert_eq!(r.span(t + chrono::Duration::hours(1)), BUCKETS);
        assert_eq!(r.series(t, 3)[0].attempts.len(), 8);
    }

    #[test]
    fn old_buckets_leave_the_window_and_slots_are_reused() {
        let r = Recorder::new(["a"]);
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0).unwrap();
        r.record_at(&outcome(vec![attempt("a", "ok", 3)]), t);
        let later = t + chrono::Duration::minutes(15);
        assert_eq!(
            r.totals(later)[0].1.attempts,
            0,
            "15 minutes later it is gone"
        );
        // The same slot, one lap later, starts from zero.
        r.record_at(&outcome(vec![attempt("a", "ok", 3)]), later);
        assert_eq!(r.totals(later)[0].1.attempts, 1);
    }

    #[test]
    fn decisions_ring_is_bounded_and_newest_first() {
        let r = Recorder::new(["a"]);
        for i in 0..(DECISIONS + 7) {
            let mut o = outcome(vec![]);
            o.request_id = format!("req_{i}");
            r.record(&o);
        }
        let d = r.decisions();
        assert_eq!(d.len(), DECISIONS);
        assert_eq!(d[0].request_id, format!("req_{}", DECISIONS + 6));
    }
}
