//! The spool's one background task: gathers pushed records into batches, writes them
//! with backoff while the store fails, spills to and replays from the file (the
//! behaviour the module documentation of [`super`] describes).

use super::*;

/// The batch being written: from memory, or read back from the spill file (then with the
/// file position after it and how many lines it took).
struct Head<T> {
    batch: Arc<Batch<T>>,
    from_disk: Option<(u64, u64)>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Without a spill file, a flush waits this many failed writes before answering.
const FLUSH_TRIES: u32 = 5;

pub(super) struct Writer<T> {
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
    /// Origins of earlier runs read back from the spill file, and whether every replay
    /// position since was recorded: their marks can go once the file is replayed.
    replayed: std::collections::BTreeSet<i64>,
    replay_positions_safe: bool,
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Writer<T> {
    pub(super) fn new(
        config: SpoolConfig,
        write: WriteFn<T>,
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<Msg<T>>,
        disk: Option<SpillFile>,
    ) -> Writer<T> {
        Writer {
            config,
            write,
            shared,
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
            replayed: Default::default(),
            replay_positions_safe: true,
        }
    }

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

    pub(super) async fn run(mut self) {
        loop {
            self.gather().await;
            if self.chan_closed && self.idle() && self.acks.is_empty() && self.closing.is_none() {
                return;
            }
            self.maybe_spill().await;
            self.take_head().await;
            self.write_head().await;
            if self.answer_waiters() {
                // Closed with everything written: this run's records can never be tried
                // again, so its marks can go.
                if self.idle() && self.backoff.is_none() && self.next_seq > 1 {
                    self.forget(vec![self.origin]).await;
                }
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
                                if let Some(s) = s.filter(|s| s.origin != self.origin) {
                                    self.replayed.insert(s.origin);
                                }
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
                                    self.replay_positions_safe = false;
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
                    // The earlier runs' records are all written and the file says so:
                    // nothing can replay them again.
                    if self.disk_unread() == 0 && !self.replayed.is_empty() {
                        let done = std::mem::take(&mut self.replayed);
                        if std::mem::replace(&mut self.replay_positions_safe, true) {
                            self.forget(done.into_iter().collect()).await;
                        }
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

    /// Deletes the store's marks of `origins` (see [`ForgetFn`]); a failure only leaves
    /// them behind.
    async fn forget(&self, origins: Vec<i64>) {
        let Some(f) = self.shared.forget.get() else {
            return;
        };
        if let Err(e) = f(self.config.name, origins).await {
            tracing::warn!(error = %e, spool = self.config.name,
                "deleting finished spool marks failed; they stay (harmless)");
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
