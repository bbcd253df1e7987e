//! Cluster coordination: state shared by several gateway instances through Redis (`store.redis_url`).
//!
//! - [`link`]: the connection, and whether Redis answers right now (WARN on every
//!   transition and every 30 s while down, `anycloud_redis_up`, `/readyz` detail).
//! - [`events`]: pub/sub between instances — drain and restore, key revocation and policy,
//!   tenant changes — plus the drain hash an instance reads when it (re)subscribes.
//! - Rate limits and budgets use the link from `anycloud_governance::redis_ratelimit` and
//!   `anycloud_governance::redis_budget`.
//!
//! [`spawn`] starts two tasks per [`AppState`]: the subscriber, and a health loop that
//! pings Redis every second; when Redis answers again after an outage it shares what
//! happened meanwhile (drains, settled spend) and catches up on drain state. Both tasks
//! end when the state is dropped.

pub mod events;
// The connection itself lives in the `anycloud-governance` crate, beside its users.
pub use anycloud_governance::link;

use crate::state::AppState;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the health loop pings Redis.
pub const HEALTH_EVERY: Duration = Duration::from_secs(1);
/// How often (in health ticks) drain state is re-read from Redis while up, in case a
/// subscription silently stopped delivering.
const RESYNC_TICKS: u32 = 5;

/// Starts the subscriber and the health loop for `state` (no-op without Redis).
pub fn spawn(state: &Arc<AppState>) {
    let Some(b) = state.broadcast.clone() else {
        return;
    };
    events::spawn_subscriber(Arc::downgrade(state), b);
    let weak: Weak<AppState> = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut tick: u32 = 0;
        // Which data Redis holds, before anything can go wrong (see `redis_budget`).
        if let Some(state) = weak.upgrade() {
            state.governance.budgets.note_server().await;
        }
        loop {
            tokio::time::sleep(HEALTH_EVERY).await;
            let Some(state) = weak.upgrade() else { return };
            let Some(b) = state.broadcast.clone() else {
                return;
            };
            tick = tick.wrapping_add(1);
            if b.link().check().await {
                b.replay_pending().await;
                state.governance.budgets.replay().await;
                events::resync_drains(&state, &b).await;
            } else if b.link().is_up() && tick.is_multiple_of(RESYNC_TICKS) {
                events::resync_drains(&state, &b).await;
                state.governance.budgets.note_server().await;
            }
        }
    });
}
