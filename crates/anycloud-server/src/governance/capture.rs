//! Payload capture for tenants that opt in (`capture = true`): the request and response
//! bodies, optionally redacted, sealed with AES-256-GCM and stored in
//! `captured_payloads` with the sealing key's id, so keys can rotate (`[capture] key_id`
//! names the current key; `old_keys` still open older records).
//!
//! Each record gets a fresh random 96-bit nonce, and the request id is the associated
//! data, so a sealed body cannot be moved to another record unnoticed.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anycloud_config::CaptureConfig;
use anycloud_store::CaptureRecord;
use base64::Engine;
use rand::RngCore;
use regex::Regex;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capture key `{id}` is not base64 of 32 bytes")]
    BadKey { id: String },
    #[error("capture record was sealed with key `{id}`, which is not configured")]
    UnknownKey { id: String },
    #[error("capture record could not be opened (wrong key or altered record)")]
    Open,
    #[error("capture could not be sealed")]
    Seal,
    #[error("audit key `{id}` is not base64 of at least 32 bytes")]
    BadAuditKey { id: String },
}

pub struct Sealer {
    current: Option<(String, Aes256Gcm)>,
    all: HashMap<String, Aes256Gcm>,
    redact: bool,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.as_ref().map(|c| &c.0))
            .field("keys", &self.all.keys().collect::<Vec<_>>())
            .field("redact", &self.redact)
            .finish()
    }
}

/// Marks the stored key id of a record sealed with [`bound_aad`].
pub const TENANT_BOUND: &str = "+t";

/// The configured key id of a stored one (without the [`TENANT_BOUND`] mark).
pub fn key_id_of(stored: &str) -> &str {
    stored.strip_suffix(TENANT_BOUND).unwrap_or(stored)
}

/// Associated data binding a sealed record to its tenant and id.
fn bound_aad(tenant: &str, request_id: &str) -> Vec<u8> {
    format!("anycloud-seal-v2\0{tenant}\0{request_id}").into_bytes()
}

fn cipher(id: &str, b64: &str) -> Result<Aes256Gcm, CaptureError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| CaptureError::BadKey { id: id.into() })?;
    Aes256Gcm::new_from_slice(&bytes).map_err(|_| CaptureError::BadKey { id: id.into() })
}

impl Sealer {
    pub fn from_config(c: &CaptureConfig) -> Result<Sealer, CaptureError> {
        let mut all = HashMap::new();
        for old in &c.old_keys {
            all.insert(old.id.clone(), cipher(&old.id, old.key.expose_secret())?);
        }
        let current = match &c.key {
            Some(k) => {
                let ci = cipher(&c.key_id, k.expose_secret())?;
                all.insert(c.key_id.clone(), ci.clone());
                Some((c.key_id.clone(), ci))
            }
            None => None,
        };
        Ok(Sealer {
            current,
            all,
            redact: c.redact,
        })
    }

    pub fn enabled(&self) -> bool {
        self.current.is_some()
    }

    /// Redacts (when configured) and seals `{"request":…,"response":…}`.
    pub fn seal(
        &self,
        request_id: &str,
        tenant: &str,
        mut body: Value,
    ) -> Result<CaptureRecord, CaptureError> {
        if self.redact {
            redact_value(&mut body);
        }
        self.seal_exact(request_id, tenant, body)
    }

    /// Seals without redaction, for state that must round-trip exactly (stored
    /// Responses API conversations). The associated data binds the record to its id and
    /// its tenant: a row moved to another tenant (or id) no longer opens.
    pub fn seal_exact(
        &self,
        request_id: &str,
        tenant: &str,
        body: Value,
    ) -> Result<CaptureRecord, CaptureError> {
        let (id, ci) = self.current.as_ref().ok_or(CaptureError::Seal)?;
        let aad = bound_aad(tenant, request_id);
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let plain = body.to_string();
        let ciphertext = ci
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CaptureError::Seal)?;
        Ok(CaptureRecord {
            request_id: request_id.to_string(),
            at: chrono::Utc::now(),
            tenant: tenant.to_string(),
            key_id: format!("{id}{TENANT_BOUND}"),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a record. Records sealed before tenant binding (key id without the
    /// [`TENANT_BOUND`] mark) are still read with their old associated data (the id
    /// alone); a bound record cannot be passed off as one, since its ciphertext only
    /// opens with the bound data.
    pub fn open(&self, r: &CaptureRecord) -> Result<Value, CaptureError> {
        let (key_id, aad) = match r.key_id.strip_suffix(TENANT_BOUND) {
            Some(id) => (id, bound_aad(&r.tenant, &r.request_id)),
            None => (r.key_id.as_str(), r.request_id.as_bytes().to_vec()),
        };
        let ci = self
            .all
            .get(key_id)
            .ok_or_else(|| CaptureError::UnknownKey {
                id: key_id.to_string(),
            })?;
        if r.nonce.len() != 12 {
            return Err(CaptureError::Open);
        }
        let plain = ci
            .decrypt(
                Nonce::from_slice(&r.nonce),
                Payload {
                    msg: &r.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CaptureError::Open)?;
        serde_json::from_slice(&plain).map_err(|_| CaptureError::Open)
    }
}

/// State kept at rest beside captures (stored Responses conversations), sealed with the
/// same keys: a sealed body is the 12-byte nonce, then the AES-256-GCM ciphertext bound
/// to the record's id. Without a capture key it is stored as plain JSON.
impl Sealer {
    /// `(key id, body)` for `value`, sealed when a key is configured.
    pub fn seal_stored(
        &self,
        id: &str,
        tenant: &str,
        value: Value,
    ) -> Result<(Option<String>, Vec<u8>), CaptureError> {
        if !self.enabled() {
            return Ok((None, value.to_string().into_bytes()));
        }
        let rec = self.seal_exact(id, tenant, value)?;
        let mut body = rec.nonce;
        body.extend_from_slice(&rec.ciphertext);
        Ok((Some(rec.key_id), body))
    }

    /// The value [`Sealer::seal_stored`] stored as `body` under `key_id`.
    pub fn open_stored(
        &self,
        id: &str,
        tenant: &str,
        at: chrono::DateTime<chrono::Utc>,
        key_id: Option<&str>,
        body: &[u8],
    ) -> Result<Value, CaptureError> {
        match key_id {
            Some(key_id) if body.len() > 12 => self.open(&CaptureRecord {
                request_id: id.to_string(),
                at,
                tenant: tenant.to_string(),
                key_id: key_id.to_string(),
                nonce: body[..12].to_vec(),
                ciphertext: body[12..].to_vec(),
            }),
            Some(_) => Err(CaptureError::Open),
            None => serde_json::from_slice(body).map_err(|_| CaptureError::Open),
        }
    }
}

/// Whether this principal's tenant captures payloads (and a key is configured).
pub fn wants(state: &crate::state::AppState, p: &crate::auth::Principal) -> bool {
    p.tenant.capture && state.governance.sealer.enabled()
}

/// Seals and stores one request's bodies off the request path.
pub fn store<R: serde::Serialize>(
    state: &std::sync::Arc<crate::state::AppState>,
    request_id: &str,
    p: &crate::auth::Principal,
    request: &impl serde::Serialize,
    response: Option<&R>,
) {
    let body = serde_json::json!({
        "request": serde_json::to_value(request).unwrap_or(Value::Null),
        "response": response.and_then(|r| serde_json::to_value(r).ok()),
    });
    let record = match state
        .governance
        .sealer
        .seal(request_id, &p.tenant.name, body)
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "payload capture failed");
            return;
        }
    };
    state.governance.captures.push(record);
}

/// The capture queue: one insert per record, in a batch's order (captures are rare and
/// large; the bound and spill file matter more than batching them into one statement).
pub fn writer(
    store: std::sync::Arc<dyn anycloud_store::Store>,
    config: anycloud_store::spool::SpoolConfig,
) -> anycloud_store::spool::Spool<anycloud_store::CaptureRecord> {
    anycloud_store::spool::Spool::start(
        config,
        std::sync::Arc::new(
            move |batch: std::sync::Arc<
                anycloud_store::spool::Batch<anycloud_store::CaptureRecord>,
            >| {
                let store = store.clone();
                Box::pin(async move {
                    for record in batch.iter() {
                        store.insert_capture(record).await?;
                    }
                    Ok(())
                })
            },
        ),
    )
}

struct Patterns {
    email: Regex,
    card: Regex,
    phone: Regex,
}

fn patterns() -> Option<&'static Patterns> {
    static P: OnceLock<Option<Patterns>> = OnceLock::new();
    P.get_or_init(|| {
        Some(Patterns {
            email: Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
                .ok()?,
            // 13–19 digits, optionally grouped by spaces or dashes.
            card: Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").ok()?,
            // International (+CC …) or grouped national numbers with at least 9 digits.
            phone: Regex::new(
                r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}[ .-]\d{2,4}[ .-]\d{3,4}\b|\+\d{9,15}\b",
            )
            .ok()?,
        })
    })
    .as_ref()
}

/// Luhn checksum, so order numbers and timestamps are not taken for cards.
pub fn luhn(digits: &str) -> bool {
    let ds: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if ds.len() < 13 {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    matches!(sum % 10, 0)
}

/// Masks e-mail addresses, Luhn-valid card numbers and phone numbers in one string.
pub fn redact_text(s: &str) -> String {
    let Some(p) = patterns() else {
        return s.to_string();
    };
    let s = p.email.replace_all(s, "[EMAIL]");
    // Long digit runs are cards when Luhn-valid and otherwise left whole (order numbers,
    // ids): the phone pattern only sees the text between them.
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for m in p.card.find_iter(&s) {
        out.push_str(&p.phone.replace_all(&s[last..m.start()], "[PHONE]"));
        out.push_str(if luhn(m.as_str()) {
            "[CARD]"
        } else {
            m.as_str()
        });
        last = m.end();
    }
    out.push_str(&p.phone.replace_all(&s[last..], "[PHONE]"));
    out
}

fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) => *s = redact_text(s),
        Value::Array(a) => a.iter_mut().for_each(redact_value),
        Value::Object(m) => m.values_mut().for_each(redact_value),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use anycloud_config::CaptureKey;
    use secrecy::SecretString;

    fn key(b: u8) -> SecretString {
        SecretString::from(base64::engine::general_purpose::STANDARD.encode([b; 32]))
    }

    #[test]
    fn redaction() {
        let out = redact_text(
            "mail jane.doe@example.co.uk, card 4111 1111 1111 1111, not 4111 1111 1111 1112, call +1 415-555-0100 or 020 7946 0958; order 12345",
        );
        assert_eq!(
            out,
            "mail [EMAIL], card [CARD], not 4111 1111 1111 1112, call [PHONE] or [PHONE]; order 12345"
        );
    }

    #[test]
    fn seal_open_and_rotate() {
        let cfg = CaptureConfig {
            key: Some(key(1)),
            key_id: "k1".into(),
            old_keys: vec![],
            redact: true,
        };
        let s1 = Sealer::from_config(&cfg).unwrap();
        let rec = s1
            .seal("req_1", "t", serde_json::json!({"request": "a@b.io"}))
            .unwrap();
        assert_eq!(rec.key_id, "k1+t");
        assert!(!String::from_utf8_lossy(&rec.ciphertext).contains("request"));
        assert_eq!(s1.open(&rec).unwrap()["request"], "[EMAIL]");
        // Moved to another request id: refused.
        let mut moved = rec.clone();
        moved.request_id = "req_2".into();
        assert!(s1.open(&moved).is_err());
        // Moved to another tenant: refused too (the tenant is in the associated data).
        let mut moved = rec.clone();
        moved.tenant = "other".into();
        assert!(matches!(s1.open(&moved), Err(CaptureError::Open)));
        // Passed off as a record from before tenant binding: refused.
        let mut downgraded = rec.clone();
        downgraded.key_id = "k1".into();
        assert!(s1.open(&downgraded).is_err());
        // Rotated: k2 is current, k1 still opens old records.
        let s2 = Sealer::from_config(&CaptureConfig {
            key: Some(key(2)),
            key_id: "k2".into(),
            old_keys: vec![CaptureKey {
                id: "k1".into(),
                key: key(1),
            }],
            redact: false,
        })
        .unwrap();
        assert_eq!(s2.open(&rec).unwrap()["request"], "[EMAIL]");
        assert_eq!(s2.seal("r", "t", Value::Null).unwrap().key_id, "k2+t");
        // Without k1, the old record names its key.
        let s3 = Sealer::from_config(&CaptureConfig {
            key: Some(key(2)),
            key_id: "k2".into(),
            old_keys: vec![],
            redact: false,
        })
        .unwrap();
        assert!(matches!(
            s3.open(&rec),
            Err(CaptureError::UnknownKey { .. })
        ));
    }

    #[test]
    fn records_sealed_before_tenant_binding_still_open() {
        use aes_gcm::aead::{Aead, Payload};
        let s = Sealer::from_config(&CaptureConfig {
            key: Some(key(1)),
            key_id: "k1".into(),
            old_keys: vec![],
            redact: false,
        })
        .unwrap();
        // As the previous release sealed: the request id alone as associated data.
        let (_, ci) = s.current.as_ref().unwrap();
        let nonce = [7u8; 12];
        let ciphertext = ci
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: br#"{"old":true}"#,
                    aad: b"req_old",
                },
            )
            .unwrap();
        let legacy = CaptureRecord {
            request_id: "req_old".into(),
            at: chrono::Utc::now(),
            tenant: "t".into(),
            key_id: "k1".into(),
            nonce: nonce.to_vec(),
            ciphertext,
        };
        assert_eq!(s.open(&legacy).unwrap()["old"], true);
    }
}
