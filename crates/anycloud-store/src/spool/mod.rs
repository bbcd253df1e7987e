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

/// Told how long each written batch took (metrics).
pub type FlushHook = Arc<dyn Fn(Duration) + Send + Sync>;

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
        let task = tokio::spawn(
            Writer {
                config,
                write,
                shared: shared.clone(),
                rx,
                disk,
                origin: rand::random::<i64>(),
                next_seq: 1,
                mem: VecDeque::new(),
                head: None,
                acks: Vec::new(),
                closing: None,
                chan_closed: false,
                backoff: None,
                failures_since_ack: 0,
                spill_blocked: false,
            }
            .run(),
        );
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

/// The batch being written: from memory, or read back from the spill file (then with the
/// file position after it and how many lines it took).
struct Head<T> {
    batch: Arc<Batch<T>>,
    from_disk: Option<(u64, u64)>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Without a spill file, a flush waits this many failed writes before answering.
const FLUSH_TRIES: u32 = 5;

struct Writer<T> {
    config: SpoolConfig,
    write: WriteFn<T>,
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Msg<T>>,
    disk: Option<SpillFile>,
    /// This spool instance's [`Stamp::origin`] and the next record's sequence number.
    origin: i64,
    next_seq: i64,
    /// Records not yet in a batch, with their sequence numbers.
    mem: VecDeque<(i64, T)>,
    head: Option<Head<T>>,
    acks: Vec<oneshot::Sender<()>>,
    closing: Option<oneshot::Sender<()>>,
    chan_closed: bool,
    /// Set while writes fail: how long to wait before the next try.
    backoff: Option<Duration>,
    failures_since_ack: u32,
    /// The last spill failed (file full or I/O error): wait out the backoff before trying
    /// again rather than spin.
    spill_blocked: bool,
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Writer<T> {
    fn disk_unread(&self) -> u64 {
        self.disk.as_ref().map_or(0, SpillFile::unread)
    }

    fn idle(&self) -> bool {
        self.head.is_none() && self.mem.is_empty() && self.disk_unread() == 0
    }

    fn waiting(&self) -> bool {
        !self.acks.is_empty() || self.closing.is_some() || self.chan_closed
    }

    fn spill_at(&self) -> usize {
        (self.config.memory_bound / 2).max(1)
    }

    fn accept(&mut self, m: Msg<T>) {
        match m {
            Msg::Item(i) => {
                self.mem.push_back((self.next_seq, i));
                self.next_seq += 1;
            }
            Msg::Flush(a) => self.acks.push(a),
            Msg::Close(a) => self.closing = Some(a),
        }
    }

    async fn run(mut self) {
        loop {
            self.gather().await;
            if self.chan_closed && self.idle() && self.acks.is_empty() && self.closing.is_none() {
                return;
            }
            self.maybe_spill().await;
            self.take_head().await;
            self.write_head().await;
            if self.answer_waiters() {
                return;
            }
        }
    }

    /// Collects queued messages: when idle, blocks for the first and then up to
    /// `flush_interval` more; while writes fail, for the backoff; otherwise without
    /// waiting.
    async fn gather(&mut self) {
        let until = if self.idle() && !self.waiting() {
            match self.rx.recv().await {
                Some(m) => self.accept(m),
                None => {
                    self.chan_closed = true;
                    return;
                }
            }
            Some(Instant::now() + self.config.flush_interval)
        } else {
            self.backoff.map(|b| Instant::now() + b)
        };
        loop {
            while !self.chan_closed && self.mem.len() < self.config.max_batch * 4 {
                match self.rx.try_recv() {
                    Ok(m) => self.accept(m),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => self.chan_closed = true,
                }
            }
            let Some(until) = until else { return };
            if self.waiting()
                || (self.backoff.is_none() && self.mem.len() >= self.config.max_batch)
                || (self.backoff.is_some()
                    && self.disk.is_some()
                    && !self.spill_blocked
                    && self.mem.len() >= self.spill_at())
            {
                return;
            }
            tokio::select! {
                m = self.rx.recv() => match m {
                    Some(m) => self.accept(m),
                    None => self.chan_closed = true,
                },
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }

    /// Moves what memory holds to the spill file when the store is failing and memory
    /// passes half its bound, when a backlog on disk must keep its place in line, or when
    /// a flush or close needs what is held to be durable.
    async fn maybe_spill(&mut self) {
        if self.disk.is_none() || (self.mem.is_empty() && self.head_in_memory() == 0) {
            return;
        }
        let failing = self.backoff.is_some();
        let held = self.mem.len() + self.head_in_memory();
        let should = (failing && (held >= self.spill_at() || self.waiting()))
            || (self.disk_unread() > 0 && self.mem.len() >= self.spill_at());
        if should {
            self.spill().await;
        }
    }

    fn head_in_memory(&self) -> usize {
        match &self.head {
            Some(h) if h.from_disk.is_none() => h.batch.items.len(),
            _ => 0,
        }
    }

    /// Appends the in-memory head (it is older) and then `mem` to the file.
    async fn spill(&mut self) {
        let Some(max) = self.config.spill.as_ref().map(|s| s.max_bytes) else {
            return;
        };
        let mut bytes = Vec::new();
        let mut n = 0u64;
        let head_items = match &self.head {
            Some(h) if h.from_disk.is_none() => Some(h.batch.clone()),
            _ => None,
        };
        let origin = self.origin;
        let held = head_items
            .iter()
            .flat_map(|h| {
                h.items
                    .iter()
                    .zip(h.stamps.iter())
                    .map(|(r, s)| (s.map_or(0, |s| s.seq), r))
            })
            .chain(self.mem.iter().map(|(s, r)| (*s, r)));
        for (seq, item) in held {
            let line = LineOut {
                o: origin,
                s: seq,
                r: item,
            };
            match serde_json::to_vec(&line) {
                Ok(mut line) => {
                    line.push(b'\n');
                    bytes.extend_from_slice(&line);
                    n += 1;
                }
                Err(e) => {
                    // Cannot happen for the record types spooled (plain data); if it did,
                    // keeping the record in memory is the safe choice.
                    tracing::error!(error = %e, spool = self.config.name, "a record cannot be serialized; not spilling");
                    return;
                }
            }
        }
        let Some(mut disk) = self.disk.take() else {
            return;
        };
        if disk.backlog_bytes() + bytes.len() as u64 > max {
            self.disk = Some(disk);
            self.spill_blocked = true;
            tracing::error!(
                spool = self.config.name,
                "the spill file is full: records stay in memory and new requests are refused"
            );
            return;
        }
        let joined = tokio::task::spawn_blocking(move || {
            let r = disk.append(&bytes, n);
            (disk, r)
        })
        .await;
        let Ok((disk, result)) = joined else {
            tracing::error!(
                spool = self.config.name,
                "the spill task failed; spilling is off"
            );
            return;
        };
        match result {
            Ok(()) => {
                self.spill_blocked = false;
                if head_items.is_some() {
                    self.head = None;
                }
                self.mem.clear();
                self.shared.spilled.fetch_add(n, Ordering::Relaxed);
                self.note_disk(&disk);
                if n > 0 {
                    tracing::warn!(
                        spool = self.config.name,
                        records = n,
                        backlog = disk.unread(),
                        "store unavailable: records spilled to disk"
                    );
                }
                self.shared.progress.notify_waiters();
            }
            Err(e) => {
                self.spill_blocked = true;
                tracing::error!(error = %e, spool = self.config.name, "spill write failed; records stay in memory")
            }
        }
        self.disk = Some(disk);
    }

    fn note_disk(&self, disk: &SpillFile) {
        self.shared.on_disk.store(disk.unread(), Ordering::Relaxed);
        self.shared
            .disk_bytes
            .store(disk.backlog_bytes(), Ordering::Relaxed);
    }

    /// The next batch: from the file while it holds a backlog, else from memory.
    async fn take_head(&mut self) {
        if self.head.is_some() {
            return;
        }
        if self.disk_unread() > 0 {
            let Some(disk) = self.disk.take() else { return };
            let max = self.config.max_batch;
            let joined = tokio::task::spawn_blocking(move || {
                let r = disk.read(max);
                (disk, r)
            })
            .await;
            let Ok((disk, result)) = joined else { return };
            self.disk = Some(disk);
            match result {
                Ok((lines, pos)) => {
                    let count = lines.len() as u64;
                    let mut items = Vec::with_capacity(lines.len());
                    let mut stamps = Vec::with_capacity(lines.len());
                    for line in lines {
                        // Stamped lines; a file spilled before stamps holds bare records.
                        let parsed = match serde_json::from_slice::<LineIn<T>>(&line) {
                            Ok(l) => Ok((
                                Some(Stamp {
                                    origin: l.o,
                                    seq: l.s,
                                }),
                                l.r,
                            )),
                            Err(_) => serde_json::from_slice::<T>(&line).map(|r| (None, r)),
                        };
                        match parsed {
                            Ok((s, r)) => {
                                stamps.push(s);
                                items.push(r);
                            }
                            Err(e) => tracing::error!(error = %e, spool = self.config.name,
                                "an unreadable record in the spill file is skipped"),
                        }
                    }
                    self.head = Some(Head {
                        batch: Arc::new(Batch {
                            spool: self.config.name,
                            items,
                            stamps,
                        }),
                        from_disk: Some((pos, count)),
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, spool = self.config.name, "reading the spill file failed");
                    self.backoff = Some(next_backoff(self.backoff));
                }
            }
            return;
        }
        if !self.mem.is_empty() {
            let n = self.config.max_batch.min(self.mem.len());
            let origin = self.origin;
            let (stamps, items) = self
                .mem
                .drain(..n)
                .map(|(seq, r)| (Some(Stamp { origin, seq }), r))
                .unzip();
            self.head = Some(Head {
                batch: Arc::new(Batch {
                    spool: self.config.name,
                    items,
                    stamps,
                }),
                from_disk: None,
            });
        }
    }

    async fn write_head(&mut self) {
        let Some(head) = &self.head else { return };
        let items = head.batch.clone();
        let from_disk = head.from_disk;
        let started = Instant::now();
        let result = if items.is_empty() {
            Ok(())
        } else {
            (self.write)(items.clone()).await
        };
        match result {
            Ok(()) => {
                let n = items.len() as u64;
                if let Some((pos, lines)) = from_disk {
                    if let Some(disk) = self.disk.take() {
                        let joined = tokio::task::spawn_blocking(move || {
                            let mut disk = disk;
                            let r = disk.commit(pos, lines);
                            (disk, r)
                        })
                        .await;
                        match joined {
                            Ok((disk, r)) => {
                                if let Err(e) = r {
                                    tracing::error!(error = %e, spool = self.config.name,
                                        "recording the replay position failed: this batch may be replayed again after a restart");
                                }
                                self.note_disk(&disk);
                                self.disk = Some(disk);
                            }
                            Err(_) => tracing::error!(
                                spool = self.config.name,
                                "the spill task failed; spilling is off"
                            ),
                        }
                    }
                    let unreadable = lines.saturating_sub(n);
                    if unreadable > 0 {
                        self.shared.lost.fetch_add(unreadable, Ordering::Relaxed);
                    }
                }
                if n > 0 {
                    self.shared.written.fetch_add(n, Ordering::Relaxed);
                    self.shared.batches.fetch_add(1, Ordering::Relaxed);
                    if let Some(hook) = self.shared.on_flush.get() {
                        hook(started.elapsed());
                    }
                }
                if self.backoff.take().is_some() {
                    tracing::info!(spool = self.config.name, "store writes succeed again");
                }
                self.shared.failing.store(false, Ordering::Relaxed);
                self.spill_blocked = false;
                self.head = None;
                self.shared.progress.notify_waiters();
            }
            Err(e) => {
                let errors = self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                if self.backoff.is_none() || errors.is_multiple_of(100) {
                    tracing::warn!(error = %e, spool = self.config.name, records = items.len(),
                        "store write failed; the batch is kept and retried");
                }
                self.shared.failing.store(true, Ordering::Relaxed);
                self.backoff = Some(next_backoff(self.backoff));
                self.failures_since_ack += 1;
            }
        }
    }

    /// Answers flushes and close; true when the writer should stop.
    fn answer_waiters(&mut self) -> bool {
        if !self.waiting() {
            self.failures_since_ack = 0;
            return false;
        }
        let in_memory = self.mem.len() + self.head_in_memory();
        let settled = if self.backoff.is_some() {
            // Store failing: durable on disk is enough (maybe_spill put it there).
            (in_memory == 0 && self.disk.is_some()) || self.failures_since_ack >= FLUSH_TRIES
        } else {
            self.idle()
        };
        if !settled {
            return false;
        }
        for a in self.acks.drain(..) {
            let _ = a.send(());
        }
        self.failures_since_ack = 0;
        if self.closing.is_some() || self.chan_closed {
            if in_memory > 0 && self.backoff.is_some() {
                self.shared
                    .lost
                    .fetch_add(in_memory as u64, Ordering::Relaxed);
                tracing::error!(
                    spool = self.config.name,
                    records = in_memory,
                    "the store is down and there is no spill file: records lost at shutdown"
                );
            }
            if let Some(a) = self.closing.take() {
                let _ = a.send(());
            }
            return true;
        }
        false
    }
}

fn next_backoff(b: Option<Duration>) -> Duration {
    match b {
        None => Duration::from_millis(50),
        Some(b) => (b * 2).min(MAX_BACKOFF),
    }
}

#[cfg(test)]
mod tests;
