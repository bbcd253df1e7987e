//! The connection to the Redis that several gateway instances share, and whether it
//! works right now.
//!
//! One multiplexed [`ConnectionManager`] serves the request path (scripts for rate
//! limits and budgets) and the admin path (drain state, broadcasts). Every call goes
//! through [`RedisLink::call`], which skips Redis at once while the link is down (so a
//! dead Redis costs requests nothing) and bounds each call by [`OP_TIMEOUT`] (so a
//! stalled Redis costs one request at most that long before the link is marked down).
//!
//! The link is *up* or *down*. It goes down when a call fails to reach Redis, and back up
//! when the health loop in [`super`] gets a `PING` answer. Every transition is a WARN
//! log line naming the mode now in force per feature; while down, the same WARN repeats
//! every [`WARN_EVERY`]; the `anycloud_redis_up` gauge and `/readyz` show it too.

use crate::redis_metrics::RedisMetrics;
use anycloud_config::RedisDownPolicy;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Longest a request waits for one Redis call before using its fallback.
pub const OP_TIMEOUT: Duration = Duration::from_millis(1000);
/// How often the WARN repeats while Redis stays unreachable.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The URL did not parse. The URL itself is never shown: it may hold a password.
    #[error("store.redis_url is not a valid Redis URL ({0})")]
    BadUrl(String),
}

/// A feature whose behaviour depends on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Budgets,
    RateLimits,
}

impl Feature {
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Budgets => "budgets",
            Feature::RateLimits => "rate_limits",
        }
    }
}

#[derive(Debug)]
struct Down {
    since: Instant,
    last_warn: Instant,
    error: String,
}

pub struct RedisLink {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    policy: RedisDownPolicy,
    up: AtomicBool,
    /// Bumped at every up → down transition, so local fallbacks know their view may be
    /// stale (see [`crate::budget`]).
    epoch: AtomicU64,
    // std Mutex: a few field updates, never held across an await.
    down: Mutex<Option<Down>>,
    metrics: RedisMetrics,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("prefix", &self.prefix)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// Builds the link and tries Redis once (at most [`OP_TIMEOUT`]). An unreachable
    /// Redis is not an error: the gateway starts in its down mode and says so.
    pub async fn connect(
        url: &SecretString,
        prefix: &str,
        policy: RedisDownPolicy,
        metrics: RedisMetrics,
    ) -> Result<RedisLink, LinkError> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| LinkError::BadUrl(e.category().to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT / 2))
            .set_response_timeout(Some(OP_TIMEOUT / 2))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| LinkError::BadUrl(e.category().to_string()))?;
        let now = Instant::now();
        let link = RedisLink {
            client,
            conn,
            prefix: prefix.to_string(),
            policy,
            up: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            down: Mutex::new(Some(Down {
                since: now,
                last_warn: now,
                error: "not yet connected".into(),
            })),
            metrics,
        };
        link.metrics.up.set(0);
        match link.ping().await {
            Ok(()) => link.came_up(),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    budgets = link.mode(Feature::Budgets),
                    rate_limits = link.mode(Feature::RateLimits),
                    drain_and_revocation = "this instance only",
                    "redis unreachable at start: serving with local state until it answers"
                );
                link.lock_down()
                    .get_or_insert_with(|| Down {
                        since: now,
                        last_warn: now,
                        error: String::new(),
                    })
                    .error = e;
            }
        }
        Ok(link)
    }

    /// `prefix` + the parts joined by `:`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        k.push_str(&parts.join(":"));
        k
    }

    /// The pub/sub channel every instance listens on.
    pub fn channel(&self) -> String {
        self.key(&["events"])
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn policy(&self) -> RedisDownPolicy {
        self.policy
    }

    /// The mode in force for a feature: `shared` while up, else the configured fallback.
    pub fn mode(&self, feature: Feature) -> &'static str {
        if self.is_up() {
            return "shared";
        }
        match feature {
            Feature::Budgets => self.policy.budgets.as_str(),
            Feature::RateLimits => self.policy.rate_limits.as_str(),
        }
    }

    /// Counts one decision taken by a fallback (`action`: `local`, `open`, `refused`).
    pub fn count_fallback(&self, feature: Feature, action: &'static str) {
        self.metrics.fallback(feature.as_str(), action);
    }

    /// Runs one Redis call with a clone of the shared connection. `None` when the link
    /// is down, the call failed or it took longer than [`OP_TIMEOUT`]; the caller then
    /// uses its fallback. A failure to reach Redis marks the link down.
    pub async fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return None;
        }
        match tokio::time::timeout(OP_TIMEOUT, f(self.conn.clone())).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) if is_unreachable(&e) => {
                self.went_down(what, e.to_string());
                None
            }
            Ok(Err(e)) => {
                // Redis answered with an error: a bug or a misconfigured server, not an
                // outage. This call falls back; the link stays up.
                tracing::error!(error = %e, op = what, "redis refused a command");
                None
            }
            Err(_) => {
                self.went_down(
                    what,
                    format!("no answer within {} ms", OP_TIMEOUT.as_millis()),
                );
                None
            }
        }
    }

    /// `PING` with the shared connection, at most [`OP_TIMEOUT`].
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let ping = async move { redis::cmd("PING").query_async::<String>(&mut conn).await };
        match tokio::time::timeout(OP_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", OP_TIMEOUT.as_millis())),
        }
    }

    /// One health check (the loop in [`super`] calls it every second): true when the
    /// link has just come back up, so the caller can resynchronise.
    pub async fn check(&self) -> bool {
        match self.ping().await {
            Ok(()) if !self.is_up() => {
                self.came_up();
                true
            }
            Ok(()) => false,
            Err(e) if self.is_up() => {
                self.went_down("ping", e);
                false
            }
            Err(e) => {
                self.still_down(e);
                false
            }
        }
    }

    fn came_up(&self) {
        let was = self.lock_down().take();
        self.up.store(true, Ordering::Release);
        self.metrics.up.set(1);
        match was {
            Some(d) if d.error != "not yet connected" => tracing::warn!(
                down_for_s = d.since.elapsed().as_secs(),
                "redis reachable again: shared rate limits, budgets, drain state and revocations back in force"
            ),
            _ => tracing::info!(
                prefix = %self.prefix,
                "redis connected: rate limits, budgets, drain state and revocations shared by every instance"
            ),
        }
    }

    fn went_down(&self, what: &str, error: String) {
        if !self.up.swap(false, Ordering::AcqRel) {
            return;
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.metrics.up.set(0);
        tracing::warn!(
            op = what,
            error = %error,
            budgets = self.mode(Feature::Budgets),
            rate_limits = self.mode(Feature::RateLimits),
            drain_and_revocation = "this instance only",
            "redis unreachable: serving with local state until it answers again"
        );
        let now = Instant::now();
        *self.lock_down() = Some(Down {
            since: now,
            last_warn: now,
            error,
        });
    }

    fn still_down(&self, error: String) {
        let mut down = self.lock_down();
        let now = Instant::now();
        let d = down.get_or_insert_with(|| Down {
            since: now,
            last_warn: now,
            error: String::new(),
        });
        d.error = error;
        if now.duration_since(d.last_warn) >= WARN_EVERY {
            d.last_warn = now;
            tracing::warn!(
                down_for_s = now.duration_since(d.since).as_secs(),
                error = %d.error,
                budgets = self.mode(Feature::Budgets),
                rate_limits = self.mode(Feature::RateLimits),
                "redis still unreachable: serving with local state"
            );
        }
    }

    /// For `/readyz`: the link's state and the mode in force per feature.
    pub fn status(&self) -> serde_json::Value {
        let down = self.lock_down();
        let mut v = serde_json::json!({
            "state": if self.is_up() { "up" } else { "down" },
            "prefix": self.prefix,
            "budgets": self.mode(Feature::Budgets),
            "rate_limits": self.mode(Feature::RateLimits),
            "drain_and_revocation": if self.is_up() { "shared" } else { "this instance only" },
        });
        if let (Some(d), Some(obj)) = (down.as_ref(), v.as_object_mut()) {
            obj.insert("down_for_s".into(), d.since.elapsed().as_secs().into());
            obj.insert("error".into(), d.error.clone().into());
        }
        v
    }

    fn lock_down(&self) -> MutexGuard<'_, Option<Down>> {
        self.down.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Redis could not be reached (as opposed to answering with an error).
fn is_unreachable(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    // Loading, failing over or read-only replica: Redis is there but cannot serve us.
    let unavailable = matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
        )
    );
    unavailable
        || e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
}
