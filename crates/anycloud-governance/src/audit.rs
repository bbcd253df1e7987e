//! The audit trail's write side: every finished AI request (through the server's
//! `OutcomeSink`) and every admin action becomes one [`AuditEntry`], queued and appended
//! to the hash chain in batches off the request path (see `anycloud_store::governance`
//! for the chain).
//!
//! Entries carry names, ids, counts and the route — never a key, a cloud secret or the
//! admin token: admin actions record who (`admin`) and what changed, and key creation
//! records the key's id and prefix only.

use crate::capture::CaptureError;
use anycloud_router::Decision;
use anycloud_store::spool::{Batch, FlushHook, Spool, SpoolConfig, SpoolGauge};
use anycloud_store::{AuditEntry, ChainKeys, ChainStatus, Store};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct AuditLog {
    writer: Spool<AuditEntry>,
    keys: Arc<ChainKeys>,
    store: Arc<dyn Store>,
    // std Mutex: set and read whole, never held across an await.
    last_verify: Mutex<Option<(DateTime<Utc>, ChainStatus)>>,
}

/// The chain keys of `[audit]`: the current key signs, old keys still verify.
pub fn chain_keys(c: &anycloud_config::AuditConfig) -> Result<ChainKeys, CaptureError> {
    use base64::Engine as _;
    let decode = |id: &str, key: &secrecy::SecretString| {
        base64::engine::general_purpose::STANDARD
            .decode(key.expose_secret().trim())
            .ok()
            .filter(|b| b.len() >= 32)
            .map(|b| (id.to_string(), b))
            .ok_or_else(|| CaptureError::BadAuditKey { id: id.into() })
    };
    let Some(key) = &c.key else {
        return Ok(ChainKeys::unkeyed());
    };
    let old = c
        .old_keys
        .iter()
        .map(|k| decode(&k.id, &k.key))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChainKeys::new(decode(&c.key_id, key)?, old))
}

impl AuditLog {
    /// `config`: the queue's bound and spill file (see `crate::bookkeeping`). Each batch is
    /// one append: the chain is hashed in memory (under `keys`) and written with one
    /// multi-row insert.
    pub fn new(store: Arc<dyn Store>, config: SpoolConfig, keys: ChainKeys) -> AuditLog {
        let keys = Arc::new(keys);
        let (writer_store, writer_keys) = (store.clone(), keys.clone());
        let writer = Spool::start(
            config,
            Arc::new(move |batch: Arc<Batch<AuditEntry>>| {
                let (store, keys) = (writer_store.clone(), writer_keys.clone());
                Box::pin(async move { store.append_audit_once(&batch, &keys).await.map(|_| ()) })
            }),
        );
        writer.forget_marks_with(anycloud_store::spool::forget_in(store.clone()));
        AuditLog {
            writer,
            keys,
            store,
            last_verify: Mutex::new(None),
        }
    }

    /// The chain's keys (verification, checkpoints).
    pub fn keys(&self) -> &ChainKeys {
        &self.keys
    }

    /// Flushes the queue, walks the whole chain (page by page) and remembers the result
    /// for the dashboard.
    pub async fn verify(&self) -> Result<ChainStatus, anycloud_store::StoreError> {
        self.flush().await;
        let status = self.store.verify_audit(&self.keys).await?;
        if let Ok(mut last) = self.last_verify.lock() {
            *last = Some((Utc::now(), status.clone()));
        }
        Ok(status)
    }

    /// The last verification's time and result, if one ran since start.
    pub fn last_verify(&self) -> Option<(DateTime<Utc>, ChainStatus)> {
        self.last_verify.lock().ok().and_then(|l| l.clone())
    }

    pub fn gauge(&self) -> SpoolGauge {
        self.writer.gauge()
    }

    pub fn push(&self, entry: AuditEntry) {
        self.writer.push(entry);
    }

    /// Records an admin action with what it changed.
    pub fn admin(&self, action: &str, tenant: Option<&str>, before: Value, after: Value) {
        self.push(AuditEntry {
            at: chrono::Utc::now(),
            actor: "admin".into(),
            tenant: tenant.map(str::to_string),
            action: action.to_string(),
            detail: Some(json!({"before": before, "after": after})),
            ..Default::default()
        });
    }

    /// Entries waiting to be appended.
    pub fn pending(&self) -> u64 {
        self.writer.stats().pending
    }

    pub fn on_flush(&self, hook: FlushHook) {
        self.writer.on_flush(hook);
    }

    /// Waits until everything queued so far is in the store.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }
}

/// The route as stored: one object per decision, in order.
pub fn route_json(route: &[Decision]) -> Value {
    Value::Array(
        route
            .iter()
            .map(|d| {
                let (outcome, reason) = match &d.outcome {
                    anycloud_router::Outcome::Ok => ("ok".to_string(), None),
                    anycloud_router::Outcome::OkAffine => {
                        ("ok".to_string(), Some("cache_affinity".to_string()))
                    }
                    anycloud_router::Outcome::Declined(r) => {
                        ("declined".to_string(), Some(r.to_string()))
                    }
                    anycloud_router::Outcome::Failed(r) => ("failed".to_string(), Some(r.clone())),
                    anycloud_router::Outcome::Interrupted(r) => {
                        ("interrupted".to_string(), Some(r.clone()))
                    }
                    anycloud_router::Outcome::Resumed => ("resumed".to_string(), None),
                };
                json!({"cloud": d.cloud, "outcome": outcome, "reason": reason})
            })
            .collect(),
    )
}
