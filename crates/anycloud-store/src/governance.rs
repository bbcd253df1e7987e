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
    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        keys: &ChainKeys,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Entries matching `q`, in `seq` order.
    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Walks the whole chain page by page (and checks it ends at the recorded head).
    async fn verify_audit(&self, keys: &ChainKeys) -> Result<ChainStatus, StoreError>;

    /// The recorded head of the chain, `(seq, hash)`, if any entry was written.
    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError>;

    /// The entry with this `seq`, if there is one (checkpoints).
    async fn audit_entry(&self, seq: i64) -> Result<Option<AuditRecord>, StoreError>;

    /// [`GovernanceStore::append_audit`] for a spool's batch, once per
    /// [`crate::spool::Stamp`]: entries an earlier try already chained are not chained
    /// again. Returns the entries chained by this call.
    async fn append_audit_once(
        &self,
        batch: &crate::spool::Batch<AuditEntry>,
        keys: &ChainKeys,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Adds settled spend, in USD, per `(scope, period_start)`.
    async fn add_spend(&self, deltas: &[(String, String, f64)]) -> Result<(), StoreError>;

    /// Adds a spool's batch of per-request spend, once per [`crate::spool::Stamp`], summed
    /// per `(scope, period_start)` ([`aggregate_spend`]).
    async fn add_spend_once(
        &self,
        batch: &crate::spool::Batch<(String, String, f64)>,
    ) -> Result<(), StoreError>;

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
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

/// Writes straight into `out` with serde_json's own escaping and number formatting (the
/// bytes `Value::to_string` gives, without a `String` per key and scalar: this runs for
/// every audited request, bench/README.md "Instruction counts").
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // Writing a string into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, k);
                out.push(b':');
                write_canonical(val, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => {
            // Nor can writing a scalar (numbers are finite: serde_json has no NaN).
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

/// The keys of the audit chain (`[audit] key`, `key_id`, `old_keys`). With a key, each
/// entry's `hash` is `<key id>:` and the hex HMAC-SHA-256 of `prev_hash || canonical
/// JSON` under that key, so whoever can write the database but does not hold the key
/// cannot recompute the chain after changing an entry. Without one (and for entries
/// written before a key was set) it is the plain SHA-256, 64 hex digits.
#[derive(Clone, Default)]
pub struct ChainKeys {
    current: Option<(String, Vec<u8>)>,
    old: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for ChainKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainKeys")
            .field("current", &self.current.as_ref().map(|(id, _)| id))
            .field(
                "old",
                &self.old.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

type HmacSha256 = hmac::Hmac<Sha256>;

impl ChainKeys {
    /// No key: the plain SHA-256 chain.
    pub fn unkeyed() -> ChainKeys {
        ChainKeys::default()
    }

    /// `current` signs new entries; `old` (retired keys) still verify older ones.
    pub fn new(current: (String, Vec<u8>), old: Vec<(String, Vec<u8>)>) -> ChainKeys {
        ChainKeys {
            current: Some(current),
            old,
        }
    }

    pub fn is_keyed(&self) -> bool {
        self.current.is_some()
    }

    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(|(id, _)| id.as_str())
    }

    fn key(&self, id: &str) -> Option<&[u8]> {
        self.current
            .iter()
            .chain(self.old.iter())
            .find(|(k, _)| k == id)
            .map(|(_, key)| key.as_slice())
    }

    /// The hash of entry `seq` after `prev_hash`, under the current key (if any).
    pub fn hash(&self, prev_hash: &str, seq: i64, entry: &AuditEntry) -> String {
        let msg = hashed_message(prev_hash, seq, entry);
        match &self.current {
            Some((id, key)) => format!("{id}:{}", hmac_hex(key, &msg)),
            None => hex::encode(Sha256::digest(&msg)),
        }
    }

    /// Whether `r.hash` is right for its content, under the key it names. `Err` says why
    /// not (an unknown key id, a changed entry).
    fn check(&self, r: &AuditRecord) -> Result<(), String> {
        let msg = hashed_message(&r.prev_hash, r.seq, &r.entry);
        let ok = match r.hash.split_once(':') {
            Some((id, mac)) => {
                let Some(key) = self.key(id) else {
                    return Err(format!(
                        "entry {} is signed with audit key `{id}`, which is not configured",
                        r.seq
                    ));
                };
                let Ok(mac) = hex::decode(mac) else {
                    return Err(format!("entry {} was altered (its hash is not hex)", r.seq));
                };
                let Ok(mut m) = <HmacSha256 as hmac::Mac>::new_from_slice(key) else {
                    return Err("the audit key cannot be used".into());
                };
                hmac::Mac::update(&mut m, &msg);
                hmac::Mac::verify_slice(m, &mac).is_ok()
            }
            None => hex::encode(Sha256::digest(&msg)) == r.hash,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "entry {} was altered (its content does not match its hash)",
                r.seq
            ))
        }
    }

    /// The MAC of a checkpoint line under key `id`.
    pub fn sign(&self, id: &str, line: &str) -> Option<String> {
        self.key(id).map(|k| hmac_hex(k, line.as_bytes()))
    }
}

fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    match <HmacSha256 as hmac::Mac>::new_from_slice(key) {
        Ok(mut m) => {
            hmac::Mac::update(&mut m, msg);
            hex::encode(hmac::Mac::finalize(m).into_bytes())
        }
        // HMAC takes a key of any length; this arm cannot be reached.
        Err(_) => String::new(),
    }
}

/// `prev_hash || canonical JSON of the entry with its seq`: what each link hashes.
fn hashed_message(prev_hash: &str, seq: i64, entry: &AuditEntry) -> Vec<u8> {
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
    let mut msg = Vec::with_capacity(prev_hash.len() + 1024);
    msg.extend_from_slice(prev_hash.as_bytes());
    write_canonical(&value, &mut msg);
    msg
}

/// The unkeyed hash of entry `seq` after `prev_hash` (see [`ChainKeys::hash`]).
pub fn entry_hash(prev_hash: &str, seq: i64, entry: &AuditEntry) -> String {
    ChainKeys::unkeyed().hash(prev_hash, seq, entry)
}

/// Walks the chain one record at a time, holding only the previous hash: the backends
/// feed it page by page, so verifying a log of any length takes constant memory.
#[derive(Debug)]
pub struct ChainVerifier<'k> {
    keys: &'k ChainKeys,
    prev: String,
    expected_seq: i64,
    /// Entries under the plain SHA-256 (written before a key was configured).
    pub unkeyed: i64,
    keyed_seen: bool,
    broken: Option<ChainStatus>,
}

impl<'k> ChainVerifier<'k> {
    pub fn new(keys: &'k ChainKeys) -> ChainVerifier<'k> {
        ChainVerifier {
            keys,
            prev: GENESIS_HASH.to_string(),
            expected_seq: 1,
            unkeyed: 0,
            keyed_seen: false,
            broken: None,
        }
    }

    /// True once a break was found (feed no more).
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    fn fail(&mut self, seq: i64, verified: i64, problem: String) {
        if self.broken.is_none() {
            self.broken = Some(ChainStatus::Broken {
                seq,
                verified,
                problem,
            });
        }
    }

    /// A row that could not be read back (a field no longer parses): the chain is broken
    /// at `seq`, named like a changed value.
    pub fn unreadable(&mut self, seq: i64, what: &str) {
        let verified = self.expected_seq - 1;
        self.fail(
            seq,
            verified,
            format!("entry {seq} was altered (its {what} can no longer be read)"),
        );
    }

    /// The hash of the last entry that verified (the genesis hash before any).
    pub fn prev_hash(&self) -> &str {
        &self.prev
    }

    pub fn feed(&mut self, r: &AuditRecord) {
        if self.broken.is_some() {
            return;
        }
        let expected = self.expected_seq;
        let verified = expected - 1;
        if r.seq > expected {
            return self.fail(
                expected,
                verified,
                format!("entry {expected} is missing (the next entry is {})", r.seq),
            );
        }
        if r.seq < expected {
            return self.fail(
                expected,
                verified,
                format!(
                    "entry {} appears again where entry {expected} belongs",
                    r.seq
                ),
            );
        }
        if r.prev_hash != self.prev {
            return self.fail(
                expected,
                verified,
                format!(
                    "entry {expected} does not follow entry {verified} (prev_hash differs): entries were removed or reordered"
                ),
            );
        }
        let keyed = r.hash.contains(':');
        if !keyed && self.keyed_seen {
            // Once the chain is keyed, an unkeyed entry is someone recomputing hashes
            // without the key.
            return self.fail(
                expected,
                verified,
                format!("entry {expected} was altered (it is not signed with an audit key, but the entries before it are)"),
            );
        }
        if let Err(problem) = self.keys.check(r) {
            return self.fail(expected, verified, problem);
        }
        self.keyed_seen |= keyed;
        self.unkeyed += i64::from(!keyed);
        self.prev = r.hash.clone();
        self.expected_seq += 1;
    }

    /// The result, given the recorded chain head `(seq, hash)`.
    pub fn finish(self, head: Option<(i64, String)>) -> ChainStatus {
        if let Some(b) = self.broken {
            return b;
        }
        let count = self.expected_seq - 1;
        let prev = self.prev;
        match head {
            Some((seq, _)) if seq > count => ChainStatus::Broken {
                seq: count + 1,
                verified: count,
                problem: format!(
                    "entry {} is missing (the chain's head says {seq} entries)",
                    count + 1
                ),
            },
            Some((seq, hash_at_head)) if seq == count && hash_at_head != prev => {
                ChainStatus::Broken {
                    seq: count,
                    verified: count - 1,
                    problem: format!("entry {count} was altered (it is not the recorded head)"),
                }
            }
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
}

/// Walks records (in the order read, which must be `seq` order) from the genesis hash.
/// `head` is the recorded chain head, `(seq, hash)`.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    head: Option<(i64, String)>,
    keys: &ChainKeys,
) -> ChainStatus {
    let mut v = ChainVerifier::new(keys);
    for r in records {
        v.feed(r);
        if v.is_broken() {
            break;
        }
    }
    v.finish(head)
}

/// One delta per `(scope, period)` for a batch (first-seen order): one upsert per budget
/// per batch instead of one per request.
pub fn aggregate_spend(batch: &[(String, String, f64)]) -> Vec<(String, String, f64)> {
    let mut index: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::new();
    let mut out: Vec<(String, String, f64)> = Vec::new();
    for (scope, period, usd) in batch {
        match index.get(&(scope.as_str(), period.as_str())) {
            Some(&i) => {
                if let Some(row) = out.get_mut(i) {
                    row.2 += usd;
                }
            }
            None => {
                index.insert((scope, period), out.len());
                out.push((scope.clone(), period.clone(), *usd));
            }
        }
    }
    out
}
