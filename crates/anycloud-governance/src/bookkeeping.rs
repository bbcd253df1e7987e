//! Every bookkeeping queue (ledger, audit, budget spend, captures) seen as one: for
//! admission (back-pressure), `/readyz` (degraded while the store fails) and metrics.
//! See README "Reliability".
//!
//! Each queue is an `anycloud_store::spool::Spool`, bounded by `store.queue_bound`
//! records in memory and, with `store.spill_dir`, spilling to disk while the store fails.
//! Admission waits up to [`ADMISSION_WAIT`] for a full queue to drain, then refuses
//! ([`Refusal::Backlog`], 503 `bookkeeping_backlog` with `retry-after`): traffic the
//! gateway could not record is never served, and memory never grows past the bound.

use crate::Refusal;
use anycloud_config::StoreConfig;
use anycloud_store::spool::{SpillConfig, SpoolConfig, SpoolGauge};
use serde_json::{json, Value};
use std::sync::RwLock;
use std::time::Duration;

/// How long admission waits for a full queue before refusing.
pub const ADMISSION_WAIT: Duration = Duration::from_millis(500);

/// The spool settings for queue `name` from `[store]`.
pub fn spool_config(store: &StoreConfig, name: &'static str) -> SpoolConfig {
    SpoolConfig {
        memory_bound: store.queue_bound,
        spill: store.spill_dir.as_ref().map(|dir| SpillConfig {
            dir: dir.clone(),
            max_bytes: store.spill_max_bytes,
        }),
        ..SpoolConfig::new(name)
    }
}

#[derive(Debug, Default)]
pub struct Bookkeeping {
    // std RwLock: registered at start, read per request; never held across an await.
    queues: RwLock<Vec<SpoolGauge>>,
}

/// The queues' state as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Writes fail or a backlog is on disk: serving, recording into memory or the spill.
    Degraded,
    /// A queue is past its bound: new AI requests are refused.
    Full,
}

impl Bookkeeping {
    pub fn register(&self, gauge: SpoolGauge) {
        if let Ok(mut q) = self.queues.write() {
            if !q.iter().any(|g| g.name() == gauge.name()) {
                q.push(gauge);
            }
        }
    }

    fn queues(&self) -> Vec<SpoolGauge> {
        self.queues.read().map(|q| q.clone()).unwrap_or_default()
    }

    /// Admission: waits while a queue is full, at most [`ADMISSION_WAIT`], then refuses.
    pub async fn admit(&self) -> Result<(), Refusal> {
        let queues = self.queues();
        let Some(full) = queues.iter().find(|g| g.full()) else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + ADMISSION_WAIT;
        for g in queues.iter().filter(|g| g.full()) {
            if !g.wait_for_room(deadline).await {
                return Err(Refusal::Backlog { queue: g.name() });
            }
        }
        tracing::debug!(
            queue = full.name(),
            "admission waited for a bookkeeping queue"
        );
        Ok(())
    }

    pub fn health(&self) -> Health {
        let queues = self.queues();
        if queues.iter().any(SpoolGauge::full) {
            Health::Full
        } else if queues.iter().any(SpoolGauge::degraded) {
            Health::Degraded
        } else {
            Health::Ok
        }
    }

    /// Per queue: records in memory and on disk, and whether writes fail.
    pub fn status(&self) -> Value {
        let mut out = serde_json::Map::new();
        for g in self.queues() {
            let s = g.stats();
            out.insert(
                g.name().to_string(),
                json!({"in_memory": s.in_memory, "on_disk": s.on_disk, "failing": s.failing, "full": g.full()}),
            );
        }
        Value::Object(out)
    }

    pub fn gauges(&self) -> Vec<SpoolGauge> {
        self.queues()
    }
}
