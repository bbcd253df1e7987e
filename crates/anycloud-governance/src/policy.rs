//! A key's own policy — a budget, rate limits and an MCP narrowing set on the key through
//! the admin API (README "Governance: tenants, keys, budgets, limits, audit, capture") —
//! as the admin API reads and writes it, and the cache admission reads it through.
//!
//! Policies are read from the store and cached for [`POLICY_TTL`], like keys themselves;
//! while the store is unreachable the last policy read is used, however old (README
//! "Reliability").

use crate::Refusal;
use anycloud_config::{Budget, BudgetPeriod, McpPolicy, RateLimit};
use anycloud_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A key's own policy, set through the admin API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    pub budget: Option<BudgetSpec>,
    pub rate_limit: Option<RateLimitSpec>,
    /// Narrows the tenant's MCP policy for this key (README "MCP gateway").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpPolicySpec>,
}

/// `{ usd, period }`, as in the config's tenant budgets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    #[schema(minimum = 0.0)]
    pub usd: f64,
    pub period: PeriodSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeriodSpec {
    Day,
    Month,
    Total,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    #[schema(minimum = 1, maximum = 1_000_000_000_000i64)]
    #[serde(default, deserialize_with = "whole_number")]
    pub requests_per_minute: Option<u64>,
    #[schema(minimum = 1, maximum = 1_000_000_000_000i64)]
    #[serde(default, deserialize_with = "whole_number")]
    pub tokens_per_minute: Option<u64>,
}

/// The MCP policy as the admin API reads and writes it (tenants and keys).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpPolicySpec {
    /// MCP servers allowed; `null` = all.
    pub servers: Option<Vec<String>>,
    /// Namespaced tools or globs allowed (`github__create_issue`, `search__*`); `null` = all.
    pub tools: Option<Vec<String>>,
    /// Globs refused even when `tools` allows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// `tools/call` requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub calls_per_minute: Option<u64>,
}

/// Upper bound of a per-minute limit (the document's `maximum`).
pub const MAX_PER_MINUTE: u64 = 1_000_000_000_000;

/// JSON Schema's `integer` includes `210.0`; accept whole floats as serde's `u64` won't.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v: Option<serde_json::Number> = Option::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(u));
            }
            match n.as_f64() {
                Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= MAX_PER_MINUTE as f64 => {
                    Ok(Some(f as u64))
                }
                _ => Err(serde::de::Error::custom(format!(
                    "expected a whole number between 1 and {MAX_PER_MINUTE}, got {n}"
                ))),
            }
        }
    }
}

impl RateLimitSpec {
    /// A message when a limit is 0 or above [`MAX_PER_MINUTE`].
    pub fn problem(&self) -> Option<String> {
        [self.requests_per_minute, self.tokens_per_minute]
            .into_iter()
            .flatten()
            .any(|n| n == 0 || n > MAX_PER_MINUTE)
            .then(|| format!("Rate limits must be between 1 and {MAX_PER_MINUTE} per minute."))
    }
}

impl From<BudgetSpec> for Budget {
    fn from(b: BudgetSpec) -> Budget {
        Budget {
            usd: b.usd,
            period: match b.period {
                PeriodSpec::Day => BudgetPeriod::Day,
                PeriodSpec::Month => BudgetPeriod::Month,
                PeriodSpec::Total => BudgetPeriod::Total,
            },
        }
    }
}

impl From<Budget> for BudgetSpec {
    fn from(b: Budget) -> BudgetSpec {
        BudgetSpec {
            usd: b.usd,
            period: match b.period {
                BudgetPeriod::Day => PeriodSpec::Day,
                BudgetPeriod::Month => PeriodSpec::Month,
                BudgetPeriod::Total => PeriodSpec::Total,
            },
        }
    }
}

impl From<RateLimitSpec> for RateLimit {
    fn from(r: RateLimitSpec) -> RateLimit {
        RateLimit {
            requests_per_minute: r.requests_per_minute,
            tokens_per_minute: r.tokens_per_minute,
        }
    }
}

impl From<RateLimit> for RateLimitSpec {
    fn from(r: RateLimit) -> RateLimitSpec {
        RateLimitSpec {
            requests_per_minute: r.requests_per_minute,
            tokens_per_minute: r.tokens_per_minute,
        }
    }
}

impl From<McpPolicySpec> for McpPolicy {
    fn from(s: McpPolicySpec) -> McpPolicy {
        McpPolicy {
            servers: s.servers,
            tools: s.tools,
            deny: s.deny,
            calls_per_minute: s.calls_per_minute,
        }
    }
}

impl From<McpPolicy> for McpPolicySpec {
    fn from(p: McpPolicy) -> McpPolicySpec {
        McpPolicySpec {
            servers: p.servers,
            tools: p.tools,
            deny: p.deny,
            calls_per_minute: p.calls_per_minute,
        }
    }
}

/// How long a policy read from the store is used before it is read again.
pub const POLICY_TTL: Duration = Duration::from_secs(1);

/// The longest a request waits for the store to look a key (or a key's policy) up before
/// it counts as unreachable: a store whose connections are all stuck behind a locked
/// database must not hold requests.
pub const STORE_READ_TIMEOUT: Duration = Duration::from_millis(300);

/// `fut` (a store read), or `None` when it failed or took longer than
/// [`STORE_READ_TIMEOUT`] (the error is logged as `what`).
pub async fn store_read<T, E: std::fmt::Display>(
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    match tokio::time::timeout(STORE_READ_TIMEOUT, fut).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "{what} failed");
            None
        }
        Err(_) => {
            tracing::error!("{what} timed out");
            None
        }
    }
}

/// Age at which a cached policy that is used is read again in the background, so a key
/// in steady use never waits on the store for its policy; an entry past [`POLICY_TTL`]
/// (an idle key) is read before the request goes on.
pub const POLICY_REFRESH_AHEAD: Duration = Duration::from_millis(500);

/// Key policies read from the store, cached for [`POLICY_TTL`].
#[derive(Debug)]
pub struct KeyPolicies {
    store: Arc<dyn Store>,
    cache: Arc<PolicyCache>,
}

#[derive(Debug, Default)]
struct PolicyCache {
    // std RwLock / Mutex: map reads and inserts only, never across an await.
    entries: RwLock<HashMap<String, (KeyPolicy, Instant)>>,
    /// Key ids whose policy is being read again in the background.
    refreshing: Mutex<HashSet<String>>,
}

impl PolicyCache {
    fn put(&self, key_id: &str, stored: Option<serde_json::Value>) -> KeyPolicy {
        let policy: KeyPolicy = stored
            .map(|v| serde_json::from_value(v).unwrap_or_default())
            .unwrap_or_default();
        if let Ok(mut m) = self.entries.write() {
            if m.len() > 100_000 {
                m.clear();
            }
            m.insert(key_id.to_string(), (policy.clone(), Instant::now()));
        }
        policy
    }
}

impl KeyPolicies {
    pub fn new(store: Arc<dyn Store>) -> KeyPolicies {
        KeyPolicies {
            store,
            cache: Arc::default(),
        }
    }

    /// A key's policy (cached for [`POLICY_TTL`]; the last one read while the store is
    /// unreachable, else [`Refusal::KeyStoreUnavailable`]).
    pub async fn get(&self, key_id: &str) -> Result<KeyPolicy, Refusal> {
        let cached = self
            .cache
            .entries
            .read()
            .ok()
            .and_then(|m| m.get(key_id).cloned());
        if let Some((p, at)) = &cached {
            let age = at.elapsed();
            if age < POLICY_TTL {
                if age >= POLICY_REFRESH_AHEAD {
                    self.refresh_in_background(key_id);
                }
                return Ok(p.clone());
            }
        }
        let read = store_read("key policy lookup", self.store.key_policy(key_id));
        match read.await {
            Some(stored) => Ok(self.cache.put(key_id, stored)),
            None => match cached {
                Some((p, _)) => Ok(p),
                // The same answer as a key lookup the store cannot serve: the client
                // may retry; nothing is wrong with the request.
                None => Err(Refusal::KeyStoreUnavailable),
            },
        }
    }

    /// Reads a policy again off the request path, unless a read of it is under way; a
    /// read that fails leaves the cached policy as it was.
    fn refresh_in_background(&self, key_id: &str) {
        match self.cache.refreshing.lock() {
            Ok(mut set) => {
                if !set.insert(key_id.to_string()) {
                    return;
                }
            }
            Err(_) => return,
        }
        let (cache, store, id) = (self.cache.clone(), self.store.clone(), key_id.to_string());
        tokio::spawn(async move {
            if let Some(stored) = store_read("key policy lookup", store.key_policy(&id)).await {
                cache.put(&id, stored);
            }
            if let Ok(mut set) = cache.refreshing.lock() {
                set.remove(&id);
            }
        });
    }

    /// Drops a cached policy (it changed here or on another instance).
    pub fn forget(&self, key_id: &str) {
        if let Ok(mut m) = self.cache.entries.write() {
            m.remove(key_id);
        }
    }
}
