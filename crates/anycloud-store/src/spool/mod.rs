//! [`Spool`]: the bounded, durable queue between the request path and the store, used for
//! every bookkeeping record (usage ledger, audit entries, budget spend, captures).
//!
//! The request path calls [`Spool::push`], which never waits. One task per spool takes
//! what is queued, waits at most `flush_interval` after the first record of a batch for
//! more, and hands batches of at most `max_batch` to its write function (one store call,
//! one transaction). Records are written in the order they were pushed, each exactly once.
//!
//! **Bounds.** [`Spool::full`] is true once more than `memory_bound` records are held in
//! memory (or the spill file has reached its bound); admission checks it before taking a
//! request ([`Spool::wait_for_room`]) and answers 503 with `retry-after` when it stays
//! full, so memory is bounded by `memory_bound` plus what requests already admitted
//! produce. Nothing is ever dropped to make room.
//!
//! **Store down.** A failed write (unreachable, timed out, busy or locked: any error) keeps
//! its batch and is retried with backoff (50 ms doubling to 2 s). While writes fail and a
//! spill directory is configured, records past half the memory bound are appended to the
//! spool's file there (`<dir>/<name>.spool`, JSON lines, fsynced per batch: see [`file`]),
//! and from then on every record goes through the file until it is replayed, so order is
//! kept. When the store answers again the file is replayed from its oldest record, one
//! batch per write, the replay position fsynced after each batch the store took; a
//! gateway that restarts with a backlog replays it first. [`Spool::degraded`] says the
//! store is failing or a backlog is on disk (for `/readyz` and the metrics).
//!
//! Exactly once: a record leaves memory only once it is written or fsynced to the file,
//! and leaves the file only once written. A write whose outcome is unknown (the
//! connection dropped after the store committed, before the acknowledgement arrived; or
//! a crash between the store committing a replayed batch and the replay position
//! reaching the disk) is retried, so each record carries a [`Stamp`] and the stores'
//! `*_once` writes skip what an earlier try already committed.

mod file;
mod writer;

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Deref;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::StoreError;
use file::SpillFile;
use writer::Writer;

/// Where and how much a spool may spill while the store is down.
#[derive(Debug, Clone)]
pub struct SpillConfig {
    pub dir: PathBuf,
    /// Bytes of unreplayed records the file may hold; past it admission refuses.
    pub max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// The spool's name: its metric label and its spill file's name.
    pub name: &'static str,
    /// Records held in memory before admission waits (backpressure).
    pub memory_bound: usize,
    /// Records per write at most.
    pub max_batch: usize,
    /// Longest a record waits for its batch to fill before it is written.
    pub flush_interval: Duration,
    pub spill: Option<SpillConfig>,
}

impl SpoolConfig {
    /// The defaults every bookkeeping queue starts from: 50 ms batches of up to 2,000.
    pub fn new(name: &'static str) -> SpoolConfig {
        SpoolConfig {
            name,
            memory_bound: 50_000,
            max_batch: 2_000,
            flush_interval: Duration::from_millis(50),
            spill: None,
        }
    }
}

/// A record's origin and place: the spool instance that accepted it (a random id drawn
/// when the spool starts) and its sequence number there (1, 2, 3, … in push order).
/// The stores' `*_once` writes keep, per spool and origin, the highest sequence written,
/// in the batch's own transaction, and skip records at or below it: a batch retried
/// because its commit's acknowledgement was lost is not written twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct Stamp {
    pub origin: i64,
    pub seq: i64,
}

/// One write: the records in order and each one's stamp (`None` for a record a gateway
/// without stamps spilled: written unconditionally, as it was then).
#[derive(Debug)]
pub struct Batch<T> {
    /// The spool's name (`ledger`, `audit`, …): the stores keep marks per spool.
    pub spool: &'static str,
    pub items: Vec<T>,
    pub stamps: Vec<Option<Stamp>>,
}

impl<T> Deref for Batch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

/// Writes one batch: all or none.
pub type WriteFn<T> = Arc<
    dyn Fn(Arc<Batch<T>>) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>
        + Send
        + Sync,
>;

/// For a batch about to be written once: which records no earlier try committed, given
/// each origin's mark (the highest sequence already written; absent: none), and the marks
/// to record with them.
pub(crate) fn unwritten(
    stamps: &[Option<Stamp>],
    marks: &std::collections::HashMap<i64, i64>,
) -> (Vec<bool>, Vec<(i64, i64)>) {
    let mut highest: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
    let keep = stamps
        .iter()
        .map(|s| match s {
            None => true,
            Some(s) => {
                let h = highest.entry(s.origin).or_insert(i64::MIN);
                *h = (*h).max(s.seq);
                s.seq > marks.get(&s.origin).copied().unwrap_or(0)
            }
        })
        .collect();
    (keep, highest.into_iter().collect())
}

/// The records of `items` whose `keep` is true (borrowed when all are).
pub(crate) fn kept<'a, T: Clone>(items: &'a [T], keep: &[bool]) -> std::borrow::Cow<'a, [T]> {
    if keep.iter().all(|k| *k) {
        return std::borrow::Cow::Borrowed(items);
    }
    std::borrow::Cow::Owned(
        items
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(r, _)| r.clone())
            .collect(),
    )
}

/// A spill-file line: the stamp and the record.
#[derive(Serialize)]
struct LineOut<'a, T> {
    o: i64,
    s: i64,
    r: &'a T,
}

#[derive(serde::Deserialize)]
struct LineIn<T> {
    o: i64,
    s: i64,
    r: T,
}

/// The [`ForgetFn`] of a spool whose write function records marks in `store`.
pub fn forget_in(store: Arc<dyn crate::Store>) -> ForgetFn {
    Arc::new(move |spool: &'static str, origins: Vec<i64>| {
        let store = store.clone();
        Box::pin(async move { store.forget_spool_marks(spool, &origins).await })
    })
}

/// Told how long each written batch took (metrics).
pub type FlushHook = Arc<dyn Fn(Duration) + Send + Sync>;

/// Deletes the store's marks of a spool's origins (`spool_marks` would otherwise keep one
/// row per spool per gateway start, forever). The writer calls it only for origins whose
/// records can never be tried again: its own when it closes with everything written
/// (nothing in memory, nothing on disk), and a previous run's once its spill file has been
/// replayed to the end with the replay position safely on disk. A mark that a retry or a
/// later replay could still need is never forgotten; a run killed without a spill backlog
/// leaves its marks behind (one row per spool).
pub type ForgetFn = Arc<
    dyn Fn(&'static str, Vec<i64>) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>
        + Send
        + Sync,
>;

/// Counters for metrics, `/readyz` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records written to the store.
    pub written: u64,
    /// Batches written.
    pub batches: u64,
    /// Records accepted and not yet written (in memory or on disk).
    pub pending: u64,
    /// Of those, held in memory.
    pub in_memory: u64,
    /// Of those, in the spill file.
    pub on_disk: u64,
    /// Bytes of the spill file not yet replayed.
    pub disk_bytes: u64,
    /// Records that ever went through the spill file.
    pub spilled: u64,
    /// Writes that failed (and were retried).
    pub write_errors: u64,
    /// Records lost: pushed after close, given up on at close without a spill file, or
    /// unreadable in the spill file. Always logged.
    pub lost: u64,
    /// The last write failed.
    pub failing: bool,
}

#[derive(Default)]
struct Shared {
    accepted: AtomicU64,
    written: AtomicU64,
    batches: AtomicU64,
    on_disk: AtomicU64,
    disk_bytes: AtomicU64,
    spilled: AtomicU64,
    write_errors: AtomicU64,
    lost: AtomicU64,
    failing: AtomicBool,
    closed: AtomicBool,
    /// Woken after every batch written or spilled (for [`Spool::wait_for_room`]).
    progress: Notify,
    on_flush: OnceLock<FlushHook>,
    forget: OnceLock<ForgetFn>,
}

impl Shared {
    fn in_memory(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed).saturating_sub(
            self.written.load(Ordering::Relaxed)
                + self.on_disk.load(Ordering::Relaxed)
                + self.lost.load(Ordering::Relaxed),
        )
    }
}

enum Msg<T> {
    Item(T),
    /// Answer once everything before it is written, or (store failing) on disk.
    Flush(oneshot::Sender<()>),
    /// Like flush, then stop.
    Close(oneshot::Sender<()>),
}

/// A bounded, spilling, batched writer. Share it behind an `Arc`.
pub struct Spool<T> {
    tx: mpsc::UnboundedSender<Msg<T>>,
    gauge: SpoolGauge,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl<T> std::fmt::Debug for Spool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("name", &self.gauge.name)
            .finish()
    }
}

/// A spool's state without its record type: for admission, `/readyz` and metrics, which
/// look at every spool alike. Cheap to clone.
#[derive(Clone)]
pub struct SpoolGauge {
    name: &'static str,
    shared: Arc<Shared>,
    memory_bound: u64,
    spill_max: Option<u64>,
}

impl std::fmt::Debug for SpoolGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolGauge")
            .field("name", &self.name)
            .finish()
    }
}

impl SpoolGauge {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Too much is held: admission should wait (or refuse) rather than take more work.
    pub fn full(&self) -> bool {
        self.shared.in_memory() > self.memory_bound
            || self
                .spill_max
                .is_some_and(|m| self.shared.disk_bytes.load(Ordering::Relaxed) >= m)
    }

    /// Waits until the spool is not [`full`](Self::full), at most until `deadline`; false
    /// if it still is.
    pub async fn wait_for_room(&self, deadline: Instant) -> bool {
        loop {
            let progressed = self.shared.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            if !self.full() {
                return true;
            }
            tokio::select! {
                _ = &mut progressed => {}
                _ = tokio::time::sleep_until(deadline) => return !self.full(),
            }
        }
    }

    /// The store is failing or a backlog waits on disk.
    pub fn degraded(&self) -> bool {
        self.shared.failing.load(Ordering::Relaxed)
            || self.shared.on_disk.load(Ordering::Relaxed) > 0
    }

    pub fn stats(&self) -> SpoolStats {
        let s = &self.shared;
        let written = s.written.load(Ordering::Relaxed);
        let lost = s.lost.load(Ordering::Relaxed);
        SpoolStats {
            written,
            batches: s.batches.load(Ordering::Relaxed),
            pending: s
                .accepted
                .load(Ordering::Relaxed)
                .saturating_sub(written + lost),
            in_memory: s.in_memory(),
            on_disk: s.on_disk.load(Ordering::Relaxed),
            disk_bytes: s.disk_bytes.load(Ordering::Relaxed),
            spilled: s.spilled.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            lost,
            failing: s.failing.load(Ordering::Relaxed),
        }
    }
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Spool<T> {
    /// Starts the writer task on the current runtime. A spill directory that cannot be
    /// opened is logged and the spool runs without one (records then stay in memory,
    /// bounded by admission).
    pub fn start(config: SpoolConfig, write: WriteFn<T>) -> Spool<T> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let disk = config.spill.as_ref().and_then(|s| {
            match SpillFile::open(&s.dir, config.name) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::error!(error = %e, spool = config.name, dir = %s.dir.display(),
                        "cannot open the spill file; records will stay in memory while the store is down");
                    None
                }
            }
        });
        if let Some(d) = &disk {
            if d.unread() > 0 {
                tracing::warn!(spool = config.name, records = d.unread(), file = %d.path().display(),
                    "replaying records spilled while the store was down");
            }
            shared.accepted.store(d.unread(), Ordering::Relaxed);
            shared.on_disk.store(d.unread(), Ordering::Relaxed);
            shared
                .disk_bytes
                .store(d.backlog_bytes(), Ordering::Relaxed);
        }
        let memory_bound = config.memory_bound.max(1) as u64;
        let spill_max = config.spill.as_ref().map(|s| s.max_bytes);
        let name = config.name;
        let task = tokio::spawn(Writer::new(config, write, shared.clone(), rx, disk).run());
        Spool {
            tx,
            gauge: SpoolGauge {
                name,
                shared,
                memory_bound,
                spill_max,
            },
            task: Mutex::new(Some(task)),
        }
    }

    /// Queues a record without waiting.
    pub fn push(&self, item: T) {
        if self.gauge.shared.closed.load(Ordering::Acquire) {
            self.lose(1, "record handed to a closed spool");
            return;
        }
        self.gauge.shared.accepted.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Item(item)).is_err() {
            self.lose(1, "spool writer has stopped");
        }
    }

    /// The spool's state for admission, `/readyz` and metrics.
    pub fn gauge(&self) -> SpoolGauge {
        self.gauge.clone()
    }

    pub fn full(&self) -> bool {
        self.gauge.full()
    }

    pub async fn wait_for_room(&self, deadline: Instant) -> bool {
        self.gauge.wait_for_room(deadline).await
    }

    pub fn degraded(&self) -> bool {
        self.gauge.degraded()
    }

    pub fn stats(&self) -> SpoolStats {
        self.gauge.stats()
    }

    /// Reports every later batch's write time to `hook` (set once).
    /// How to delete marks of finished origins (see [`ForgetFn`]); without it marks stay.
    pub fn forget_marks_with(&self, f: ForgetFn) {
        let _ = self.gauge.shared.forget.set(f);
    }

    pub fn on_flush(&self, hook: FlushHook) {
        let _ = self.gauge.shared.on_flush.set(hook);
    }

    /// Resolves once everything pushed before the call is written, or, while the store
    /// fails, safe in the spill file (without one: after a few failed tries).
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// Flushes and stops the writer; later pushes are counted as lost. Records still
    /// held (store down, no spill file) are counted as lost and logged.
    pub async fn close(&self) {
        if self.gauge.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Close(ack)).is_ok() {
            let _ = done.await;
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    fn lose(&self, n: u64, why: &'static str) {
        self.gauge.shared.lost.fetch_add(n, Ordering::Relaxed);
        tracing::error!(spool = self.gauge.name, records = n, "{why}: records lost");
    }
}

#[cfg(test)]
mod tests;
