//! Budget reservations shared by every instance: the live counters of
//! [`super::budget`] kept in Redis and changed only by Lua scripts, so check-and-reserve
//! is one atomic step across all instances.
//!
//! Design:
//! - **The store stays the durable record.** Every settled cost is written to the
//!   store's `budget_spend` (batched, as without Redis); Redis holds the *live* counter
//!   that all instances check against. A counter is loaded from the store the first time
//!   any instance needs it (and again after Redis lost it: restart, eviction, expiry), so
//!   settled spend survives restarts of the gateway and of Redis alike.
//! - **Counters**: `<prefix>budget:<scope>:<period start>` is a hash `{spent, reserved,
//!   r:<request id> = amount held}` in integer nano-USD (exact sums);
//!   `…:leases` is a sorted set of request ids scored by when their reservation expires
//!   (`server.request_timeout_ms` + 60 s). A request whose instance died never settles;
//!   the next reservation on that budget sweeps its expired lease and frees its headroom.
//! - **Reserve** (`lua/budget_reserve.lua`): for every budget the request falls under,
//!   `spent + reserved + worst case ≤ limit`, then `reserved += worst case` everywhere —
//!   or nothing anywhere. Overspend can come only from requests whose real cost exceeded
//!   their reservation, never from concurrency, whichever instance served them.
//! - **Settle** (`lua/budget_settle.lua`, off the request path through a batched
//!   writer): release the reservation, `spent += real cost`.
//! - **Outage**: a settle that cannot reach Redis is kept and run again when Redis
//!   answers (releasing its reservation then), and every cost settled by the local
//!   fallback is summed per counter and added likewise ([`SharedBudgets::replay`]); a
//!   counter Redis no longer has is skipped, since it will be loaded from the store,
//!   which has that spend. A call that timed out may still have run (a hung Redis runs
//!   what was queued once it wakes), so every replay is idempotent: a settle tried again
//!   runs only while its reservation (or the tombstone its expired lease left) is still
//!   there, spend added without a reservation carries an id Redis remembers, and a
//!   reservation whose reserve timed out (the request went local) is released.
//! - **Redis lost its data** (restarted without persistence, flushed): every counter is
//!   gone and is rebuilt from the store's settled spend when first needed —
//!   possibly by a request of this or another instance *before* the replay runs, and the
//!   store already holds the outage's spend. Replaying then would count that spend twice,
//!   so then nothing is replayed: the store is the whole truth. Reservations died with
//!   the data too. Whether the data survived is told by a marker key,
//!   `<prefix>budget_epoch`, holding a random token the first instance to see it missing writes: a token
//!   other than the one seen before the outage means the data is not the same. (A Redis
//!   that restarts *with* its data keeps the token, and the spend is replayed into the
//!   counters it kept.) README "Shared state in Redis".
//!
//! Known limit: a counter loaded from the store within ~50 ms of another instance
//! settling on it may miss that one cost (the store write is batched); it is there
//! again at the next load. This is the whole bound after a Redis restart: the spend
//! whose store write was still queued when a counter was rebuilt.

use super::budget::{exceeded, period_ttl, Refusal, Scope};
use crate::link::RedisLink;
use anycloud_store::Store;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long an unsettled reservation holds its headroom beyond the request deadline.
pub const LEASE_MARGIN: Duration = Duration::from_secs(60);
/// Attempts at reserving when counters had to be loaded first.
const LOAD_ROUNDS: usize = 3;

/// One settled request for the writer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Settle {
    pub request_id: String,
    /// `(scope, period start)` per budget.
    pub parts: Vec<(String, String)>,
    pub nanos: i64,
}

#[derive(Debug)]
pub struct SharedBudgets {
    link: Arc<RedisLink>,
    reserve: redis::Script,
    settle: redis::Script,
    lease_ms: u64,
    // std Mutexes: updates only, never across an await.
    /// Spend settled by the local fallback, per counter.
    unsynced: Mutex<HashMap<(String, String), i64>>,
    /// Settles that could not reach Redis, with their mode in `budget_settle.lua`: tried
    /// again when it answers, so reservations are released too (not held until their
    /// lease ends).
    failed: Mutex<Vec<(Settle, &'static str)>>,
    /// Numbers the ids of replayed local spend (`budget_settle.lua`'s `once` mode).
    replays: std::sync::atomic::AtomicU64,
    /// This instance's id in those ids.
    origin: u64,
    /// The token in `<prefix>budget_epoch` as last seen while up: a different one (or
    /// none) after an outage means Redis lost every counter (see the module docs).
    epoch: Mutex<Option<String>>,
}

/// USD as integer nano-USD (the ledger's unit), clamped to what Lua's doubles hold exactly.
pub fn nanos(usd: f64) -> i64 {
    const MAX: f64 = 9.0e15;
    if usd.is_nan() || usd <= 0.0 {
        return 0;
    }
    (usd * 1e9).round().min(MAX) as i64
}

fn usd(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

impl SharedBudgets {
    /// `lease`: how long a reservation holds its headroom without being settled (the
    /// gateway uses `server.request_timeout_ms` + [`LEASE_MARGIN`]).
    pub fn new(link: Arc<RedisLink>, lease: Duration) -> SharedBudgets {
        SharedBudgets {
            link,
            reserve: redis::Script::new(include_str!("lua/budget_reserve.lua")),
            settle: redis::Script::new(include_str!("lua/budget_settle.lua")),
            lease_ms: lease.as_millis().max(1) as u64,
            unsynced: Mutex::default(),
            failed: Mutex::default(),
            replays: std::sync::atomic::AtomicU64::new(0),
            origin: rand::random(),
            epoch: Mutex::default(),
        }
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    fn keys(&self, scope: &str, period: &str) -> (String, String) {
        let h = self.link.key(&["budget", scope, period]);
        let z = format!("{h}:leases");
        (h, z)
    }

    /// Reserves `worst_case` under every scope. `None` when Redis could not decide (the
    /// caller applies `store.redis_down.budgets`).
    pub async fn reserve(
        &self,
        store: &dyn Store,
        request_id: &str,
        scopes: &[Scope],
        parts: &[(String, String)],
        worst_case: f64,
        now: DateTime<Utc>,
    ) -> Option<Result<(), Refusal>> {
        let amount = nanos(worst_case);
        let ttl = scopes
            .iter()
            .map(|s| period_ttl(s.budget.period, now))
            .max()
            .unwrap_or(86_400);
        for _ in 0..LOAD_ROUNDS {
            let mut inv = self.reserve.prepare_invoke();
            for (scope, period) in parts {
                let (h, z) = self.keys(scope, period);
                inv.key(h).key(z);
            }
            inv.arg(request_id).arg(amount).arg(self.lease_ms).arg(ttl);
            for s in scopes {
                inv.arg(format!("{:.0}", s.budget.usd.max(0.0) * 1e9));
            }
            let Some(out) = self
                .link
                .call("budget_reserve", |mut conn| async move {
                    inv.invoke_async::<Vec<i64>>(&mut conn).await
                })
                .await
            else {
                // The request goes local, but the script may still run (a hung Redis
                // runs what was queued when it wakes): release it once Redis answers.
                lock(&self.failed).push((
                    Settle {
                        request_id: request_id.to_string(),
                        parts: parts.to_vec(),
                        nanos: 0,
                    },
                    "retry",
                ));
                return None;
            };
            match out.as_slice() {
                [0] => return Some(Ok(())),
                [1, missing @ ..] => {
                    if let Err(r) = self.load(store, parts, missing, ttl).await? {
                        return Some(Err(r));
                    }
                }
                [2, i, spent, reserved] => {
                    let scope = scopes.get((*i as usize).checked_sub(1)?)?;
                    return Some(Err(Refusal::Exceeded(exceeded(
                        scope,
                        usd(*spent),
                        usd(*reserved),
                        worst_case,
                        now,
                    ))));
                }
                other => {
                    tracing::error!(answer = ?other, "budget script answered in an unexpected shape");
                    return None;
                }
            }
        }
        tracing::error!("budget counters kept disappearing while loading them");
        None
    }

    /// Seeds the counters Redis does not have from the store's settled spend.
    async fn load(
        &self,
        store: &dyn Store,
        parts: &[(String, String)],
        missing: &[i64],
        ttl: u64,
    ) -> Option<Result<(), Refusal>> {
        let mut pipe = redis::pipe();
        for i in missing {
            let (scope, period) = parts.get((*i as usize).checked_sub(1)?)?;
            let spent = match store.spend(scope, period).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %e, "budget spend read failed");
                    return Some(Err(Refusal::Unavailable {
                        message:
                            "The gateway cannot read budget spend right now; try again shortly."
                                .into(),
                    }));
                }
            };
            let (h, _) = self.keys(scope, period);
            pipe.hset_nx(&h, "spent", nanos(spent))
                .ignore()
                .expire(&h, ttl as i64)
                .ignore();
        }
        self.link
            .call("budget_load", |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await?;
        Some(Ok(()))
    }

    /// Settles a batch (the writer calls this off the request path). What Redis cannot
    /// take now is remembered for [`SharedBudgets::replay`].
    pub async fn settle_batch(&self, batch: Vec<Settle>) {
        for s in batch {
            if !self.settle_one(&s, "first").await {
                lock(&self.failed).push((s, "retry"));
            }
        }
    }

    /// `mode`: see `budget_settle.lua`.
    async fn settle_one(&self, s: &Settle, mode: &str) -> bool {
        let mut inv = self.settle.prepare_invoke();
        for (scope, period) in &s.parts {
            let (h, z) = self.keys(scope, period);
            inv.key(h).key(z);
        }
        inv.arg(&s.request_id).arg(s.nanos).arg(mode);
        self.link
            .call("budget_settle", |mut conn| async move {
                inv.invoke_async::<i64>(&mut conn).await
            })
            .await
            .is_some()
    }

    /// Spend Redis has not seen (settled while it was down): added when it is back.
    pub fn remember(&self, parts: &[(String, String)], nanos: i64) {
        if nanos <= 0 {
            return;
        }
        let mut u = lock(&self.unsynced);
        for p in parts {
            *u.entry(p.clone()).or_default() += nanos;
        }
    }

    /// The data's token (`<prefix>budget_epoch`), written first if missing; `None` when
    /// Redis does not answer.
    async fn data_epoch(&self) -> Option<String> {
        let key = self.link.key(&["budget_epoch"]);
        let token = format!("{:016x}", rand::random::<u64>());
        self.link
            .call("budget_epoch", |mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(token)
                    .arg("NX")
                    .query_async::<()>(&mut conn)
                    .await?;
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            })
            .await
            .flatten()
    }

    /// Notes whose data Redis holds now (the health loop calls it while the link is up),
    /// so [`SharedBudgets::replay`] can tell a Redis that lost its data from a partition.
    pub async fn note_server(&self) {
        if let Some(e) = self.data_epoch().await {
            *lock(&self.epoch) = Some(e);
        }
    }

    /// Adds the remembered spend to Redis' counters (when the link is back up), unless
    /// Redis lost its data meanwhile: then its counters are rebuilt from the store, which
    /// already has that spend, and replaying it would count it twice.
    pub async fn replay(&self) {
        let now = self.data_epoch().await;
        let before = std::mem::replace(&mut *lock(&self.epoch), now.clone());
        if let (Some(before), Some(now)) = (&before, &now) {
            if before != now {
                let failed = std::mem::take(&mut *lock(&self.failed)).len();
                let unsynced = std::mem::take(&mut *lock(&self.unsynced)).len();
                tracing::info!(
                    settles = failed,
                    counters = unsynced,
                    "redis lost its data while unreachable (restarted or flushed): budget counters are rebuilt from the store's settled spend, nothing replayed"
                );
                return;
            }
        }
        let mut pending = std::mem::take(&mut *lock(&self.failed));
        let unsynced: Vec<_> = lock(&self.unsynced).drain().collect();
        pending.extend(unsynced.into_iter().map(|(part, nanos)| {
            // No reservation by this id: added once, however often it is tried.
            let n = self
                .replays
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let s = Settle {
                request_id: format!("sync:{:x}:{n}", self.origin),
                parts: vec![part],
                nanos,
            };
            (s, "once")
        }));
        if pending.is_empty() {
            return;
        }
        let count = pending.len();
        let mut left = Vec::new();
        for (s, mode) in pending {
            if !self.settle_one(&s, mode).await {
                left.push((s, mode));
            }
        }
        let failed = left.len();
        lock(&self.failed).extend(left);
        tracing::info!(
            settles = count,
            failed,
            "budget spend settled during the redis outage added to the shared counters"
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nano_dollars_are_exact_and_bounded() {
        assert_eq!(nanos(0.000_001), 1_000);
        assert_eq!(nanos(1.5), 1_500_000_000);
        assert_eq!(nanos(-1.0), 0);
        assert_eq!(nanos(f64::NAN), 0);
        assert_eq!(nanos(f64::INFINITY), 9_000_000_000_000_000);
        assert_eq!(nanos(1e12), 9_000_000_000_000_000);
        assert_eq!(usd(nanos(12.345_678_9)), 12.345_678_9);
    }
}
