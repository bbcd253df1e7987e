//! Budgets in USD per day, month or total, per tenant and per key, enforced at admission
//! with a reservation of the request's worst-case cost.
//!
//! For each scope and period the gateway keeps `spent` (settled) and `reserved` (in
//! flight). A request is admitted only if, for every scope it falls under,
//! `spent + reserved + worst_case ≤ usd`; its worst case is then added to `reserved`
//! (check and add happen under one lock, so concurrent requests cannot both take the
//! same headroom). When the request finishes, its outcome (the server's `outcome` module)
//! settles the reservation: `reserved -= worst_case`, `spent += real cost` (0 when
//! it failed). Hence at any moment
//! `spent ≤ usd + Σ over settled requests of max(0, real − worst_case)`: overspend can only
//! come from requests whose real cost exceeded their reservation (a prompt longer than
//! estimated), never from concurrency.
//!
//! Settled spend is persisted per `(scope, period_start)` in the store's `budget_spend`
//! table through a batched writer, and read back the first time a scope is seen after a
//! restart.
//!
//! With `store.redis_url` the counters live in Redis instead, shared by every instance
//! ([`super::redis_budget`]); this module then keeps only the reservations it made and,
//! while Redis is unreachable, applies `store.redis_down.budgets`: `refuse` (default)
//! answers 503 `budget_unavailable` to every request under a budget; `local` uses the
//! counters here, reloading settled spend from the store at most [`LOCAL_REFRESH`] apart
//! so other instances' spend is seen (each instance may then spend what is left: N
//! instances can overshoot up to N times).

use super::redis_budget::{nanos, Settle, SharedBudgets};
use crate::link::Feature;
use anycloud_config::{Budget, BudgetPeriod, BudgetsWhenDown};
use anycloud_store::spool::{Batch, FlushHook, Spool, SpoolConfig, SpoolGauge};
use anycloud_store::Store;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// In the local fallback beside Redis, settled spend is reloaded from the store at most
/// this far apart, so spend by other instances counts.
pub const LOCAL_REFRESH: Duration = Duration::from_secs(2);

/// One budget a request falls under.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `tenant:<name>` or `key:<id>`.
    pub id: String,
    /// For messages: ``tenant `payments` `` or ``key `abc123` ``.
    pub label: String,
    pub budget: Budget,
}

/// Why a reservation was refused.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// 429 `budget_exceeded`.
    Exceeded(Exceeded),
    /// 503 `budget_unavailable`: spend cannot be checked right now.
    Unavailable { message: String },
}

/// Why a request was refused.
#[derive(Debug, Clone)]
pub struct Exceeded {
    /// The id of the budget that refused (`tenant:…` or `key:…`).
    pub scope: String,
    pub message: String,
    /// Seconds until the period resets (`None` for `total`).
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    spent: f64,
    reserved: f64,
    /// When `spent` was last read from the store (`None`: never).
    loaded: Option<Instant>,
    /// The scope's budget when last reserved against, and whether it refused a request
    /// this period (for the metrics' key aggregate).
    budget: Option<Budget>,
    refused: bool,
}

#[derive(Debug)]
struct Reservation {
    parts: Vec<(String, String)>,
    amount: f64,
    /// Made in Redis (settled there) rather than in the local counters.
    shared: bool,
}

#[derive(Debug)]
pub struct Budgets {
    store: Arc<dyn Store>,
    // std Mutexes: held for map updates only, never across an await.
    counters: Mutex<HashMap<(String, String), Counter>>,
    reservations: Mutex<HashMap<String, Reservation>>,
    writer: Spool<(String, String, f64)>,
    /// Redis counters and their settle writer, with `store.redis_url`.
    shared: Option<(Arc<SharedBudgets>, Spool<Settle>)>,
}

pub fn period_start(period: BudgetPeriod, now: DateTime<Utc>) -> String {
    match period {
        BudgetPeriod::Day => now.date_naive().to_string(),
        BudgetPeriod::Month => format!("{:04}-{:02}-01", now.year(), now.month()),
        BudgetPeriod::Total => "total".into(),
    }
}

/// Seconds until the period after `now` begins.
pub fn seconds_to_reset(period: BudgetPeriod, now: DateTime<Utc>) -> Option<u64> {
    let next: NaiveDate = match period {
        BudgetPeriod::Day => now.date_naive() + ChronoDuration::days(1),
        BudgetPeriod::Month => {
            let (y, m) = if now.month() == 12 {
                (now.year() + 1, 1)
            } else {
                (now.year(), now.month() + 1)
            };
            NaiveDate::from_ymd_opt(y, m, 1)?
        }
        BudgetPeriod::Total => return None,
    };
    let at = Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0)?);
    Some((at - now).num_seconds().max(1) as u64)
}

/// How long a live counter for `period` is worth keeping (Redis TTL, seconds).
pub fn period_ttl(period: BudgetPeriod, now: DateTime<Utc>) -> u64 {
    const DAY: u64 = 86_400;
    match seconds_to_reset(period, now) {
        Some(s) => s + DAY,
        // A total budget: kept while in use, reloaded from the store after a quiet week.
        None => 7 * DAY,
    }
}

/// The refusal for `scope` holding `spent` + `reserved` when a request may cost `worst_case`.
pub fn exceeded(
    scope: &Scope,
    spent: f64,
    reserved: f64,
    worst_case: f64,
    now: DateTime<Utc>,
) -> Exceeded {
    let left = (scope.budget.usd - spent - reserved).max(0.0);
    let retry_after = seconds_to_reset(scope.budget.period, now);
    let when = match retry_after {
        Some(s) => format!("; it resets in {s} s"),
        None => "; a total budget does not reset".into(),
    };
    Exceeded {
        scope: scope.id.clone(),
        message: format!(
            "The {} budget of {} (${:.2}) would be exceeded: ${:.6} spent, ${:.6} reserved by requests in flight, ${:.6} left, and this request may cost up to ${:.6}{when}.",
            period_name(scope.budget.period),
            scope.label,
            scope.budget.usd,
            spent,
            reserved,
            left,
            worst_case,
        ),
        retry_after,
    }
}

fn period_name(p: BudgetPeriod) -> &'static str {
    match p {
        BudgetPeriod::Day => "daily",
        BudgetPeriod::Month => "monthly",
        BudgetPeriod::Total => "total",
    }
}

impl Budgets {
    /// `spend` and `settle`: the bounds (and spill file) of the spend writer and of the
    /// Redis settle writer (the server's `bookkeeping` module).
    pub fn new(
        store: Arc<dyn Store>,
        shared: Option<Arc<SharedBudgets>>,
        spend: SpoolConfig,
        settle: SpoolConfig,
    ) -> Budgets {
        let s = store.clone();
        let writer = Spool::start(
            spend,
            Arc::new(move |batch: Arc<Batch<(String, String, f64)>>| {
                let s = s.clone();
                Box::pin(async move { s.add_spend_once(&batch).await })
            }),
        );
        writer.forget_marks_with(anycloud_store::spool::forget_in(store.clone()));
        let shared = shared.map(|sh| {
            let for_writer = sh.clone();
            let settler = Spool::start(
                settle,
                Arc::new(move |batch: Arc<Batch<Settle>>| {
                    let sh = for_writer.clone();
                    Box::pin(async move {
                        sh.settle_batch(batch.items.clone()).await;
                        Ok(())
                    })
                }),
            );
            (sh, settler)
        });
        Budgets {
            store,
            counters: Mutex::default(),
            reservations: Mutex::default(),
            writer,
            shared,
        }
    }

    /// Reserves `worst_case` USD for `request_id` under every scope, or says why not.
    pub async fn reserve(
        &self,
        request_id: &str,
        scopes: &[Scope],
        worst_case: f64,
    ) -> Result<(), Refusal> {
        if scopes.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let keys: Vec<(String, String)> = scopes
            .iter()
            .map(|s| (s.id.clone(), period_start(s.budget.period, now)))
            .collect();
        let mut refresh = None;
        if let Some((sh, _)) = &self.shared {
            match sh
                .reserve(
                    self.store.as_ref(),
                    request_id,
                    scopes,
                    &keys,
                    worst_case,
                    now,
                )
                .await
            {
                Some(Ok(())) => {
                    self.note_shared(scopes, &keys, None);
                    self.remember(request_id, keys, worst_case, true);
                    return Ok(());
                }
                Some(Err(r)) => {
                    if let Refusal::Exceeded(e) = &r {
                        self.note_shared(scopes, &keys, Some(&e.scope));
                    }
                    return Err(r);
                }
                None => {}
            }
            let link = sh.link();
            match link.policy().budgets {
                BudgetsWhenDown::Refuse => {
                    link.count_fallback(Feature::Budgets, "refused");
                    return Err(Refusal::Unavailable {
                        message: "Budgets cannot be checked right now (the gateway's shared state is unreachable), so requests under a budget are refused; try again shortly.".into(),
                    });
                }
                BudgetsWhenDown::Local => {
                    link.count_fallback(Feature::Budgets, "local");
                    refresh = Some(LOCAL_REFRESH);
                }
            }
        }
        self.reserve_local(request_id, scopes, keys, worst_case, now, refresh)
            .await
    }

    /// The local counters; `refresh` reloads settled spend older than that from the store.
    async fn reserve_local(
        &self,
        request_id: &str,
        scopes: &[Scope],
        keys: Vec<(String, String)>,
        worst_case: f64,
        now: DateTime<Utc>,
        refresh: Option<Duration>,
    ) -> Result<(), Refusal> {
        // Load settled spend for scopes not seen since start, or stale (outside the lock).
        for k in &keys {
            let fresh = self.lock_counters().get(k).is_some_and(|c| {
                c.loaded
                    .is_some_and(|t| refresh.is_none_or(|r| t.elapsed() < r))
            });
            if fresh {
                continue;
            }
            let spent = self.store.spend(&k.0, &k.1).await.map_err(|e| {
                tracing::error!(error = %e, "budget spend read failed");
                Refusal::Unavailable {
                    message: "The gateway cannot read budget spend right now; try again shortly."
                        .into(),
                }
            })?;
            let mut counters = self.lock_counters();
            let c = counters.entry(k.clone()).or_default();
            // The store may lag this instance's own batched writes: never go backwards.
            c.spent = c.spent.max(spent);
            c.loaded = Some(Instant::now());
        }
        {
            let mut counters = self.lock_counters();
            for (scope, k) in scopes.iter().zip(&keys) {
                let c = counters.get(k).copied().unwrap_or_default();
                if c.spent + c.reserved + worst_case > scope.budget.usd {
                    // Remembered so the metrics' key aggregate counts a refused key.
                    if let Some(c) = counters.get_mut(k) {
                        c.budget = Some(scope.budget);
                        c.refused = true;
                    }
                    return Err(Refusal::Exceeded(exceeded(
                        scope, c.spent, c.reserved, worst_case, now,
                    )));
                }
            }
            for (scope, k) in scopes.iter().zip(&keys) {
                let c = counters.entry(k.clone()).or_default();
                c.reserved += worst_case;
                c.budget = Some(scope.budget);
            }
        }
        self.remember(request_id, keys, worst_case, false);
        Ok(())
    }

    /// Shared mode keeps no counters here; only what the metrics' key aggregate needs
    /// (each budget in use, and which refused).
    fn note_shared(&self, scopes: &[Scope], keys: &[(String, String)], refused: Option<&str>) {
        let mut counters = self.lock_counters();
        for (scope, k) in scopes.iter().zip(keys) {
            let c = counters.entry(k.clone()).or_default();
            c.budget = Some(scope.budget);
            c.refused |= refused == Some(scope.id.as_str());
        }
    }

    fn remember(&self, request_id: &str, parts: Vec<(String, String)>, amount: f64, shared: bool) {
        if let Ok(mut r) = self.reservations.lock() {
            r.insert(
                request_id.to_string(),
                Reservation {
                    parts,
                    amount,
                    shared,
                },
            );
        }
    }

    /// Settles a request's reservation to its real cost (0 if it failed).
    pub fn settle(&self, request_id: &str, real_cost: f64) {
        let Some(res) = self
            .reservations
            .lock()
            .ok()
            .and_then(|mut r| r.remove(request_id))
        else {
            return;
        };
        match (&self.shared, res.shared) {
            (Some((_, settler)), true) => settler.push(Settle {
                request_id: request_id.to_string(),
                parts: res.parts.clone(),
                nanos: nanos(real_cost),
            }),
            (shared, _) => {
                let mut counters = self.lock_counters();
                for k in &res.parts {
                    let c = counters.entry(k.clone()).or_default();
                    c.reserved = (c.reserved - res.amount).max(0.0);
                    c.spent += real_cost;
                }
                // Spent without Redis: add it to the shared counters once Redis is back.
                if let Some((sh, _)) = shared {
                    sh.remember(&res.parts, nanos(real_cost));
                }
            }
        }
        if real_cost > 0.0 {
            for (scope, period) in res.parts {
                self.writer.push((scope, period, real_cost));
            }
        }
    }

    /// While Redis is up: remember which server it is (see [`SharedBudgets::replay`]).
    pub async fn note_server(&self) {
        if let Some((sh, _)) = &self.shared {
            sh.note_server().await;
        }
    }

    /// After a Redis outage: hand the spend settled meanwhile to the shared counters.
    pub async fn replay(&self) {
        if let Some((sh, settler)) = &self.shared {
            settler.flush().await;
            sh.replay().await;
        }
    }

    /// Settled and reserved USD for a scope in its current period (admin and tests).
    pub fn usage(&self, scope: &str, period: BudgetPeriod) -> (f64, f64) {
        let k = (scope.to_string(), period_start(period, Utc::now()));
        let c = self.lock_counters().get(&k).copied().unwrap_or_default();
        (c.spent, c.reserved)
    }

    pub async fn flush(&self) {
        if let Some((_, settler)) = &self.shared {
            settler.flush().await;
        }
        self.writer.flush().await;
    }

    /// Spend records waiting to be written.
    pub fn pending(&self) -> u64 {
        self.writer.stats().pending
    }

    pub fn on_flush(&self, hook: FlushHook) {
        self.writer.on_flush(hook);
    }

    /// The spend writer's queue, and the Redis settle writer's when there is one.
    pub fn gauges(&self) -> Vec<SpoolGauge> {
        let mut out = vec![self.writer.gauge()];
        if let Some((_, settler)) = &self.shared {
            out.push(settler.gauge());
        }
        out
    }

    /// Key budgets used in their current period: `(ok, exhausted)`, exhausted meaning
    /// fully spent or refused a request this period. An aggregate, so
    /// metrics never carry one series per key.
    pub fn key_budget_counts(&self) -> (u64, u64) {
        let now = Utc::now();
        let (mut ok, mut exhausted) = (0, 0);
        for ((scope, period), c) in self.lock_counters().iter() {
            let Some(b) = c.budget else { continue };
            if !scope.starts_with("key:") || *period != period_start(b.period, now) {
                continue;
            }
            if c.refused || c.spent + c.reserved >= b.usd {
                exhausted += 1;
            } else {
                ok += 1;
            }
        }
        (ok, exhausted)
    }

    fn lock_counters(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Counter>> {
        match self.counters.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_spend_becomes_one_delta_per_budget_and_period() {
        let d = |s: &str, p: &str, u: f64| (s.to_string(), p.to_string(), u);
        let batch = vec![
            d("tenant:a", "2026-12-03", 0.25),
            d("key:k", "total", 1.0),
            d("tenant:a", "2026-12-03", 0.5),
            d("tenant:a", "2026-12-04", 2.0),
            d("key:k", "total", 0.125),
        ];
        assert_eq!(
            anycloud_store::aggregate_spend(&batch),
            vec![
                d("tenant:a", "2026-12-03", 0.75),
                d("key:k", "total", 1.125),
                d("tenant:a", "2026-12-04", 2.0),
            ]
        );
    }

    #[test]
    fn periods_and_resets() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 0, 0)
            .single()
            .unwrap();
        assert_eq!(period_start(BudgetPeriod::Day, now), "2026-12-31");
        assert_eq!(period_start(BudgetPeriod::Month, now), "2026-12-01");
        assert_eq!(period_start(BudgetPeriod::Total, now), "total");
        assert_eq!(seconds_to_reset(BudgetPeriod::Day, now), Some(3600));
        assert_eq!(seconds_to_reset(BudgetPeriod::Month, now), Some(3600));
        assert_eq!(seconds_to_reset(BudgetPeriod::Total, now), None);
    }
}
