//! Cache affinity (README "Prompt caching"): a prompt cache lives in one cloud, region
//! and account, so a follow-up turn is worth sending where the previous one was served.
//!
//! A chat request that can hit a cache gets up to two keys: its `prompt_cache_key`, and,
//! when its prompt reaches 1024 tokens (the shortest any cloud caches), a hash of its
//! model, tools, system prompt and first user message — the same on every turn of one
//! conversation, so it also follows a `previous_response_id` chain, whose replay starts
//! with the same messages. The
//! deployment that served it is remembered under both, for as long as the cache keeps a
//! prefix (five minutes, an hour when the request asked for one-hour breakpoints), and
//! handed to the router as a hint ([`anycloud_router::CacheAffinity`]); the router decides
//! whether it may matter (never against the primary's first look, an agreement, a drain or
//! an open breaker).
//!
//! With `[store] redis_url` the entries are shared: a lookup is one `MGET` of both keys
//! (one round trip, bounded by the link's timeout, skipped while the link is down), and a
//! record goes through a bounded queue to one writer task that pipelines the `SET … PX`
//! — so recording adds no round trip to the request. Without Redis, or while it is down,
//! this instance's map answers; it holds at most [`MAX_ENTRIES`], oldest evicted first.

use crate::cluster::link::RedisLink;
use anycloud_router::Deployment;
use anycloud_types::{CacheTtl, ChatRequest, Role};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Entries this instance keeps; beyond it the oldest go first.
pub const MAX_ENTRIES: usize = 100_000;
/// Records waiting for the Redis writer; beyond it a record is dropped (the hint is lost,
/// never the request).
const QUEUE: usize = 4_096;
/// The shortest prompt any cloud caches (OpenAI's 1024 tokens; Claude's is as long or
/// longer): below it there is no cache to follow.
const MIN_CACHEABLE_TOKENS: u64 = 1_024;

/// A request's affinity keys (hex SHA-256, so every instance computes the same ones) and
/// how long what it caches lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    keys: Vec<String>,
    ttl: Duration,
}

/// Where a conversation's cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub cloud: String,
    pub target: String,
}

impl Served {
    pub fn hint(&self) -> anycloud_router::CacheAffinity<'_> {
        anycloud_router::CacheAffinity {
            cloud: &self.cloud,
            target: &self.target,
        }
    }

    fn encode(&self) -> String {
        format!("{}\n{}", self.cloud, self.target)
    }

    fn decode(v: &str) -> Option<Served> {
        let (cloud, target) = v.split_once('\n')?;
        Some(Served {
            cloud: cloud.to_string(),
            target: target.to_string(),
        })
    }
}

/// The keys of `req` sent by `tenant`, or `None` when it cannot hit any cache.
pub fn keys(tenant: &str, req: &ChatRequest) -> Option<Keys> {
    // A prompt too short to cache has no prefix worth following (and a short first
    // message is shared by many conversations); its `prompt_cache_key` still names one.
    let long = req.estimate_input_tokens() >= MIN_CACHEABLE_TOKENS;
    if !long && req.cache.key.is_none() {
        return None;
    }
    let mut keys = Vec::with_capacity(2);
    if let Some(k) = &req.cache.key {
        let mut h = PartHasher::default();
        for part in [
            b"key",
            tenant.as_bytes(),
            req.model.as_bytes(),
            k.as_bytes(),
        ] {
            h.part(part);
        }
        keys.push(h.finish());
    }
    if !long {
        return Some(Keys {
            keys,
            ttl: ttl(req),
        });
    }
    // The stable prefix, hashed as it is serialised: no copy of tools or messages.
    let mut h = PartHasher::default();
    h.part(b"prefix");
    h.part(tenant.as_bytes());
    h.part(req.model.as_bytes());
    h.json(&req.tools);
    for m in req.messages.iter().filter(|m| m.role.is_system()) {
        h.feed(m.text().as_bytes());
    }
    h.end_part();
    if let Some(m) = req.messages.iter().find(|m| m.role == Role::User) {
        h.json(&m.content);
    } else {
        h.end_part();
    }
    keys.push(h.finish());
    Some(Keys {
        keys,
        ttl: ttl(req),
    })
}

/// SHA-256 over a sequence of parts, each followed by its length, so no two splits of
/// the same bytes collide. It is an `io::Write`, so JSON is serialised straight into it.
#[derive(Default)]
struct PartHasher {
    h: Sha256,
    len: u64,
}

impl PartHasher {
    fn feed(&mut self, bytes: &[u8]) {
        self.h.update(bytes);
        self.len += bytes.len() as u64;
    }

    fn end_part(&mut self) {
        self.h.update(self.len.to_be_bytes());
        self.len = 0;
    }

    fn part(&mut self, bytes: &[u8]) {
        self.feed(bytes);
        self.end_part();
    }

    fn json<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        // Writing into a hasher cannot fail; a value that cannot be serialised hashes
        // as what was written of it, as the copy it replaces did.
        let _ = serde_json::to_writer(&mut *self, v);
        self.end_part();
    }

    fn finish(self) -> String {
        hex::encode(self.h.finalize())
    }
}

impl std::io::Write for PartHasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How long the cache keeps what `req` writes: an hour when it asks for one-hour
/// breakpoints, else five minutes (every cloud's default).
fn ttl(req: &ChatRequest) -> Duration {
    let hour = req
        .cache
        .breakpoints
        .iter()
        .any(|b| b.ttl == CacheTtl::OneHour);
    Duration::from_secs(if hour { 3_600 } else { 300 })
}

#[derive(Debug)]
struct Entry {
    served: Served,
    expires: Instant,
    /// Which insertion this is, so eviction skips a key re-recorded since.
    stamp: u64,
}

#[derive(Debug, Default)]
struct Local {
    map: HashMap<String, Entry>,
    order: VecDeque<(String, u64)>,
    next: u64,
}

/// The affinity table: this instance's map, and Redis when configured.
#[derive(Debug)]
pub struct Affinity {
    // std Mutex: map updates only, never held across an await.
    local: Mutex<Local>,
    link: Option<Arc<RedisLink>>,
    writes: Option<mpsc::Sender<(String, String, u64)>>,
    cap: usize,
}

impl Affinity {
    /// Local only (no `[store] redis_url`).
    pub fn local() -> Affinity {
        Affinity::with_cap(MAX_ENTRIES)
    }

    fn with_cap(cap: usize) -> Affinity {
        Affinity {
            local: Mutex::default(),
            link: None,
            writes: None,
            cap,
        }
    }

    /// Shared through `link`; starts the writer task (call within the runtime).
    pub fn shared(link: Arc<RedisLink>) -> Affinity {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(link.clone(), rx));
        Affinity {
            link: Some(link),
            writes: Some(tx),
            ..Affinity::local()
        }
    }

    /// Where the previous turn with any of `keys` was served: Redis's answer when it gives
    /// one (one `MGET`), else this instance's.
    pub async fn lookup(&self, keys: &Keys) -> Option<Served> {
        if let Some(link) = self.link.as_ref().filter(|l| l.is_up()) {
            let redis_keys: Vec<String> = keys
                .keys
                .iter()
                .map(|k| link.key(&["affinity", k]))
                .collect();
            let found: Option<Vec<Option<String>>> = link
                .call("affinity_lookup", |mut c| async move {
                    redis::cmd("MGET")
                        .arg(&redis_keys)
                        .query_async(&mut c)
                        .await
                })
                .await;
            if let Some(values) = found {
                if let Some(s) = values.iter().flatten().find_map(|v| Served::decode(v)) {
                    return Some(s);
                }
            }
        }
        self.lookup_local(keys, Instant::now())
    }

    fn lookup_local(&self, keys: &Keys, now: Instant) -> Option<Served> {
        let local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        keys.keys.iter().find_map(|k| {
            local
                .map
                .get(k)
                .filter(|e| e.expires > now)
                .map(|e| e.served.clone())
        })
    }

    /// Remembers that `d` served the request with `keys`.
    pub fn record(&self, keys: &Keys, d: &Deployment) {
        let served = Served {
            cloud: d.cloud.clone(),
            target: d.target.clone(),
        };
        if let (Some(tx), Some(link)) = (&self.writes, &self.link) {
            for k in &keys.keys {
                let ms = u64::try_from(keys.ttl.as_millis()).unwrap_or(u64::MAX);
                // Full queue: this hint is lost; the request is not slowed.
                let _ = tx.try_send((link.key(&["affinity", k]), served.encode(), ms));
            }
        }
        self.record_local(keys, served, Instant::now());
    }

    fn record_local(&self, keys: &Keys, served: Served, now: Instant) {
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        for k in &keys.keys {
            local.next += 1;
            let stamp = local.next;
            local.map.insert(
                k.clone(),
                Entry {
                    served: served.clone(),
                    expires: now + keys.ttl,
                    stamp,
                },
            );
            local.order.push_back((k.clone(), stamp));
        }
        while local.map.len() > self.cap {
            let Some((k, stamp)) = local.order.pop_front() else {
                break;
            };
            if local.map.get(&k).is_some_and(|e| e.stamp == stamp) {
                local.map.remove(&k);
            }
        }
        // Superseded insertions are dropped from the queue's front as they surface, so
        // it stays within a small multiple of the map.
        while local
            .order
            .front()
            .is_some_and(|(k, s)| local.map.get(k).is_none_or(|e| e.stamp != *s))
        {
            local.order.pop_front();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

/// Writes queued records to Redis, each batch in one pipeline.
async fn write_loop(link: Arc<RedisLink>, mut rx: mpsc::Receiver<(String, String, u64)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let _: Option<()> = link
            .call("affinity_record", |mut c| async move {
                let mut p = redis::pipe();
                for (k, v, ms) in &batch {
                    p.cmd("SET").arg(k).arg(v).arg("PX").arg(*ms).ignore();
                }
                p.query_async(&mut c).await
            })
            .await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use anycloud_types::{ContentBlock, Message};

    fn turn(system: &str, turns: &[&str], key: Option<&str>) -> ChatRequest {
        let mut messages = vec![Message {
            role: Role::System,
            content: vec![ContentBlock::text(system)],
            name: None,
        }];
        for (i, t) in turns.iter().enumerate() {
            messages.push(Message {
                role: if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                content: vec![ContentBlock::text(*t)],
                name: None,
            });
        }
        let mut r = ChatRequest::new("claude", messages);
        r.cache.key = key.map(str::to_string);
        r
    }

    fn dep(cloud: &str) -> Deployment {
        let c = anycloud_config::parse_str(
            &format!(
                "[[clouds]]\nname = \"{cloud}\"\nprovider = \"anthropic\"\napi_key = \"k\"\n\
                 [[models]]\nname = \"claude\"\n[[models.deployments]]\ncloud = \"{cloud}\"\n\
                 target = \"claude-sonnet\"\n"
            ),
            std::path::Path::new("t.toml"),
            &|_| None,
        )
        .unwrap();
        anycloud_router::RoutingTable::new(&c).deployments(0)[0].clone()
    }

    #[test]
    fn a_conversations_turns_share_a_key_and_short_prompts_have_none() {
        let long = "rules ".repeat(1_000);
        let one = keys("t", &turn(&long, &["hi"], None)).unwrap();
        let three = keys("t", &turn(&long, &["hi", "hello", "more"], None)).unwrap();
        assert_eq!(one, three);
        assert_ne!(one, keys("other", &turn(&long, &["hi"], None)).unwrap());
        assert_ne!(one, keys("t", &turn(&long, &["bye"], None)).unwrap());
        assert_eq!(keys("t", &turn("short", &["hi"], None)), None);
        // A cache key is a hint of its own, whatever the prompt's length; a short
        // prompt's prefix is not.
        let keyed = keys("t", &turn("short", &["hi"], Some("agent-7"))).unwrap();
        assert_eq!(keyed.keys.len(), 1);
        let keyed = keys("t", &turn(&long, &["hi"], Some("agent-7"))).unwrap();
        assert_eq!(keyed.keys.len(), 2);
        assert_eq!(keyed.ttl, Duration::from_secs(300));
    }

    #[tokio::test]
    async fn entries_expire_with_the_cache_and_the_map_stays_bounded() {
        tokio::time::pause();
        let a = Affinity::with_cap(3);
        let long = "rules ".repeat(1_000);
        let k = keys("t", &turn(&long, &["hi"], None)).unwrap();
        assert_eq!(a.lookup(&k).await, None);
        a.record(&k, &dep("aws-eu"));
        assert_eq!(a.lookup(&k).await.unwrap().cloud, "aws-eu");
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!(a.lookup(&k).await, None, "gone with the five-minute cache");
        for i in 0..10 {
            let k = keys("t", &turn(&long, &[&format!("q{i}")], None)).unwrap();
            a.record(&k, &dep("gcp-eu"));
        }
        assert_eq!(a.len(), 3);
        let last = keys("t", &turn(&long, &["q9"], None)).unwrap();
        assert_eq!(a.lookup(&last).await.unwrap().cloud, "gcp-eu");
        let first = keys("t", &turn(&long, &["q0"], None)).unwrap();
        assert_eq!(a.lookup(&first).await, None, "the oldest went first");
    }
}
