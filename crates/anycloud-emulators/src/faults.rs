//! Fault injection shared by every emulated cloud.
//!
//! A [`Faults`] value lives inside each running emulator. Tests and the HTTP control plane
//! (`POST /_emulator/faults`) flip its knobs; the request path reads them with cheap atomic
//! loads (a mutex is taken only when a countdown or a random failure is armed).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const DEFAULT_SEED: u64 = 0x5eed_a11c_10ad;
const OFF: u64 = u64::MAX;

/// A failure the emulator must answer with instead of serving the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFailure {
    /// HTTP status to answer with.
    pub status: u16,
    /// Value of the `retry-after` header (seconds), if any.
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug)]
struct Armed {
    fail_next: u32,
    fail_next_status: u16,
    fail_next_retry_after: Option<u64>,
    rng: StdRng,
}

/// Fault-injection knobs of one emulator. All methods take `&self`.
#[derive(Debug)]
pub struct Faults {
    armed_count: AtomicU32,
    fail_rate_bits: AtomicU64,
    fail_rate_status: AtomicU32,
    latency_us: AtomicU64,
    chunk_delay_us: AtomicU64,
    /// Streams sent one byte at a time, this long apart (0: off).
    trickle_us: AtomicU64,
    cut_after: AtomicU64,
    stall_after: AtomicU64,
    refuse: AtomicBool,
    armed: Mutex<Armed>,
    /// Mid-stream error: after K frames, an in-stream error of this type (status stays 200).
    stream_error: Mutex<Option<(u32, String)>>,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new()
    }
}

fn lock(m: &Mutex<Armed>) -> std::sync::MutexGuard<'_, Armed> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX - 1)
}

impl Faults {
    /// Knobs all off.
    pub fn new() -> Self {
        Self {
            armed_count: AtomicU32::new(0),
            fail_rate_bits: AtomicU64::new(0f64.to_bits()),
            fail_rate_status: AtomicU32::new(503),
            latency_us: AtomicU64::new(0),
            chunk_delay_us: AtomicU64::new(0),
            trickle_us: AtomicU64::new(0),
            cut_after: AtomicU64::new(OFF),
            stall_after: AtomicU64::new(OFF),
            refuse: AtomicBool::new(false),
            armed: Mutex::new(Armed {
                fail_next: 0,
                fail_next_status: 503,
                fail_next_retry_after: None,
                rng: StdRng::seed_from_u64(DEFAULT_SEED),
            }),
            stream_error: Mutex::new(None),
        }
    }

    /// The next `n` model requests fail with `status` (and a `retry-after` header if given).
    /// Replaces any countdown still pending; `n = 0` disarms it.
    pub fn fail_next(&self, n: u32, status: u16, retry_after_secs: Option<u64>) {
        let mut a = lock(&self.armed);
        a.fail_next = n;
        a.fail_next_status = status;
        a.fail_next_retry_after = retry_after_secs;
        self.armed_count.store(n, Ordering::SeqCst);
    }

    /// Every model request fails with `status` with the given probability (clamped to 0..=1).
    /// The random sequence is deterministic; see [`Faults::seed`].
    pub fn fail_rate(&self, probability: f64, status: u16) {
        let p = if probability.is_nan() {
            0.0
        } else {
            probability.clamp(0.0, 1.0)
        };
        self.fail_rate_status
            .store(u32::from(status), Ordering::SeqCst);
        self.fail_rate_bits.store(p.to_bits(), Ordering::SeqCst);
    }

    /// Re-seed the generator behind [`Faults::fail_rate`].
    pub fn seed(&self, seed: u64) {
        lock(&self.armed).rng = StdRng::seed_from_u64(seed);
    }

    /// Delay before the response headers of every model request.
    pub fn set_latency(&self, d: Duration) {
        self.latency_us.store(micros(d), Ordering::SeqCst);
    }

    /// Delay between two events of a streamed response.
    pub fn set_chunk_delay(&self, d: Duration) {
        self.chunk_delay_us.store(micros(d), Ordering::SeqCst);
    }

    /// Streamed responses go out one byte per write, `d` apart (a cloud trickling one byte a
    /// second, say); `Duration::ZERO` turns it off. Takes precedence over the chunk delay;
    /// while on, cut and stall counts count bytes rather than events.
    pub fn trickle(&self, d: Duration) {
        self.trickle_us.store(micros(d), Ordering::SeqCst);
    }

    /// From now on (until [`Faults::reset`]) every streamed response sends `chunks` data
    /// events and then aborts the connection: no finish chunk if it was not among them, no
    /// usage chunk, never `data: [DONE]`.
    pub fn cut_stream_after(&self, chunks: u32) {
        self.cut_after.store(u64::from(chunks), Ordering::SeqCst);
    }

    /// From now on (until [`Faults::reset`]) every streamed response sends `chunks` events
    /// and then nothing more, with the connection held open: a cloud that hangs mid-answer.
    pub fn stall_stream_after(&self, chunks: u32) {
        self.stall_after.store(u64::from(chunks), Ordering::SeqCst);
    }

    /// Streams send `chunks` events, then an in-stream error of type `kind` (for Bedrock an
    /// exception frame such as `throttlingException`) inside the HTTP 200 response, until
    /// [`Faults::reset`] or [`Faults::clear_stream_error`]. Takes precedence over a cut.
    pub fn stream_error_after(&self, chunks: u32, kind: &str) {
        *self
            .stream_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((chunks, kind.to_string()));
    }

    /// Turn [`Faults::stream_error_after`] off.
    pub fn clear_stream_error(&self) {
        *self
            .stream_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// While on, new connections are accepted and dropped at once (the client sees a reset or
    /// closed connection) and requests on already-open connections are dropped unanswered.
    /// Control-plane requests (`/_emulator/...`) are still served so the knob can be turned off.
    pub fn refuse_connections(&self, on: bool) {
        self.refuse.store(on, Ordering::SeqCst);
    }

    /// Turn every knob off (the random generator is re-seeded with the default seed).
    pub fn reset(&self) {
        self.fail_next(0, 503, None);
        self.fail_rate(0.0, 503);
        self.set_latency(Duration::ZERO);
        self.set_chunk_delay(Duration::ZERO);
        self.trickle(Duration::ZERO);
        self.cut_after.store(OFF, Ordering::SeqCst);
        self.stall_after.store(OFF, Ordering::SeqCst);
        self.refuse_connections(false);
        self.seed(DEFAULT_SEED);
        self.clear_stream_error();
    }

    // ---- read side, used by the servers ----

    /// Decide whether this request fails. Consumes one `fail_next` count if armed.
    pub(crate) fn take_failure(&self) -> Option<InjectedFailure> {
        let p = f64::from_bits(self.fail_rate_bits.load(Ordering::SeqCst));
        if self.armed_count.load(Ordering::SeqCst) == 0 && p <= 0.0 {
            return None;
        }
        let mut a = lock(&self.armed);
        if a.fail_next > 0 {
            a.fail_next -= 1;
            self.armed_count.store(a.fail_next, Ordering::SeqCst);
            return Some(InjectedFailure {
                status: a.fail_next_status,
                retry_after_secs: a.fail_next_retry_after,
            });
        }
        if p > 0.0 && a.rng.gen::<f64>() < p {
            let status = u16::try_from(self.fail_rate_status.load(Ordering::SeqCst)).unwrap_or(503);
            return Some(InjectedFailure {
                status,
                retry_after_secs: None,
            });
        }
        None
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::SeqCst))
    }

    pub(crate) fn chunk_delay(&self) -> Duration {
        Duration::from_micros(self.chunk_delay_us.load(Ordering::SeqCst))
    }

    pub(crate) fn trickle_delay(&self) -> Duration {
        Duration::from_micros(self.trickle_us.load(Ordering::SeqCst))
    }

    pub(crate) fn cut_after(&self) -> Option<u32> {
        count_knob(&self.cut_after)
    }

    pub(crate) fn stall_after(&self) -> Option<u32> {
        count_knob(&self.stall_after)
    }

    pub(crate) fn stream_error(&self) -> Option<(u32, String)> {
        self.stream_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn refusing(&self) -> bool {
        self.refuse.load(Ordering::SeqCst)
    }

    /// Apply a control-plane document (see the crate docs). All fields are optional; the
    /// document is validated completely before anything is changed.
    pub(crate) fn apply_json(&self, doc: &Value) -> Result<(), String> {
        let obj = doc.as_object().ok_or("body must be a JSON object")?;
        let known = [
            "fail_next",
            "fail_rate",
            "latency_ms",
            "chunk_delay_ms",
            "trickle_ms",
            "cut_stream_after",
            "stall_stream_after",
            "refuse_connections",
            "seed",
            "stream_error_after",
        ];
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("unknown field '{k}'"));
        }
        let fail_next = match obj.get("fail_next") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let count = u32_field(v, "count")?.unwrap_or(1);
                let status = status_field(v)?;
                let retry = match v.get("retry_after") {
                    None | Some(Value::Null) => None,
                    Some(r) => Some(
                        r.as_u64()
                            .ok_or("fail_next.retry_after must be an integer")?,
                    ),
                };
                Some((count, status, retry))
            }
        };
        let fail_rate = match obj.get("fail_rate") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let p = v
                    .get("probability")
                    .and_then(Value::as_f64)
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or("fail_rate.probability must be a number in 0..=1")?;
                Some((p, status_field(v)?))
            }
        };
        let ms = |key: &str| -> Result<Option<Duration>, String> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(|n| Some(Duration::from_millis(n)))
                    .ok_or(format!("{key} must be a non-negative integer")),
            }
        };
        let latency = ms("latency_ms")?;
        let chunk_delay = ms("chunk_delay_ms")?;
        let trickle = ms("trickle_ms")?;
        let cut = count_setting(obj, "cut_stream_after")?;
        let stall = count_setting(obj, "stall_stream_after")?;
        let refuse = match obj.get("refuse_connections") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_bool().ok_or("refuse_connections must be a boolean")?),
        };
        // `{"chunks":K,"type":"throttlingException"}`, or null to turn it off.
        let stream_error = match obj.get("stream_error_after") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => {
                let k = u32_field(v, "chunks")?.ok_or("stream_error_after.chunks is required")?;
                let kind = v
                    .get("type")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .ok_or("stream_error_after.type must be a non-empty string")?;
                Some(Some((k, kind.to_string())))
            }
        };
        let seed = match obj.get("seed") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or("seed must be a non-negative integer")?),
        };

        if let Some(s) = seed {
            self.seed(s);
        }
        if let Some((n, status, retry)) = fail_next {
            self.fail_next(n, status, retry);
        }
        if let Some((p, status)) = fail_rate {
            self.fail_rate(p, status);
        }
        if let Some(d) = latency {
            self.set_latency(d);
        }
        if let Some(d) = chunk_delay {
            self.set_chunk_delay(d);
        }
        if let Some(d) = trickle {
            self.trickle(d);
        }
        match cut {
            Some(Some(k)) => self.cut_stream_after(k),
            Some(None) => self.cut_after.store(OFF, Ordering::SeqCst),
            None => {}
        }
        match stall {
            Some(Some(k)) => self.stall_stream_after(k),
            Some(None) => self.stall_after.store(OFF, Ordering::SeqCst),
            None => {}
        }
        if let Some(on) = refuse {
            self.refuse_connections(on);
        }
        match stream_error {
            Some(Some((k, kind))) => self.stream_error_after(k, &kind),
            Some(None) => self.clear_stream_error(),
            None => {}
        }
        Ok(())
    }
}

/// A count knob's value (`OFF` is off).
fn count_knob(knob: &AtomicU64) -> Option<u32> {
    let v = knob.load(Ordering::SeqCst);
    if v == OFF {
        None
    } else {
        u32::try_from(v).ok()
    }
}

/// A count setting of a control-plane document: absent leaves the knob alone
/// (`None`), `null` turns it off (`Some(None)`), a number sets it.
fn count_setting(
    obj: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<Option<u32>>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(|n| Some(Some(n)))
            .ok_or(format!("{key} must be a non-negative integer or null")),
    }
}

fn u32_field(v: &Value, key: &str) -> Result<Option<u32>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or(format!("{key} must be a non-negative integer")),
    }
}

fn status_field(v: &Value) -> Result<u16, String> {
    match v.get("status") {
        None | Some(Value::Null) => Ok(503),
        Some(s) => s
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (400..=599).contains(n))
            .ok_or_else(|| "status must be an HTTP error status (400..=599)".to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_counts_down() {
        let f = Faults::new();
        f.fail_next(2, 429, Some(3));
        let want = Some(InjectedFailure {
            status: 429,
            retry_after_secs: Some(3),
        });
        assert_eq!(f.take_failure(), want);
        assert_eq!(f.take_failure(), want);
        assert_eq!(f.take_failure(), None);
    }

    #[test]
    fn fail_rate_is_seeded_and_roughly_right() {
        let a = Faults::new();
        let b = Faults::new();
        a.fail_rate(0.3, 503);
        b.fail_rate(0.3, 503);
        a.seed(7);
        b.seed(7);
        let ra: Vec<bool> = (0..1000).map(|_| a.take_failure().is_some()).collect();
        let rb: Vec<bool> = (0..1000).map(|_| b.take_failure().is_some()).collect();
        assert_eq!(ra, rb);
        let hits = ra.iter().filter(|x| **x).count();
        assert!((200..400).contains(&hits), "hits = {hits}");
    }

    #[test]
    fn apply_json_validates_before_changing() {
        let f = Faults::new();
        let bad = serde_json::json!({"latency_ms": 5, "refuse_connections": "yes"});
        assert!(f.apply_json(&bad).is_err());
        assert_eq!(f.latency(), Duration::ZERO);
        let good = serde_json::json!({"latency_ms": 5, "cut_stream_after": 2,
            "fail_next": {"count": 1, "status": 500}});
        f.apply_json(&good).unwrap();
        assert_eq!(f.latency(), Duration::from_millis(5));
        assert_eq!(f.cut_after(), Some(2));
        assert_eq!(f.take_failure().map(|x| x.status), Some(500));
        f.apply_json(&serde_json::json!({"stall_stream_after": 4}))
            .unwrap();
        assert_eq!(f.stall_after(), Some(4));
        assert!(f
            .apply_json(&serde_json::json!({"stall_stream_after": -1}))
            .is_err());
        f.reset();
        assert_eq!(f.stall_after(), None);
        assert_eq!(f.cut_after(), None);
        assert_eq!(f.latency(), Duration::ZERO);
    }
}
