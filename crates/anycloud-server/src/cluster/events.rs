//! What one instance tells all the others through Redis pub/sub (channel
//! `<prefix>events`): a cloud drained or restored, a key revoked or its policy changed, a
//! tenant changed through the admin API. Each instance applies an event within
//! milliseconds of its publication.
//!
//! Drain state is also kept in the hash `<prefix>drained` (cloud → `1`), written in the
//! same atomic step as the publication, so an instance that starts later, or whose
//! subscription dropped, reads it on (re)subscribing and every few seconds. Breaker state
//! stays per instance.
//!
//! While Redis is unreachable a drain or restore acts on this instance at once and is
//! kept as pending; when Redis answers again it is written and published (the latest
//! change per cloud wins). Revocations need no replay: every instance's key cache
//! expires within a second and the store (shared) already says the key is revoked.

use super::link::RedisLink;
use super::Instance;
use crate::cloud_state::CloudStates;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

/// One message on the channel (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Drain { cloud: String, drained: bool },
    Revoke { key_id: String },
    KeyPolicy { key_id: String },
    Tenant { name: String },
}

/// Where a drain or restore took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Written to Redis and published: every instance within a second.
    AllInstances,
    /// Only here: no Redis configured, or Redis unreachable (then shared when it is back).
    ThisInstance,
}

/// Publishing, pending drains and the drain hash.
#[derive(Debug)]
pub struct Broadcast {
    link: Arc<RedisLink>,
    // std Mutex: map updates only, never across an await.
    pending_drains: Mutex<HashMap<String, bool>>,
}

impl Broadcast {
    pub fn new(link: Arc<RedisLink>) -> Broadcast {
        Broadcast {
            link,
            pending_drains: Mutex::default(),
        }
    }

    pub fn link(&self) -> &Arc<RedisLink> {
        &self.link
    }

    fn drained_key(&self) -> String {
        self.link.key(&["drained"])
    }

    /// Shares a drain or restore already applied on this instance.
    pub async fn drain(&self, cloud: &str, drained: bool) -> Reach {
        // Newer than anything pending for this cloud.
        self.lock_pending().remove(cloud);
        if self.write_drain(cloud, drained).await {
            return Reach::AllInstances;
        }
        tracing::warn!(
            cloud,
            drained,
            "redis unreachable: the drain state applies to this instance only until redis answers, then to all"
        );
        self.lock_pending().insert(cloud.to_string(), drained);
        Reach::ThisInstance
    }

    async fn write_drain(&self, cloud: &str, drained: bool) -> bool {
        let mut pipe = redis::pipe();
        pipe.atomic();
        if drained {
            pipe.hset(self.drained_key(), cloud, 1).ignore();
        } else {
            pipe.hdel(self.drained_key(), cloud).ignore();
        }
        let msg = encode(&Event::Drain {
            cloud: cloud.to_string(),
            drained,
        });
        pipe.publish(self.link.channel(), msg).ignore();
        self.link
            .call("drain", |mut conn| async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await
            .is_some()
    }

    /// Publishes an event; false when Redis did not take it.
    pub async fn publish(&self, event: &Event) -> bool {
        let (channel, msg) = (self.link.channel(), encode(event));
        self.link
            .call("publish", |mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(msg)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await
            .is_some()
    }

    /// Writes and publishes the drains made while Redis was unreachable.
    pub async fn replay_pending(&self) {
        let pending: Vec<(String, bool)> = self.lock_pending().drain().collect();
        for (cloud, drained) in pending {
            if self.write_drain(&cloud, drained).await {
                tracing::info!(cloud = %cloud, drained, "drain state made while redis was unreachable now shared");
            } else {
                self.lock_pending().entry(cloud).or_insert(drained);
            }
        }
    }

    /// The drained clouds as Redis has them; `None` when it cannot say.
    async fn drained_clouds(&self) -> Option<HashMap<String, String>> {
        let key = self.drained_key();
        self.link
            .call("drain_state", |mut conn| async move {
                redis::cmd("HGETALL")
                    .arg(key)
                    .query_async::<HashMap<String, String>>(&mut conn)
                    .await
            })
            .await
    }

    fn lock_pending(&self) -> MutexGuard<'_, HashMap<String, bool>> {
        self.pending_drains
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes this instance's drain flags match Redis (clouds with a pending local change
    /// keep theirs until it is shared).
    pub async fn resync_drains(&self, clouds: &CloudStates) {
        let Some(drained) = self.drained_clouds().await else {
            return;
        };
        let pending = self.lock_pending().clone();
        for name in clouds.names() {
            if pending.contains_key(name) {
                continue;
            }
            let now = drained.contains_key(name);
            if clouds.is_drained_now(name) != now {
                tracing::warn!(cloud = %name, drained = now, "drain state taken from redis");
                clouds.set_drained(name, now);
            }
        }
    }
}

fn encode(event: &Event) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

/// Applies a drain or restore made on another instance to `clouds`.
pub fn apply_drain(clouds: &CloudStates, cloud: &str, drained: bool) {
    if clouds.is_drained_now(cloud) != drained && clouds.set_drained(cloud, drained) {
        tracing::warn!(cloud = %cloud, drained, "drain state changed by another instance");
    }
}

/// Listens on the channel for as long as the instance lives, resubscribing after every
/// drop and catching up on drain state each time.
pub fn spawn_subscriber<S: Instance>(state: Weak<S>, b: Arc<Broadcast>) {
    tokio::spawn(async move {
        let channel = b.link.channel();
        loop {
            if state.strong_count() == 0 {
                return;
            }
            let connect = async {
                let mut ps = b.link.client().get_async_pubsub().await?;
                ps.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(ps)
            };
            let ps = match tokio::time::timeout(super::link::OP_TIMEOUT, connect).await {
                Ok(Ok(ps)) => ps,
                _ => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            };
            // Whatever was published while we were not listening is in the drain hash.
            if let Some(st) = state.upgrade() {
                b.resync_drains(st.clouds()).await;
            }
            let mut messages = ps.into_on_message();
            loop {
                let msg = tokio::select! {
                    m = messages.next() => m,
                    // Wake now and then to notice the state is gone.
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if state.strong_count() == 0 { return; }
                        continue;
                    }
                };
                let Some(msg) = msg else { break };
                let Some(st) = state.upgrade() else { return };
                let payload: String = match msg.get_payload() {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                match serde_json::from_str::<Event>(&payload) {
                    Ok(ev) => st.apply(ev).await,
                    Err(e) => tracing::warn!(error = %e, "ignored an unreadable event from redis"),
                }
            }
        }
    });
}

/// For the CLI (`anycloud keys revoke`): publish one event without a running gateway.
pub async fn publish_once(url: &SecretString, prefix: &str, event: &Event) -> Result<(), String> {
    let send = async {
        let client = redis::Client::open(url.expose_secret())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PUBLISH")
            .arg(format!("{prefix}events"))
            .arg(encode(event))
            .query_async::<i64>(&mut conn)
            .await
    };
    match tokio::time::timeout(Duration::from_secs(3), send).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.category().to_string()),
        Err(_) => Err("no answer within 3 s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_plain_json() {
        let e = Event::Drain {
            cloud: "azure-us".into(),
            drained: true,
        };
        assert_eq!(
            encode(&e),
            r#"{"event":"drain","cloud":"azure-us","drained":true}"#
        );
        assert_eq!(
            serde_json::from_str::<Event>(r#"{"event":"revoke","key_id":"abc"}"#).ok(),
            Some(Event::Revoke {
                key_id: "abc".into()
            })
        );
    }
}
