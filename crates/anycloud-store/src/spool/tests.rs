//! The spool against a store that can be made to fail: order, exactly once, bounds,
//! spilling and replay (also after a restart), and a torn spill file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::sync::atomic::AtomicBool;

/// A store stand-in: collects what was written, fails while `down`.
#[derive(Default)]
struct Target {
    written: Mutex<Vec<u64>>,
    down: AtomicBool,
}

fn writer(t: &Arc<Target>) -> WriteFn<u64> {
    let t = t.clone();
    Arc::new(move |batch: Arc<Batch<u64>>| {
        let t = t.clone();
        Box::pin(async move {
            if t.down.load(Ordering::SeqCst) {
                return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
            }
            t.written.lock().unwrap().extend(batch.iter().copied());
            Ok(())
        })
    })
}

fn config(dir: Option<&std::path::Path>, bound: usize) -> SpoolConfig {
    SpoolConfig {
        name: "test",
        memory_bound: bound,
        max_batch: 16,
        flush_interval: Duration::from_millis(5),
        spill: dir.map(|d| SpillConfig {
            dir: d.to_path_buf(),
            max_bytes: 1 << 20,
        }),
    }
}

#[tokio::test]
async fn records_are_written_in_order_in_batches_and_flush_waits_for_them() {
    let t = Arc::new(Target::default());
    let s = Spool::start(config(None, 1000), writer(&t));
    for i in 0..100 {
        s.push(i);
    }
    s.flush().await;
    assert_eq!(*t.written.lock().unwrap(), (0..100).collect::<Vec<_>>());
    let st = s.stats();
    assert_eq!((st.written, st.pending, st.lost), (100, 0, 0));
    assert!(st.batches >= 7, "batches of at most 16: {}", st.batches);
    assert!(!s.degraded());
}

#[tokio::test]
async fn a_store_outage_spills_to_disk_and_replays_everything_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let t = Arc::new(Target::default());
    t.down.store(true, Ordering::SeqCst);
    let s = Spool::start(config(Some(dir.path()), 20), writer(&t));
    for i in 0..200 {
        s.push(i);
    }
    // While the store is down, flush means "durable on disk".
    s.flush().await;
    let st = s.stats();
    assert!(st.failing && s.degraded(), "{st:?}");
    assert_eq!(st.on_disk, 200, "{st:?}");
    assert_eq!(st.in_memory, 0);
    assert!(
        !s.full(),
        "spilled records do not count against the memory bound"
    );
    // More records arrive while the backlog waits: they queue behind it.
    t.down.store(false, Ordering::SeqCst);
    for i in 200..250 {
        s.push(i);
    }
    s.flush().await;
    assert_eq!(*t.written.lock().unwrap(), (0..250).collect::<Vec<_>>());
    let st = s.stats();
    assert_eq!((st.on_disk, st.disk_bytes, st.pending), (0, 0, 0), "{st:?}");
    assert!(!s.degraded());
    assert_eq!(
        std::fs::metadata(dir.path().join("test.spool"))
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn a_backlog_left_by_a_stopped_gateway_is_replayed_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let t = Arc::new(Target::default());
    t.down.store(true, Ordering::SeqCst);
    let s = Spool::start(config(Some(dir.path()), 1000), writer(&t));
    for i in 0..30 {
        s.push(i);
    }
    s.close().await;
    assert_eq!(s.stats().lost, 0);
    assert!(t.written.lock().unwrap().is_empty());

    t.down.store(false, Ordering::SeqCst);
    let s = Spool::start(config(Some(dir.path()), 1000), writer(&t));
    assert_eq!(s.stats().on_disk, 30);
    s.push(30);
    s.flush().await;
    assert_eq!(*t.written.lock().unwrap(), (0..31).collect::<Vec<_>>());
    s.close().await;
    // A third start finds nothing to replay.
    let s = Spool::start(config(Some(dir.path()), 1000), writer(&t));
    assert_eq!(s.stats().on_disk, 0);
}

#[tokio::test]
async fn without_a_spill_file_a_failing_store_fills_memory_and_admission_waits() {
    let t = Arc::new(Target::default());
    t.down.store(true, Ordering::SeqCst);
    let s = Spool::start(config(None, 10), writer(&t));
    for i in 0..11 {
        s.push(i);
    }
    assert!(s.full());
    let soon = Instant::now() + Duration::from_millis(30);
    assert!(
        !s.wait_for_room(soon).await,
        "no room while the store is down"
    );
    t.down.store(false, Ordering::SeqCst);
    let later = Instant::now() + Duration::from_secs(5);
    assert!(s.wait_for_room(later).await);
    s.flush().await;
    assert_eq!(t.written.lock().unwrap().len(), 11);
}

#[tokio::test]
async fn a_full_spill_file_makes_the_spool_full() {
    let dir = tempfile::tempdir().unwrap();
    let t = Arc::new(Target::default());
    t.down.store(true, Ordering::SeqCst);
    let mut cfg = config(Some(dir.path()), 4);
    cfg.spill = Some(SpillConfig {
        dir: dir.path().to_path_buf(),
        max_bytes: 8,
    });
    let s = Spool::start(cfg, writer(&t));
    for i in 0..100 {
        s.push(i);
    }
    let deadline = Instant::now() + Duration::from_millis(200);
    assert!(!s.wait_for_room(deadline).await);
    assert!(s.full());
    t.down.store(false, Ordering::SeqCst);
    s.flush().await;
    assert_eq!(*t.written.lock().unwrap(), (0..100).collect::<Vec<_>>());
    assert!(!s.full());
}

#[tokio::test]
async fn pushes_after_close_are_counted_as_lost() {
    let t = Arc::new(Target::default());
    let s = Spool::start(config(None, 10), writer(&t));
    s.push(1);
    s.close().await;
    s.push(2);
    let st = s.stats();
    assert_eq!((st.written, st.lost), (1, 1));
}

#[test]
fn a_torn_last_line_is_cut_off_and_the_offset_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.spool"), b"1\n2\n3\n{\"torn").unwrap();
    std::fs::write(dir.path().join("x.offset"), b"2\n").unwrap();
    let f = SpillFile::open(dir.path(), "x").unwrap();
    assert_eq!(
        f.unread(),
        2,
        "records 2 and 3; 1 was replayed, the tail is torn"
    );
    let (lines, pos) = f.read(10).unwrap();
    assert_eq!(lines, vec![b"2\n".to_vec(), b"3\n".to_vec()]);
    assert_eq!(pos, 6);
    assert_eq!(
        std::fs::metadata(dir.path().join("x.spool")).unwrap().len(),
        6
    );
}

/// A store whose commits succeed but whose acknowledgements are lost while `lossy`:
/// records every try's stamps and values, and honours stamps as the stores' `*_once`
/// writes do (one high mark per origin).
#[derive(Default)]
struct LossyTarget {
    tries: Mutex<Vec<(Option<Stamp>, u64)>>,
    marks: Mutex<std::collections::HashMap<i64, i64>>,
    written: Mutex<Vec<u64>>,
    lossy: AtomicBool,
}

fn lossy_writer(t: &Arc<LossyTarget>) -> WriteFn<u64> {
    let t = t.clone();
    Arc::new(move |batch: Arc<Batch<u64>>| {
        let t = t.clone();
        Box::pin(async move {
            let mut marks = t.marks.lock().unwrap();
            for (s, v) in batch.stamps.iter().zip(batch.items.iter()) {
                t.tries.lock().unwrap().push((*s, *v));
                let s = s.expect("every record is stamped");
                let mark = marks.entry(s.origin).or_insert(0);
                if s.seq > *mark {
                    *mark = s.seq;
                    t.written.lock().unwrap().push(*v);
                }
            }
            if t.lossy.load(Ordering::SeqCst) {
                return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
            }
            Ok(())
        })
    })
}

#[tokio::test]
async fn stamps_stay_with_their_records_through_retries_spills_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t = Arc::new(LossyTarget::default());
    t.lossy.store(true, Ordering::SeqCst);
    let s = Spool::start(config(Some(dir.path()), 20), lossy_writer(&t));
    for i in 0..60 {
        s.push(i);
    }
    // Commits land, acknowledgements don't: the spool retries, then spills.
    s.flush().await;
    s.close().await;
    t.lossy.store(false, Ordering::SeqCst);
    // The next gateway replays the backlog with the first one's stamps, then its own.
    let s = Spool::start(config(Some(dir.path()), 20), lossy_writer(&t));
    for i in 60..80 {
        s.push(i);
    }
    s.flush().await;
    // Honouring stamps, each record was written once and in order, however often tried.
    assert_eq!(*t.written.lock().unwrap(), (0..80).collect::<Vec<_>>());
    let tries = t.tries.lock().unwrap();
    assert!(tries.len() > 80, "some batches were tried more than once");
    // One stamp means one record: retried and replayed tries carry the same stamp.
    let mut by_stamp = std::collections::HashMap::new();
    for (stamp, v) in tries.iter() {
        assert_eq!(*by_stamp.entry(stamp.unwrap()).or_insert(*v), *v);
    }
    assert_eq!(by_stamp.len(), 80);
    let origins: std::collections::HashSet<i64> = by_stamp.keys().map(|s| s.origin).collect();
    assert_eq!(origins.len(), 2, "one origin per spool start");
}

/// The forget hook of a [`LossyTarget`]: drops the marks and remembers each call.
fn forgetting(t: &Arc<LossyTarget>, calls: &Arc<Mutex<Vec<Vec<i64>>>>) -> ForgetFn {
    let (t, calls) = (t.clone(), calls.clone());
    Arc::new(move |spool: &'static str, origins: Vec<i64>| {
        assert_eq!(spool, "test");
        let mut marks = t.marks.lock().unwrap();
        for o in &origins {
            marks.remove(o);
        }
        calls.lock().unwrap().push(origins);
        Box::pin(async { Ok(()) })
    })
}

#[tokio::test]
async fn marks_are_forgotten_only_once_no_retry_or_replay_can_need_them() {
    let dir = tempfile::tempdir().unwrap();
    let t = Arc::new(LossyTarget::default());
    let calls = Arc::new(Mutex::new(Vec::new()));
    // Run 1 stops while the store fails (commits land, acknowledgements don't): its records
    // are in the spill file, some already committed — its mark is still needed.
    t.lossy.store(true, Ordering::SeqCst);
    let s = Spool::start(config(Some(dir.path()), 20), lossy_writer(&t));
    s.forget_marks_with(forgetting(&t, &calls));
    for i in 0..60 {
        s.push(i);
    }
    s.flush().await;
    s.close().await;
    assert!(
        calls.lock().unwrap().is_empty(),
        "a backlog on disk keeps its marks"
    );
    let first: Vec<i64> = t.marks.lock().unwrap().keys().copied().collect();
    assert_eq!(first.len(), 1);

    // Run 2 replays the backlog (the mark skips what was committed), then forgets run 1.
    t.lossy.store(false, Ordering::SeqCst);
    let s = Spool::start(config(Some(dir.path()), 20), lossy_writer(&t));
    s.forget_marks_with(forgetting(&t, &calls));
    for i in 60..80 {
        s.push(i);
    }
    s.flush().await;
    assert_eq!(*t.written.lock().unwrap(), (0..80).collect::<Vec<_>>());
    assert_eq!(
        *calls.lock().unwrap(),
        vec![first.clone()],
        "run 1 forgotten after its replay"
    );
    let second: Vec<i64> = t.marks.lock().unwrap().keys().copied().collect();
    assert_eq!(second.len(), 1, "run 2's own mark stays while it runs");
    assert_ne!(second, first);
    // A clean close with everything written forgets its own: nothing is left.
    s.close().await;
    assert_eq!(calls.lock().unwrap().len(), 2);
    assert!(t.marks.lock().unwrap().is_empty());
}
