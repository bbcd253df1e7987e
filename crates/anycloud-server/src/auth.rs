//! Bearer key → [`Principal`].
//!
//! Keys are looked up by their public id and checked against the stored
//! hash in constant time (`anycloud_store::authenticate`). Successful lookups
//! are cached for [`CACHE_TTL`], and a key in use is read again in the background once
//! its entry is [`REFRESH_AHEAD`] old, so a key in steady use never waits on the store
//! (a stalled store then delays nobody), while a revoked key is refused within two
//! seconds (README "Governance: tenants, keys, budgets, limits, audit, capture").
//! Ids the store does not know (or knows as revoked) are remembered for as long, so a
//! client retrying a wrong key costs a map lookup, not a store read. Both maps are
//! bounded ([`MAX_CACHED_KEYS`], [`MAX_UNKNOWN_IDS`]; README "Sizing").
//!
//! A [`Directory`] holds what authentication reads — the store, the key cache and the
//! live tenants — so this module needs nothing from `AppState`.

use crate::error::ApiError;
use anycloud_config::TenantConfig;
use anycloud_governance::policy::store_read;
use anycloud_governance::Refusal;
use anycloud_store::{keys, Store};
use axum::http::HeaderMap;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Who is calling: the tenant (from config) and the key id.
pub use anycloud_governance::Principal;

pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// Age at which a cached key that is used is read again in the background. An entry
/// older than [`CACHE_TTL`] (a key idle for a while) is read before the request goes on,
/// so a revocation made straight in the store is never missed by more than the TTL.
pub const REFRESH_AHEAD: Duration = Duration::from_millis(500);

/// Keys held in the cache at most (fresh or kept for store outages).
pub const MAX_CACHED_KEYS: usize = 100_000;

/// Unknown or revoked ids remembered at most: a flood of random ids cannot grow memory or
/// push real keys out.
pub const MAX_UNKNOWN_IDS: usize = 10_000;

/// How old a cached key may be when the store cannot be asked (README "Reliability"):
/// while it is down, keys seen in the last hour keep working.
pub const STALE_LIMIT: Duration = Duration::from_secs(3600);

/// The keys (through the store, cached) and the tenants they belong to.
#[derive(Debug)]
pub struct Directory {
    store: Arc<dyn Store>,
    keys: Arc<KeyCache>,
    // Live: the admin API creates and updates tenants. std RwLock, read per request and
    // never held across an await.
    tenants: RwLock<HashMap<String, Arc<TenantConfig>>>,
}

impl Directory {
    pub fn new(store: Arc<dyn Store>, tenants: HashMap<String, Arc<TenantConfig>>) -> Directory {
        Directory {
            store,
            keys: Arc::default(),
            tenants: RwLock::new(tenants),
        }
    }

    pub fn tenant(&self, name: &str) -> Option<Arc<TenantConfig>> {
        self.tenants.read().ok()?.get(name).cloned()
    }

    /// Every tenant, ordered by name.
    pub fn tenants(&self) -> Vec<Arc<TenantConfig>> {
        let mut all: Vec<_> = match self.tenants.read() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Makes a tenant (new or changed) live for the next request.
    pub fn set_tenant(&self, t: TenantConfig) {
        if let Ok(mut m) = self.tenants.write() {
            m.insert(t.name.clone(), Arc::new(t));
        }
    }

    /// Drops a cached key (revoked here or on another instance).
    pub fn forget_key(&self, id: &str) {
        self.keys.invalidate(id);
    }
}

#[derive(Debug, Default)]
struct KeyCache {
    // std RwLock: held only for a map read or insert, never across an await.
    entries: RwLock<HashMap<String, CachedKey>>,
    /// Ids the store answered "no such key" (or "revoked") for, and when.
    unknown: RwLock<HashMap<String, Instant>>,
    /// Ids being read again in the background (at most one read per id at a time).
    refreshing: Mutex<HashSet<String>>,
}

#[derive(Debug, Clone)]
struct CachedKey {
    hash: String,
    tenant: String,
    fetched: Instant,
}

impl KeyCache {
    /// The cached entry and its age.
    fn get(&self, id: &str) -> Option<(CachedKey, Duration)> {
        let map = self.entries.read().ok()?;
        map.get(id).map(|c| (c.clone(), c.fetched.elapsed()))
    }

    /// Stores what the store answered for `id`: the key, or that it is no usable key (a
    /// revoked key's old entry must not serve it during a later store outage).
    /// `asked` is when the read began: an entry is never fresher than the read that made it.
    fn learn(
        &self,
        id: &str,
        record: Option<anycloud_store::KeyRecord>,
        asked: Instant,
    ) -> Option<CachedKey> {
        let Some(record) = record.filter(|r| !r.is_revoked()) else {
            self.invalidate(id);
            self.put_unknown(id);
            return None;
        };
        let entry = CachedKey {
            hash: record.key_hash,
            tenant: record.tenant,
            fetched: asked,
        };
        self.put(id, entry.clone());
        Some(entry)
    }

    /// Reads `id` again off the request path, unless a read of it is already under way.
    /// A read that fails or times out leaves the entry as it was.
    fn refresh_in_background(self: &Arc<Self>, store: &Arc<dyn Store>, id: &str) {
        match self.refreshing.lock() {
            Ok(mut set) => {
                if !set.insert(id.to_string()) {
                    return;
                }
            }
            Err(_) => return,
        }
        let (cache, store, id) = (self.clone(), store.clone(), id.to_string());
        tokio::spawn(async move {
            let asked = Instant::now();
            if let Some(record) = store_read("key lookup", store.key_by_id(&id)).await {
                cache.learn(&id, record, asked);
            }
            if let Ok(mut set) = cache.refreshing.lock() {
                set.remove(&id);
            }
        });
    }

    fn put(&self, id: &str, entry: CachedKey) {
        if let Ok(mut map) = self.entries.write() {
            if map.len() >= MAX_CACHED_KEYS && !map.contains_key(id) {
                // Stale entries are kept for store outages, but not without bound.
                map.retain(|_, c| c.fetched.elapsed() < STALE_LIMIT);
                if map.len() >= MAX_CACHED_KEYS {
                    map.retain(|_, c| c.fetched.elapsed() < CACHE_TTL);
                }
                if map.len() >= MAX_CACHED_KEYS {
                    return; // every entry is fresh: this key is simply read each time
                }
            }
            map.insert(id.to_string(), entry);
        }
    }

    /// Whether the store said within [`CACHE_TTL`] that `id` is no usable key.
    fn known_unknown(&self, id: &str) -> bool {
        self.unknown
            .read()
            .ok()
            .and_then(|m| m.get(id).map(|at| at.elapsed() < CACHE_TTL))
            .unwrap_or(false)
    }

    fn put_unknown(&self, id: &str) {
        if let Ok(mut map) = self.unknown.write() {
            if map.len() >= MAX_UNKNOWN_IDS {
                map.retain(|_, at| at.elapsed() < CACHE_TTL);
                if map.len() >= MAX_UNKNOWN_IDS {
                    map.clear();
                }
            }
            map.insert(id.to_string(), Instant::now());
        }
    }

    fn invalidate(&self, id: &str) {
        if let Ok(mut map) = self.entries.write() {
            map.remove(id);
        }
        if let Ok(mut map) = self.unknown.write() {
            map.remove(id);
        }
    }

    /// Keys and unknown ids held.
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        (
            self.entries.read().map_or(0, |m| m.len()),
            self.unknown.read().map_or(0, |m| m.len()),
        )
    }
}

/// The presented key from `Authorization: Bearer` (or, when `allow_x_api_key`
/// is set, Anthropic's `x-api-key`).
pub fn presented_key(headers: &HeaderMap, allow_x_api_key: bool) -> Option<&str> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?.trim();
        let (scheme, rest) = v.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(rest.trim());
        }
        return None;
    }
    if allow_x_api_key {
        return headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
    }
    None
}

pub async fn authenticate(dir: &Directory, headers: &HeaderMap) -> Result<Principal, ApiError> {
    authenticate_with(dir, headers, false).await
}

pub async fn authenticate_with(
    dir: &Directory,
    headers: &HeaderMap,
    allow_x_api_key: bool,
) -> Result<Principal, ApiError> {
    let Some(presented) = presented_key(headers, allow_x_api_key) else {
        return Err(ApiError::Unauthorized {
            message: "You didn't provide an API key. Send it as `Authorization: Bearer <key>`."
                .into(),
        });
    };
    let bad = || ApiError::Unauthorized {
        message: "Incorrect API key provided.".into(),
    };
    let Some(id) = keys::parse_id(presented) else {
        return Err(bad());
    };
    let entry = match dir.keys.get(id) {
        Some((e, age)) if age < CACHE_TTL => {
            if age >= REFRESH_AHEAD {
                dir.keys.refresh_in_background(&dir.store, id);
            }
            e
        }
        None if dir.keys.known_unknown(id) => return Err(bad()),
        cached => {
            let asked = Instant::now();
            let Some(looked_up) = store_read("key lookup", dir.store.key_by_id(id)).await else {
                // Store down: a key seen recently keeps working (revocations made
                // meanwhile reach this instance through Redis or when it returns).
                return match cached {
                    Some((e, age)) if age < STALE_LIMIT => principal(dir, presented, id, &e),
                    // The same answer as a key policy the store cannot serve.
                    _ => Err(Refusal::KeyStoreUnavailable.into()),
                };
            };
            match dir.keys.learn(id, looked_up, asked) {
                Some(entry) => entry,
                None => return Err(bad()),
            }
        }
    };
    principal(dir, presented, id, &entry)
}

/// Checks the presented key against `entry` and resolves its tenant.
fn principal(
    dir: &Directory,
    presented: &str,
    id: &str,
    entry: &CachedKey,
) -> Result<Principal, ApiError> {
    if !keys::verify(presented, &entry.hash) {
        return Err(ApiError::Unauthorized {
            message: "Incorrect API key provided.".into(),
        });
    }
    let tenant = dir
        .tenant(&entry.tenant)
        .ok_or_else(|| ApiError::Forbidden {
            message: format!(
                "This key belongs to tenant `{}`, which is no longer configured.",
                entry.tenant
            ),
            code: "tenant_not_configured",
            route: vec![],
        })?;
    Ok(Principal {
        tenant,
        key_id: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unknown ids are refused from memory for [`CACHE_TTL`], forgotten when a key with
    /// that id is created or changed (`invalidate`), and never held beyond the bound.
    #[test]
    fn unknown_ids_are_remembered_briefly_and_bounded() {
        let cache = KeyCache::default();
        assert!(!cache.known_unknown("abcdef012345"));
        cache.put_unknown("abcdef012345");
        assert!(cache.known_unknown("abcdef012345"));
        cache.invalidate("abcdef012345");
        assert!(!cache.known_unknown("abcdef012345"));
        for i in 0..MAX_UNKNOWN_IDS + 10 {
            cache.put_unknown(&format!("{i:012}"));
        }
        assert!(cache.sizes().1 <= MAX_UNKNOWN_IDS);
        assert!(cache.known_unknown(&format!("{:012}", MAX_UNKNOWN_IDS + 9)));
    }
}
