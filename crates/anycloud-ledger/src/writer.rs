//! [`LedgerWriter`]: usage records reach the store in batches, off the request path.
//!
//! Shape: producers hand records to a bounded tokio mpsc queue; one writer task takes
//! whatever is queued (up to `max_batch`), waits at most `flush_interval` (50 ms) after the
//! first record of a batch for more, and commits the batch in one transaction. A record is
//! therefore durable at most ~50 ms plus one commit after the request finished.
//!
//! Back-pressure, and why no record is ever dropped: [`LedgerWriter::record`] is called
//! from the request path (an `OutcomeSink` must not block or await), so it cannot wait for
//! room. Dropping a record when the queue is full would lose money silently, so a full
//! queue spills into an *overflow* list (a mutex-guarded `Vec`, pushed without waiting)
//! that the writer drains with its next batch. Overflow is only used when the store has
//! fallen behind by a whole queue (65 536 records by default); it is counted and exposed as
//! [`WriterStats::pending`] / [`WriterStats::overflowed`] so an operator sees the disk is
//! too slow long before memory matters. Producers that *can* wait (bulk imports, the bench)
//! use [`LedgerWriter::record_wait`], which applies real back-pressure.
//!
//! A failed commit is retried with backoff, keeping the batch, until it succeeds (or, once
//! closing, a few times before the loss is logged with its count). [`LedgerWriter::close`]
//! drains every queued and overflowed record and returns only after the last commit.
//!
//! After SIGKILL, what is lost is what had not been committed: the batch being written plus
//! what was still queued — the records finished in the last `flush_interval` plus one
//! commit. SQLite's WAL makes each batch all-or-nothing, so the store is never corrupted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anycloud_store::{Store, UsageRecord};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Tuning for [`LedgerWriter`].
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Records the queue holds before [`LedgerWriter::record`] spills into overflow.
    pub capacity: usize,
    /// Records per transaction at most.
    pub max_batch: usize,
    /// Longest a record waits in the queue before its batch is written.
    pub flush_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            capacity: 65_536,
            max_batch: 2_000,
            flush_interval: Duration::from_millis(50),
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
    /// Records accepted but not yet committed (queued, overflowed or being written).
    pub pending: u64,
    /// Records that went through the overflow list because the queue was full.
    pub overflowed: u64,
    /// Commits that failed (and were retried).
    pub flush_errors: u64,
    /// Records lost: handed over after `close`, or given up on at close after retries.
    pub lost: u64,
}

enum Msg {
    Record(Box<UsageRecord>),
    /// Commit everything received so far, then answer.
    Flush(oneshot::Sender<()>),
    /// Drain, commit, answer, and stop.
    Close(oneshot::Sender<()>),
}

/// Told how long each committed batch took (metrics); called on the writer task.
pub type FlushHook = Arc<dyn Fn(Duration) + Send + Sync>;

#[derive(Default)]
struct Shared {
    // std Mutex: held for a push or a swap, never across an await.
    overflow: Mutex<Vec<UsageRecord>>,
    accepted: AtomicU64,
    written: AtomicU64,
    batches: AtomicU64,
    overflowed: AtomicU64,
    flush_errors: AtomicU64,
    lost: AtomicU64,
    closed: AtomicBool,
    on_flush: OnceLock<FlushHook>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("accepted", &self.accepted)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// The batched, durable ledger writer. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct LedgerWriter {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Record(_) => "Record",
            Msg::Flush(_) => "Flush",
            Msg::Close(_) => "Close",
        })
    }
}

impl LedgerWriter {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>, config: WriterConfig) -> LedgerWriter {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(run(store, config, rx, shared.clone()));
        LedgerWriter {
            tx,
            shared,
            task: Mutex::new(Some(task)),
        }
    }

    /// Hands a record to the writer without waiting (for the request path). Never drops
    /// a record while the writer runs: a full queue spills into the overflow list.
    pub fn record(&self, record: UsageRecord) {
        if self.shared.closed.load(Ordering::Acquire) {
            self.lose(1, "usage record handed to the ledger after close");
            return;
        }
        self.shared.accepted.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Record(Box::new(record))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Msg::Record(r))) => {
                if let Ok(mut o) = self.shared.overflow.lock() {
                    o.push(*r);
                }
                if self
                    .shared
                    .overflowed
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(10_000)
                {
                    tracing::warn!(
                        pending = self.stats().pending,
                        "ledger queue full: the store is not keeping up; records spill to memory"
                    );
                }
            }
            Err(_) => self.lose(1, "ledger writer has stopped"),
        }
    }

    /// Hands a record to the writer, waiting for room in the queue (back-pressure).
    pub async fn record_wait(&self, record: UsageRecord) {
        self.shared.accepted.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Record(Box::new(record))).await.is_err() {
            self.lose(1, "ledger writer has stopped");
        }
    }

    /// Returns once every record handed over before the call is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Commits every pending record and stops the writer. Later records are counted as
    /// lost (and logged): call it after the server has stopped taking requests.
    pub async fn close(&self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Reports every later batch commit's duration to `hook` (set once; lock-free on the
    /// request path, which never calls it).
    pub fn on_flush(&self, hook: FlushHook) {
        let _ = self.shared.on_flush.set(hook);
    }

    pub fn stats(&self) -> WriterStats {
        let s = &self.shared;
        let accepted = s.accepted.load(Ordering::Relaxed);
        let written = s.written.load(Ordering::Relaxed);
        let lost = s.lost.load(Ordering::Relaxed);
        WriterStats {
            written,
            batches: s.batches.load(Ordering::Relaxed),
            pending: accepted.saturating_sub(written + lost),
            overflowed: s.overflowed.load(Ordering::Relaxed),
            flush_errors: s.flush_errors.load(Ordering::Relaxed),
            lost,
        }
    }

    fn lose(&self, n: u64, why: &'static str) {
        self.shared.lost.fetch_add(n, Ordering::Relaxed);
        tracing::error!(records = n, "{why}: usage records lost");
    }
}

/// The writer task: collect a batch, commit it, answer flushes; until closed.
async fn run(
    store: Arc<dyn Store>,
    config: WriterConfig,
    mut rx: mpsc::Receiver<Msg>,
    shared: Arc<Shared>,
) {
    let max_batch = config.max_batch.max(1);
    let mut batch: Vec<UsageRecord> = Vec::with_capacity(max_batch);
    let mut msgs: Vec<Msg> = Vec::with_capacity(max_batch);
    loop {
        let mut waiters = Vec::new();
        let mut closing = None;
        // Wait for the first message, then gather until the batch is full, the interval
        // since the first message is up, or someone asks for a flush.
        let Some(first) = rx.recv().await else { break };
        msgs.push(first);
        let deadline = Instant::now() + config.flush_interval;
        loop {
            for m in msgs.drain(..) {
                match m {
                    Msg::Record(r) => batch.push(*r),
                    Msg::Flush(w) => waiters.push(w),
                    Msg::Close(w) => closing = Some(w),
                }
            }
            if closing.is_some() {
                // Everything sent before Close is already queued: take it all.
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Msg::Record(r) => batch.push(*r),
                        Msg::Flush(w) => waiters.push(w),
                        Msg::Close(_) => {}
                    }
                }
                break;
            }
            if !waiters.is_empty() || batch.len() >= max_batch {
                break;
            }
            let room = max_batch - batch.len();
            tokio::select! {
                n = rx.recv_many(&mut msgs, room) => if n == 0 { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Overflow only fills while the queue is full, so it is always drained here,
        // after the queued records that preceded it.
        if let Ok(mut o) = shared.overflow.lock() {
            batch.append(&mut o);
        }
        commit(
            store.as_ref(),
            &mut batch,
            max_batch,
            &shared,
            closing.is_some(),
        )
        .await;
        for w in waiters {
            let _ = w.send(());
        }
        if let Some(w) = closing {
            let _ = w.send(());
            return;
        }
    }
}

/// Writes `batch` (in transactions of at most `max_batch`), retrying failures with
/// backoff. When `closing`, gives up after a few tries and counts the records as lost.
async fn commit(
    store: &dyn Store,
    batch: &mut Vec<UsageRecord>,
    max_batch: usize,
    shared: &Shared,
    closing: bool,
) {
    for chunk in batch.chunks(max_batch) {
        let mut backoff = Duration::from_millis(50);
        let mut tries = 0u32;
        loop {
            let started = Instant::now();
            match store.insert_usage(chunk).await {
                Ok(()) => {
                    if let Some(hook) = shared.on_flush.get() {
                        hook(started.elapsed());
                    }
                    shared
                        .written
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    shared.batches.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    shared.flush_errors.fetch_add(1, Ordering::Relaxed);
                    tries += 1;
                    if closing && tries >= 5 {
                        shared.lost.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        tracing::error!(error = %e, records = chunk.len(),
                            "ledger: giving up on a batch at shutdown: usage records lost");
                        break;
                    }
                    tracing::warn!(error = %e, records = chunk.len(),
                        "ledger: batch commit failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
    batch.clear();
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
