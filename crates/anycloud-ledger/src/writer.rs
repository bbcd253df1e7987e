//! [`LedgerWriter`]: usage records reach the store in batches, off the request path.
//!
//! The queue is an [`anycloud_store::spool::Spool`]: producers push without waiting; one
//! task takes what is queued (up to `max_batch`), waits at most `flush_interval` (50 ms)
//! after the first record of a batch for more, and commits the batch in one transaction.
//! A record is therefore durable at most ~50 ms plus one commit after the request finished.
//!
//! Bounds and back-pressure, and why no record is ever dropped: [`LedgerWriter::record`]
//! is called from the request path (an `OutcomeSink` must not block or await), so it
//! cannot wait for room. Instead the gateway's admission looks at [`LedgerWriter::gauge`]
//! before it takes a request and waits, then answers 503, while more than `capacity`
//! records are held in memory. Producers that *can* wait (bulk imports, the bench) use
//! [`LedgerWriter::record_wait`].
//!
//! A failed commit (store unreachable, timed out, busy or locked) keeps its batch and is
//! retried with backoff; with a spill directory the records held past half of `capacity`
//! go to an fsynced file there and are replayed in order, once, when the store answers
//! (see the spool). [`LedgerWriter::close`] drains every record and returns only after
//! the last commit, or with the store down, once everything is in the spill file.
//!
//! After SIGKILL, what is lost is what had not been committed or spilled: the records
//! finished in the last `flush_interval` plus one commit. SQLite's WAL makes each batch
//! all-or-nothing, so the store is never corrupted.

use std::sync::Arc;
use std::time::Duration;

use anycloud_store::spool::{Batch, FlushHook, SpillConfig, Spool, SpoolConfig, SpoolGauge};
use anycloud_store::{Store, UsageRecord};

/// Tuning for [`LedgerWriter`].
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Records held in memory before admission waits.
    pub capacity: usize,
    /// Records per transaction at most.
    pub max_batch: usize,
    /// Longest a record waits in the queue before its batch is written.
    pub flush_interval: Duration,
    /// Where records go while the store is down (`store.spill_dir`).
    pub spill: Option<SpillConfig>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            capacity: 50_000,
            max_batch: 2_000,
            flush_interval: Duration::from_millis(50),
            spill: None,
        }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records committed to the store.
    pub written: u64,
    /// Batches committed.
    pub batches: u64,
    /// Records accepted but not yet committed (in memory, being written, or spilled).
    pub pending: u64,
    /// Records that went through the spill file because the store was failing.
    pub spilled: u64,
    /// Commits that failed (and were retried).
    pub flush_errors: u64,
    /// Records lost: handed over after `close`, or held in memory at close with the store
    /// down and no spill file.
    pub lost: u64,
}

/// The batched, durable ledger writer. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct LedgerWriter {
    spool: Spool<UsageRecord>,
}

impl LedgerWriter {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>, config: WriterConfig) -> LedgerWriter {
        let forget = anycloud_store::spool::forget_in(store.clone());
        let spool = Spool::start(
            SpoolConfig {
                name: "ledger",
                memory_bound: config.capacity.max(1),
                max_batch: config.max_batch.max(1),
                flush_interval: config.flush_interval,
                spill: config.spill,
            },
            Arc::new(move |batch: Arc<Batch<UsageRecord>>| {
                let store = store.clone();
                Box::pin(async move { store.insert_usage_once(&batch).await })
            }),
        );
        spool.forget_marks_with(forget);
        LedgerWriter { spool }
    }

    /// Hands a record to the writer without waiting (for the request path).
    pub fn record(&self, record: UsageRecord) {
        self.spool.push(record);
    }

    /// Hands a record to the writer, first waiting while it holds more than its capacity.
    pub async fn record_wait(&self, record: UsageRecord) {
        while !self
            .spool
            .wait_for_room(tokio::time::Instant::now() + Duration::from_secs(1))
            .await
        {}
        self.spool.push(record);
    }

    /// Returns once every record handed over before the call is committed (or, while the
    /// store fails, in the spill file).
    pub async fn flush(&self) {
        self.spool.flush().await;
    }

    /// Commits every pending record and stops the writer. Later records are counted as
    /// lost (and logged): call it after the server has stopped taking requests.
    pub async fn close(&self) {
        self.spool.close().await;
    }

    /// Reports every later batch commit's duration to `hook` (set once).
    pub fn on_flush(&self, hook: FlushHook) {
        self.spool.on_flush(hook);
    }

    /// The queue's state for admission, `/readyz` and metrics.
    pub fn gauge(&self) -> SpoolGauge {
        self.spool.gauge()
    }

    pub fn stats(&self) -> WriterStats {
        let s = self.spool.stats();
        WriterStats {
            written: s.written,
            batches: s.batches,
            pending: s.pending,
            spilled: s.spilled,
            flush_errors: s.write_errors,
            lost: s.lost,
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
