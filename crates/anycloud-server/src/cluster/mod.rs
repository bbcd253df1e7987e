//! Cluster coordination: state shared by several gateway instances through Redis (`store.redis_url`).
//!
//! - [`link`]: the connection, and whether Redis answers right now (WARN on every
//!   transition and every 30 s while down, `anycloud_redis_up`, `/readyz` detail).
//! - [`events`]: pub/sub between instances — drain and restore, key revocation and policy,
//!   tenant changes — plus the drain hash an instance reads when it (re)subscribes.
//! - Rate limits and budgets use the link from `anycloud_governance::redis_ratelimit` and
//!   `anycloud_governance::redis_budget`.
//!
//! [`spawn`] starts two tasks per [`Instance`] (the server's `AppState`): the
//! subscriber, and a health loop that pings Redis every second; when Redis answers again
//! after an outage it shares what happened meanwhile (drains, settled spend) and catches
//! up on drain state. Both tasks end when the instance is dropped.

pub mod events;
// The connection itself lives in the `anycloud-governance` crate, beside its users.
pub use anycloud_governance::link;

use crate::cloud_state::CloudStates;
use events::{Broadcast, Event};
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// What the cluster's tasks need of the instance they serve: implemented by the server's
/// `AppState`, so coordination needs nothing from it.
pub trait Instance: Send + Sync + 'static {
    /// This instance's clouds, whose drain flags follow the cluster's.
    fn clouds(&self) -> &CloudStates;
    /// Acts on an event from another instance (or this one: every event is idempotent).
    fn apply(&self, event: Event) -> impl Future<Output = ()> + Send;
    /// Redis answers again after an outage: share what was decided here meanwhile
    /// (spend settled while budgets ran locally).
    fn redis_back(&self) -> impl Future<Output = ()> + Send;
}

/// How often the health loop pings Redis.
pub const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// How often (in health ticks) drain state is re-read from Redis while up, in case a
/// subscription silently stopped delivering.
const RESYNC_TICKS: u32 = 5;

/// Starts the subscriber and the health loop for `instance`, sharing through `b`.
pub fn spawn<S: Instance>(instance: Weak<S>, b: Arc<Broadcast>) {
    events::spawn_subscriber(instance.clone(), b.clone());
    tokio::spawn(async move {
        let mut tick: u32 = 0;
        loop {
            tokio::time::sleep(HEALTH_EVERY).await;
            let Some(state) = instance.upgrade() else {
                return;
            };
            tick = tick.wrapping_add(1);
            if b.link().check().await {
                b.replay_pending().await;
                state.redis_back().await;
                b.resync_drains(state.clouds()).await;
            } else if b.link().is_up() && tick.is_multiple_of(RESYNC_TICKS) {
                b.resync_drains(state.clouds()).await;
            }
        }
    });
}
