//! Governance state: the hash-chained audit log, budget spend, per-key policies and
//! encrypted payload captures, behind [`GovernanceStore`] (a supertrait of
//! [`crate::Store`], so every backend provides it).
//!
//! The audit chain: each entry's `hash` is `SHA-256(prev_hash || canonical JSON of the
//! entry)`, hex, where the entry includes its own `seq` and the canonical JSON has its
//! object keys sorted at every level (see [`canonical_json`]). The first entry's
//! `prev_hash` is [`GENESIS_HASH`]. [`verify_chain`] walks records in `seq` order and
//! names the first entry that was altered, is missing or is out of place.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry as written (without its chain fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// `key:<id>` for AI actions, `admin` for admin actions.
    pub actor: String,
    pub tenant: Option<String>,
    pub action: String,
    pub model: Option<String>,
    pub cloud: Option<String>,
    pub request_id: Option<String>,
    pub status: Option<i64>,
    pub latency_ms: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    /// Every route decision in the order considered.
    pub route: Option<Value>,
    /// Before/after for admin actions, other detail for AI actions.
    pub detail: Option<Value>,
}

/// A stored entry with its chain fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters for [`GovernanceStore::query_audit`]; all optional, `to` exclusive.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub tenant: Option<String>,
    pub cloud: Option<String>,
    pub action: Option<String>,
    /// Only entries with `seq` greater than this (pagination).
    pub after: Option<i64>,
    pub limit: u32,
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChainStatus {
    Intact {
        count: i64,
    },
    Broken {
        /// The first entry that was altered, is missing, or is out of place.
        seq: i64,
        /// Entries before it that verified.
        verified: i64,
        problem: String,
    },
}

/// A captured payload as stored: sealed, with the id of the key that sealed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureRecord {
    pub request_id: String,
    pub at: DateTime<Utc>,
    pub tenant: String,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[async_trait]
pub trait GovernanceStore: Send + Sync {
    /// Appends entries to the chain in one transaction, in order, and returns them with
    /// their `seq` and hashes.
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<Vec<AuditRecord>, StoreError>;

    /// Entries matching `q`, in `seq` order.
    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Walks the whole chain (and checks it ends at the recorded head).
    async fn verify_audit(&self) -> Result<ChainStatus, StoreError>;

    /// Adds settled spend, in USD, per `(scope, period_start)`.
    async fn add_spend(&self, deltas: &[(String, String, f64)]) -> Result<(), StoreError>;

    /// Settled spend for a scope and period (0 when none).
    async fn spend(&self, scope: &str, period_start: &str) -> Result<f64, StoreError>;

    /// Sets a key's policy (budget, rate limit) as JSON.
    async fn set_key_policy(&self, key_id: &str, policy: &Value) -> Result<(), StoreError>;

    /// A key's policy, if one was set.
    async fn key_policy(&self, key_id: &str) -> Result<Option<Value>, StoreError>;

    async fn insert_capture(&self, capture: &CaptureRecord) -> Result<(), StoreError>;

    async fn capture(&self, request_id: &str) -> Result<Option<CaptureRecord>, StoreError>;
}

/// JSON with object keys sorted at every level and no whitespace: the same value always
/// gives the same bytes, whatever map order `serde_json` was built with.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(val) = map.get(*k) {
                    write_canonical(val, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The hash of entry `seq` after `prev_hash`.
pub fn entry_hash(prev_hash: &str, seq: i64, entry: &AuditEntry) -> String {
    let mut value = serde_json::to_value(entry).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("seq".into(), Value::from(seq));
        // Timestamps are hashed in the stored (millisecond) form so that what is read
        // back hashes the same as what was written.
        map.insert(
            "at".into(),
            Value::String(crate::sqlite::timestamp(entry.at)),
        );
        // SQLite does not keep the sign of -0.0 (an empty f64 sum), so zero hashes as 0.0.
        if entry.cost_usd == Some(0.0) {
            map.insert("cost_usd".into(), Value::from(0.0));
        }
    }
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical_json(&value).as_bytes());
    hex::encode(h.finalize())
}

/// Walks records (in the order read, which must be `seq` order) from the genesis hash.
/// `head` is the recorded chain head, `(seq, hash)`.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    head: Option<(i64, String)>,
) -> ChainStatus {
    let mut prev = GENESIS_HASH.to_string();
    let mut expected_seq = 1i64;
    for r in records {
        let broken = |problem: String| ChainStatus::Broken {
            seq: expected_seq,
            verified: expected_seq - 1,
            problem,
        };
        if r.seq > expected_seq {
            return broken(format!(
                "entry {expected_seq} is missing (the next entry is {})",
                r.seq
            ));
        }
        if r.seq < expected_seq {
            return broken(format!(
                "entry {} appears again where entry {expected_seq} belongs",
                r.seq
            ));
        }
        if r.prev_hash != prev {
            return broken(format!(
                "entry {expected_seq} does not follow entry {} (prev_hash differs): entries were removed or reordered",
                expected_seq - 1
            ));
        }
        if entry_hash(&prev, r.seq, &r.entry) != r.hash {
            return broken(format!(
                "entry {expected_seq} was altered (its content does not match its hash)"
            ));
        }
        prev = r.hash.clone();
        expected_seq += 1;
    }
    let count = expected_seq - 1;
    match head {
        Some((seq, _)) if seq > count => ChainStatus::Broken {
            seq: count + 1,
            verified: count,
            problem: format!(
                "entry {} is missing (the chain's head says {seq} entries)",
                count + 1
            ),
        },
        Some((seq, hash_at_head)) if seq == count && hash_at_head != prev => ChainStatus::Broken {
            seq: count,
            verified: count - 1,
            problem: format!("entry {count} was altered (it is not the recorded head)"),
        },
        Some((seq, _)) if seq < count => ChainStatus::Broken {
            seq: seq + 1,
            verified: seq,
            problem: format!("entry {} was added outside the chain's head", seq + 1),
        },
        None if count > 0 => ChainStatus::Broken {
            seq: count,
            verified: count,
            problem: "the chain's head record is missing".into(),
        },
        _ => ChainStatus::Intact { count },
    }
}
