//! A batched background writer: the request path pushes items without waiting; one task
//! writes them at most [`MAX_DELAY`] after the first item of a batch arrived, and
//! [`BatchWriter::flush`] drains everything pending (used at shutdown).
//!
//! For metrics it counts what is pending (an atomic, no lock on the push path) and
//! reports each batch's write time to an optional [`FlushHook`].

use futures::future::BoxFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Product.md §5: batches are written at most 50 ms apart.
pub const MAX_DELAY: Duration = Duration::from_millis(50);
const MAX_BATCH: usize = 1000;

enum Msg<T> {
    Item(T),
    Flush(oneshot::Sender<()>),
}

pub type WriteFn<T> = Arc<dyn Fn(Vec<T>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Told how long each batch took to write (metrics).
pub type FlushHook = Arc<dyn Fn(Duration) + Send + Sync>;

#[derive(Default)]
struct Stats {
    pending: AtomicU64,
    on_flush: OnceLock<FlushHook>,
}

pub struct BatchWriter<T> {
    tx: mpsc::UnboundedSender<Msg<T>>,
    stats: Arc<Stats>,
}

impl<T> std::fmt::Debug for BatchWriter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchWriter")
    }
}

impl<T: Send + 'static> BatchWriter<T> {
    /// Spawns the writer task; `write` persists one batch (and logs its own failures).
    pub fn spawn(write: WriteFn<T>) -> BatchWriter<T> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg<T>>();
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        tokio::spawn(async move {
            loop {
                let Some(first) = rx.recv().await else { break };
                let mut batch = Vec::new();
                let mut acks = Vec::new();
                match first {
                    Msg::Item(i) => batch.push(i),
                    Msg::Flush(a) => acks.push(a),
                }
                let deadline = tokio::time::Instant::now() + MAX_DELAY;
                while acks.is_empty() && batch.len() < MAX_BATCH {
                    tokio::select! {
                        m = rx.recv() => match m {
                            Some(Msg::Item(i)) => batch.push(i),
                            Some(Msg::Flush(a)) => acks.push(a),
                            None => break,
                        },
                        _ = tokio::time::sleep_until(deadline) => break,
                    }
                }
                // A flush also takes whatever is already queued behind it.
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Msg::Item(i) => batch.push(i),
                        Msg::Flush(a) => acks.push(a),
                    }
                }
                if !batch.is_empty() {
                    let n = batch.len() as u64;
                    let started = Instant::now();
                    write(batch).await;
                    st.pending.fetch_sub(n, Ordering::Relaxed);
                    if let Some(hook) = st.on_flush.get() {
                        hook(started.elapsed());
                    }
                }
                for a in acks {
                    let _ = a.send(());
                }
            }
        });
        BatchWriter { tx, stats }
    }

    /// Queues one item; never blocks.
    pub fn push(&self, item: T) {
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Item(item)).is_err() {
            self.stats.pending.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("batch writer has stopped; a record was dropped");
        }
    }

    /// Items pushed and not yet written.
    pub fn pending(&self) -> u64 {
        self.stats.pending.load(Ordering::Relaxed)
    }

    /// Reports every later batch's write time to `hook` (set once).
    pub fn on_flush(&self, hook: FlushHook) {
        let _ = self.stats.on_flush.set(hook);
    }

    /// Resolves once everything pushed before the call is written.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn pending_counts_unwritten_items_and_the_hook_sees_each_batch() {
        let (release, gate) = tokio::sync::watch::channel(false);
        let written = Arc::new(Mutex::new(0usize));
        let w = written.clone();
        let writer = BatchWriter::spawn(Arc::new(move |batch: Vec<u32>| {
            let (mut gate, w) = (gate.clone(), w.clone());
            Box::pin(async move {
                let _ = gate.wait_for(|open| *open).await;
                *w.lock().unwrap() += batch.len();
            })
        }));
        let batches = Arc::new(Mutex::new(0usize));
        let b = batches.clone();
        writer.on_flush(Arc::new(move |_| *b.lock().unwrap() += 1));
        for i in 0..5 {
            writer.push(i);
        }
        assert_eq!(writer.pending(), 5);
        release.send(true).unwrap();
        writer.flush().await;
        assert_eq!(writer.pending(), 0);
        assert_eq!(*written.lock().unwrap(), 5);
        assert!(*batches.lock().unwrap() >= 1);
    }
}
