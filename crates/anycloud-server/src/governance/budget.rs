//! Budgets in USD per day, month or total, per tenant and per key, enforced at admission
//! with a reservation of the request's worst-case cost.
//!
//! For each scope and period the gateway keeps `spent` (settled) and `reserved` (in
//! flight). A request is admitted only if, for every scope it falls under,
//! `spent + reserved + worst_case ≤ usd`; its worst case is then added to `reserved`
//! (check and add happen under one lock, so concurrent requests cannot both take the
//! same headroom). When the request finishes, its outcome (see [`crate::outcome`])
//! settles the reservation: `reserved -= worst_case`, `spent += real cost` (0 when
//! it failed). Hence at any moment
//! `spent ≤ usd + Σ over settled requests of max(0, real − worst_case)`: overspend can only
//! come from requests whose real cost exceeded their reservation (a prompt longer than
//! estimated), never from concurrency.
//!
//! Settled spend is persisted per `(scope, period_start)` in the store's `budget_spend`
//! table through a batched writer, and read back the first time a scope is seen after a
//! restart.

use super::batch::BatchWriter;
use anycloud_config::{Budget, BudgetPeriod};
use anycloud_store::Store;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One budget a request falls under.
#[derive(Debug, Clone)]
pub struct Scope {
    /// `tenant:<name>` or `key:<id>`.
    pub id: String,
    /// For messages: ``tenant `payments` `` or ``key `abc123` ``.
    pub label: String,
    pub budget: Budget,
}

/// Why a request was refused.
#[derive(Debug, Clone)]
pub struct Exceeded {
    pub message: String,
    /// Seconds until the period resets (`None` for `total`).
    pub retry_after: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    spent: f64,
    reserved: f64,
    /// The scope's budget when last reserved against, and whether it refused a request
    /// this period (for the metrics' key aggregate).
    budget: Option<Budget>,
    refused: bool,
}

#[derive(Debug)]
struct Reservation {
    parts: Vec<(String, String)>,
    amount: f64,
}

#[derive(Debug)]
pub struct Budgets {
    store: Arc<dyn Store>,
    // std Mutexes: held for map updates only, never across an await.
    counters: Mutex<HashMap<(String, String), Counter>>,
    reservations: Mutex<HashMap<String, Reservation>>,
    writer: BatchWriter<(String, String, f64)>,
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

fn period_name(p: BudgetPeriod) -> &'static str {
    match p {
        BudgetPeriod::Day => "daily",
        BudgetPeriod::Month => "monthly",
        BudgetPeriod::Total => "total",
    }
}

impl Budgets {
    pub fn new(store: Arc<dyn Store>) -> Budgets {
        let s = store.clone();
        let writer = BatchWriter::spawn(Arc::new(move |batch: Vec<(String, String, f64)>| {
            let s = s.clone();
            Box::pin(async move {
                if let Err(e) = s.add_spend(&batch).await {
                    tracing::error!(error = %e, records = batch.len(), "budget spend write failed");
                }
            })
        }));
        Budgets {
            store,
            counters: Mutex::default(),
            reservations: Mutex::default(),
            writer,
        }
    }

    /// Reserves `worst_case` USD for `request_id` under every scope, or says which budget
    /// would be exceeded.
    pub async fn reserve(
        &self,
        request_id: &str,
        scopes: &[Scope],
        worst_case: f64,
    ) -> Result<(), Exceeded> {
        if scopes.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let keys: Vec<(String, String)> = scopes
            .iter()
            .map(|s| (s.id.clone(), period_start(s.budget.period, now)))
            .collect();
        // Load settled spend for scopes not seen since start (outside the lock).
        for k in &keys {
            let known = self.lock_counters().contains_key(k);
            if !known {
                let spent = match self.store.spend(&k.0, &k.1).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(error = %e, "budget spend read failed");
                        return Err(Exceeded {
                            message:
                                "The gateway cannot read budget spend right now; try again shortly."
                                    .into(),
                            retry_after: Some(1),
                        });
                    }
                };
                self.lock_counters().entry(k.clone()).or_insert(Counter {
                    spent,
                    reserved: 0.0,
                    budget: None,
                    refused: false,
                });
            }
        }
        {
            let mut counters = self.lock_counters();
            for (scope, k) in scopes.iter().zip(&keys) {
                let c = counters.get(k).copied().unwrap_or_default();
                let left = (scope.budget.usd - c.spent - c.reserved).max(0.0);
                if c.spent + c.reserved + worst_case > scope.budget.usd {
                    // Remembered so the metrics' key aggregate counts a refused key.
                    if let Some(c) = counters.get_mut(k) {
                        c.budget = Some(scope.budget);
                        c.refused = true;
                    }
                    let retry_after = seconds_to_reset(scope.budget.period, now);
                    let when = match retry_after {
                        Some(s) => format!("; it resets in {s} s"),
                        None => "; a total budget does not reset".into(),
                    };
                    return Err(Exceeded {
                        message: format!(
                            "The {} budget of {} (${:.2}) would be exceeded: ${:.6} spent, ${:.6} reserved by requests in flight, ${:.6} left, and this request may cost up to ${:.6}{when}.",
                            period_name(scope.budget.period),
                            scope.label,
                            scope.budget.usd,
                            c.spent,
                            c.reserved,
                            left,
                            worst_case,
                        ),
                        retry_after,
                    });
                }
            }
            for (scope, k) in scopes.iter().zip(&keys) {
                let c = counters.entry(k.clone()).or_default();
                c.reserved += worst_case;
                c.budget = Some(scope.budget);
            }
        }
        if let Ok(mut r) = self.reservations.lock() {
            r.insert(
                request_id.to_string(),
                Reservation {
                    parts: keys,
                    amount: worst_case,
                },
            );
        }
        Ok(())
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
        {
            let mut counters = self.lock_counters();
            for k in &res.parts {
                let c = counters.entry(k.clone()).or_default();
                c.reserved = (c.reserved - res.amount).max(0.0);
                c.spent += real_cost;
            }
        }
        if real_cost > 0.0 {
            for (scope, period) in res.parts {
                self.writer.push((scope, period, real_cost));
            }
        }
    }

    /// Settled and reserved USD for a scope in its current period (admin and tests).
    pub fn usage(&self, scope: &str, period: BudgetPeriod) -> (f64, f64) {
        let k = (scope.to_string(), period_start(period, Utc::now()));
        let c = self.lock_counters().get(&k).copied().unwrap_or_default();
        (c.spent, c.reserved)
    }

    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    /// Spend records waiting to be written.
    pub fn pending(&self) -> u64 {
        self.writer.pending()
    }

    pub fn on_flush(&self, hook: super::batch::FlushHook) {
        self.writer.on_flush(hook);
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
